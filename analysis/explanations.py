"""Per-image explanations: each AU's contribution to each emotion's log-odds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.au_table import LABEL
from analysis.logit import AULogitModel


def contributions(model: AULogitModel, rows: pd.DataFrame) -> pd.DataFrame:
    """Long table of contributions for every row, term and non-reference emotion.

    Columns: row (the table's index), term (``const`` or an AU column), intensity (AU
    0-5; 1 for ``const``), emotion, contribution (coefficient x intensity, log-odds units).
    Per row and emotion the contributions sum to ``model.log_odds`` exactly.
    """
    parts = []
    for index, row in rows.iterrows():
        table = model.explain(row)
        long = table.stack().rename("contribution").reset_index()
        long.columns = ["term", "emotion", "contribution"]
        long["intensity"] = long["term"].map(lambda t, r=row: 1.0 if t == "const" else float(r[t]))
        long.insert(0, "row", index)
        parts.append(long[["row", "term", "intensity", "emotion", "contribution"]])
    return pd.concat(parts, ignore_index=True)


def pick_examples(
    rows: pd.DataFrame, predicted: pd.Series, per_class: int = 2, seed: int = 0
) -> pd.DataFrame:
    """Choose up to ``per_class`` right and ``per_class`` wrong predictions per true emotion.

    Returns:
        The chosen rows' index with columns true, predicted, correct (a fixed ``seed``
        makes the choice repeatable).
    """
    frame = pd.DataFrame({"true": rows[LABEL], "predicted": predicted})
    frame["correct"] = frame["true"] == frame["predicted"]
    rng = np.random.default_rng(seed)
    chosen = []
    for (_, _), group in frame.groupby(["true", "correct"], sort=True):
        take = min(per_class, len(group))
        chosen.append(group.iloc[np.sort(rng.choice(len(group), size=take, replace=False))])
    return pd.concat(chosen)
