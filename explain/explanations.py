"""One face's explanation: exact per-term contributions and the nearest counterfactual.

Contributions come from the model's own ``explain(row)`` (``analysis.au_models``): intercept
(``const``) plus one value per term, summing exactly to the explained emotion's log-odds versus
neutral. The explained emotion is the predicted one; when neutral is predicted (whose log-odds
against itself are 0), it is the runner-up, whose (negative) log-odds say why neutral won.

Counterfactual: ``analysis.counterfactual.nearest_counterfactual`` (minimum-L1 change of the AU
intensities that changes the model's decision; exact linear programme for linear models, a
bounded search otherwise; Wachter, Mittelstadt & Russell 2017), within the model's training
ranges (``explain.models.LoadedModel.lower/upper``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explain.models import LoadedModel


@dataclass
class FaceExplanation:
    """``emotion``: the explained emotion; ``log_odds``: its log-odds vs neutral;
    ``contributions``: term -> contribution (``const`` first), summing to ``log_odds``."""

    emotion: str
    log_odds: float
    contributions: pd.Series


def explained_emotion(loaded: LoadedModel, probabilities: pd.Series) -> str:
    """The predicted emotion, or the runner-up when it is the reference (neutral)."""
    order = probabilities.sort_values(ascending=False, kind="stable").index
    reference = loaded.model.reference
    return str(order[0] if order[0] != reference else order[1])


def explain_face(loaded: LoadedModel, row: pd.Series, probabilities: pd.Series) -> FaceExplanation:
    """Exact contributions of one face (``row``: the model's columns) to the explained emotion."""
    emotion = explained_emotion(loaded, probabilities)
    table = loaded.model.explain(row[loaded.columns].astype(float))
    contributions = table[emotion].astype(float)
    log_odds = float(loaded.model.log_odds(row[loaded.columns].astype(float).to_frame().T)[emotion].iloc[0])
    return FaceExplanation(emotion, log_odds, contributions)


def counterfactual_fields(loaded: LoadedModel, row: pd.Series) -> dict:
    """The nearest counterfactual of one face as flat fields for a results CSV.

    Keys: ``cf_sentence``, ``cf_target`` (empty when unreachable), ``cf_distance`` (L1, AU units),
    ``cf_changes`` (``AU04_r:-1.3;AU12_r:+0.4``, full precision), ``cf_exact``, ``cf_method``, and
    ``cf_<emotion>`` (the changed face's probabilities).
    """
    from analysis.counterfactual import CounterfactualError, nearest_counterfactual

    try:
        cf = nearest_counterfactual(
            loaded.model, row[loaded.columns].astype(float), loaded.lower, loaded.upper,
            features=loaded.intensities,
        )  # fmt: skip
    except (CounterfactualError, ValueError) as error:
        return {
            "cf_sentence": f"no counterfactual: {' '.join(str(error).split())[:200]}",
            "cf_target": "",
            "cf_distance": np.nan,
            "cf_changes": "",
            "cf_exact": False,
            "cf_method": "failed",
        }
    return {
        "cf_sentence": cf.sentence(),
        "cf_target": cf.target or "",
        "cf_distance": cf.distance if cf.target else np.nan,
        "cf_changes": ";".join(f"{c}:{v:+.17g}" for c, v in cf.changes.items()),
        "cf_exact": bool(cf.exact),
        "cf_method": cf.method,
        **{f"cf_{e}": float(p) for e, p in cf.new_probabilities.items()},
    }


def contribution_rows(key: str, explanation: FaceExplanation) -> list[dict]:
    """Long rows ``key, emotion, term, contribution`` for ``contributions.csv``."""
    return [
        {"key": key, "emotion": explanation.emotion, "term": str(term), "contribution": float(value)}
        for term, value in explanation.contributions.items()
    ]
