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


def pick_grown_confusions(
    truth: np.ndarray,
    labels: dict[str, np.ndarray],
    growth: dict[str, list[dict]],
    max_confusions: int = 3,
    per_confusion: int = 4,
    exclude: set[int] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The faces behind the confusions that grew most against FER2013 (``transfer.confusion_growth``).

    The ``max_confusions`` (model, true -> predicted) of largest growth over all models (one per
    true -> predicted pair), and for each up to ``per_confusion`` faces of that true emotion the
    model called the predicted one (a fixed ``seed`` picks them; a face is shown once, and never
    one in ``exclude``, the disagreement gallery's positions).

    Args:
        truth: (n,) true labels; labels: model key -> (n,) labels on the same faces.

    Returns:
        ``position``, ``case`` ("grown"), ``model``, ``confusion`` ("true → predicted") and
        ``explain`` (the predicted emotion, whose log-odds under the AU logit are broken down; the
        true emotion's where the predicted one is the reference, neutral).
    """
    rng = np.random.default_rng(seed)
    ranked = sorted(
        ((r["growth"], model, r["true"], r["predicted"]) for model, rs in growth.items() for r in rs),
        key=lambda r: -r[0],
    )
    used, pairs, rows = set(exclude or ()), set(), []
    for _, model, true, predicted in ranked:
        if len(pairs) >= max_confusions or model not in labels:
            continue
        if (true, predicted) in pairs:
            continue
        pool = [
            int(p)
            for p in rng.permutation(np.flatnonzero((truth == true) & (labels[model] == predicted)))
            if int(p) not in used
        ][:per_confusion]
        if not pool:
            continue
        pairs.add((true, predicted))
        used.update(pool)
        rows += [
            {"position": p, "case": "grown", "model": model, "confusion": f"{true} → {predicted}",
             "explain": predicted}
            for p in pool
        ]  # fmt: skip
    return pd.DataFrame(rows, columns=["position", "case", "model", "confusion", "explain"])


def au_contributions(model: AULogitModel, row: pd.Series, emotion: str) -> pd.Series:
    """Each term's contribution to ``emotion``'s log-odds versus the reference for one face.

    For the reference emotion itself (neutral) every contribution is 0 by definition; the
    caller shows another emotion then. Sums exactly to ``model.log_odds`` of that emotion.
    """
    if emotion == model.reference:
        return pd.Series(0.0, index=["const", *model.features])
    return model.explain(row)[emotion]


CARD_COLUMNS = ["image", "case", "true", "cnn_pred", "cnn_p", "au_pred", "au_p", "openface_confidence",
                "explained", "log_odds"]  # fmt: skip


def gallery_tables(
    chosen: pd.DataFrame,
    faces: pd.DataFrame,
    cnn_prob: pd.DataFrame,
    au_prob: pd.DataFrame,
    model: AULogitModel,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The gallery's rows and the long table of AU contributions behind them.

    Args:
        chosen: ``pick_disagreements`` (or ``pick_grown_confusions``) output; ``position`` indexes
            ``faces`` and the probability tables (paired faces, same order); an optional
            ``explain`` column names the emotion whose log-odds are broken down.
        faces: the paired PrivateTest AU rows (``image``, ``label``, ``confidence``, AUs).

    Returns:
        ``(cards, contributions)``: cards: image, case, true, cnn_pred, cnn_p, au_pred, au_p,
        openface_confidence, explained (the emotion whose log-odds are broken down: the AU
        logit's prediction, or the true emotion when that prediction is the reference);
        contributions: image, term, contribution.
    """
    cards, parts = [], []
    for row_index, position, case in chosen[["position", "case"]].itertuples():
        face = faces.iloc[position]
        au_pred = au_prob.iloc[position].idxmax()
        cnn_pred = cnn_prob.iloc[position].idxmax()
        explained = au_pred if au_pred != model.reference else face[LABEL]
        asked = chosen.at[row_index, "explain"] if "explain" in chosen else None
        if isinstance(asked, str):  # a grown confusion: why the AUs point to the confused emotion
            explained = asked if asked != model.reference else face[LABEL]
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
    if not cards:  # no disagreement (a small dataset): the files keep their header
        return pd.DataFrame(columns=CARD_COLUMNS), pd.DataFrame(columns=["image", "term", "contribution"])
    return pd.DataFrame(cards), pd.concat(parts, ignore_index=True)
