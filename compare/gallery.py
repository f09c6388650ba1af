"""The disagreement gallery: faces one model gets right and the other wrong, with each
model's own explanation (the CNN's Grad-CAM, the AU logit's largest AU contributions)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.au_table import LABEL
from analysis.logit import AULogitModel


def pick_disagreements(
    truth: np.ndarray, cnn: np.ndarray, au: np.ndarray, per_case: int = 12, seed: int = 0
) -> pd.DataFrame:
    """Choose up to ``per_case`` faces of each disagreement case, spread over true emotions.

    Args:
        truth, cnn, au: (n,) labels on the same faces.

    Returns:
        ``position`` (index into the arrays) and ``case``; classes are taken in turn (a
        fixed ``seed`` shuffles within each class), so rare emotions are shown too.
    """
    rng = np.random.default_rng(seed)
    rows = []
    cases = {"cnn_right": (cnn == truth) & (au != truth), "au_right": (au == truth) & (cnn != truth)}
    for case, mask in cases.items():
        pools = {e: list(rng.permutation(np.flatnonzero(mask & (truth == e)))) for e in sorted(set(truth))}
        taken = 0
        while taken < per_case and any(pools.values()):
            for emotion in sorted(pools):
                if pools[emotion] and taken < per_case:
                    rows.append({"position": int(pools[emotion].pop(0)), "case": case})
                    taken += 1
    return pd.DataFrame(rows, columns=["position", "case"])


def au_contributions(model: AULogitModel, row: pd.Series, emotion: str) -> pd.Series:
    """Each term's contribution to ``emotion``'s log-odds versus the reference for one face.

    For the reference emotion itself (neutral) every contribution is 0 by definition; the
    caller shows another emotion then. Sums exactly to ``model.log_odds`` of that emotion.
    """
    if emotion == model.reference:
        return pd.Series(0.0, index=["const", *model.features])
    return model.explain(row)[emotion]


def gallery_tables(
    chosen: pd.DataFrame,
    faces: pd.DataFrame,
    cnn_prob: pd.DataFrame,
    au_prob: pd.DataFrame,
    model: AULogitModel,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The gallery's rows and the long table of AU contributions behind them.

    Args:
        chosen: ``pick_disagreements`` output; ``position`` indexes ``faces`` and the
            probability tables (paired faces, same order).
        faces: the paired PrivateTest AU rows (``image``, ``label``, ``confidence``, AUs).

    Returns:
        ``(cards, contributions)``: cards: image, case, true, cnn_pred, cnn_p, au_pred, au_p,
        openface_confidence, explained (the emotion whose log-odds are broken down: the AU
        logit's prediction, or the true emotion when that prediction is the reference);
        contributions: image, term, contribution.
    """
    cards, parts = [], []
    for position, case in chosen[["position", "case"]].itertuples(index=False):
        face = faces.iloc[position]
        au_pred = au_prob.iloc[position].idxmax()
        cnn_pred = cnn_prob.iloc[position].idxmax()
        explained = au_pred if au_pred != model.reference else face[LABEL]
        if explained == model.reference:
            explained = cnn_pred
        terms = au_contributions(model, face, explained)
        cards.append(
            {
                "image": face["image"],
                "case": case,
                "true": face[LABEL],
                "cnn_pred": cnn_pred,
                "cnn_p": float(cnn_prob.iloc[position].max()),
                "au_pred": au_pred,
                "au_p": float(au_prob.iloc[position].max()),
                "openface_confidence": float(face["confidence"]),
                "explained": explained,
                "log_odds": float(terms.sum()),
            }
        )
        parts.append(
            pd.DataFrame({"image": face["image"], "term": terms.index, "contribution": terms.to_numpy()})
        )
    return pd.DataFrame(cards), pd.concat(parts, ignore_index=True)
