"""Does a fitted AU model agree with the FACS prototypes of each emotion?

Prototypes: the EMFACS-7 predictions of Friesen & Ekman (1983, *EMFACS-7: Emotional
Facial Action Coding System*, unpublished manual, UCSF), in the form tabulated for the six
basic emotions in the FACS literature (e.g. the "Emotion" table of the Wikipedia article
"Facial Action Coding System"): happiness 6+12, sadness 1+4+15, surprise 1+2+5B+26,
anger 4+5+7+23, disgust 9+15+16. OpenFace 2.x estimates no AU16 (lower lip depressor),
so disgust is checked on 9+15. Each prototype AU is expected to raise the odds of its
emotion against neutral (a positive coefficient, or a positive effect).

Evidence for a sign comes from a test where there is one (the logit's Wald p-values), or from
the bootstrap (the share of refits with the same sign, for the glass-box models); a model with
neither gets no "significant" or "stable" wording, only its sign.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.au_table import AU_NAMES

EFFECT_PERCENTILES = (5.0, 95.0)
"""A glass-box AU effect is read between these percentiles of the AU's observed intensity.

Reading it from 0 to a fixed intensity (2, before) extrapolated: AU23 reaches 2 in 3 of the
seed AU table's 4,473 rows, yet headed the effect heatmap. Between the 5th and 95th percentile
every effect stays where the training faces are."""

STABLE_SHARE = 0.95
"""A bootstrap sign is called stable when at least this share of refits has it."""


def effect_range(intensities: pd.Series) -> tuple[float, float]:
    """The intensities an AU's effect is read between: its 5th and 95th percentile.

    Args:
        intensities: the AU's observed ``AU*_r`` values on the training faces.

    Returns:
        ``(low, high)``; ``high > low`` unless the AU is constant on 90% of the faces.
    """
    low, high = np.percentile(intensities.to_numpy(dtype=float), EFFECT_PERCENTILES)
    return float(low), float(high)


def effect_ranges(train: pd.DataFrame, intensities: list[str]) -> dict[str, tuple[float, float]]:
    """:func:`effect_range` of each ``AU*_r`` column of ``train``, keyed by AU code (``AU12``)."""
    return {column.split("_")[0]: effect_range(train[column]) for column in intensities}


PROTOTYPES: dict[str, tuple[str, ...]] = {
    "happy": ("AU06", "AU12"),
    "sad": ("AU01", "AU04", "AU15"),
    "surprise": ("AU01", "AU02", "AU05", "AU26"),
    "angry": ("AU04", "AU05", "AU07", "AU23"),
    "disgust": ("AU09", "AU15"),
}
SOURCE = "EMFACS-7 (Friesen & Ekman 1983); AU16 omitted: OpenFace has no AU16"


def facs_agreement(effects: pd.DataFrame, alpha: float = 0.05, value: str = "coef") -> pd.DataFrame:
    """Compare a table of AU coefficients or effects with the EMFACS prototypes.

    Args:
        effects: long table with ``emotion``, ``au`` (as ``AU12_r``), the signed ``value``
            column (log-odds vs neutral) and the evidence for its sign, at most one of:
            ``p`` (a test's two-sided p-value: logit), ``sign_share`` (share of bootstrap
            refits with the same sign: glass-box); ``odds_ratio`` is copied where present.
        alpha: significance level for ``p``.
        value: the name of the signed column, ``coef`` (logit) or ``effect`` (glass-box).

    Returns:
        One row per prototype AU of the emotions present: ``emotion, au, au_name,
        expected_sign`` (``+``), ``value``, the evidence column and, with ``p``,
        ``significant``; with ``sign_share``, ``stable`` (share >= 0.95); ``agrees`` (positive
        and significant or stable; with no evidence, positive) and ``verdict``: ``agrees``,
        ``right sign, not significant``, ``contradicts``, ``wrong sign, not significant``
        (with ``p``), ``agrees``, ``right sign, unstable``, ``contradicts``, ``wrong sign,
        unstable`` (with ``sign_share``), ``right sign (untested)``, ``wrong sign (untested)``
        (neither), or ``AU not in model``.
    """
    evidence = "p" if "p" in effects else "sign_share" if "sign_share" in effects else None
    rows = []
    by_key = effects.assign(code=effects["au"].str.split("_").str[0]).set_index(["emotion", "code"])
    for emotion, aus in PROTOTYPES.items():
        if emotion not in set(effects["emotion"]):
            continue
        for au in aus:
            key = (emotion, au)
            row = {"emotion": emotion, "au": au, "au_name": AU_NAMES[au], "expected_sign": "+"}
            if key not in by_key.index:
                rows.append({**row, "verdict": "AU not in model", "agrees": False})
                continue
            fit = by_key.loc[key]
            positive = bool(fit[value] > 0)
            row[value] = float(fit[value])
            if "odds_ratio" in fit:
                row["odds_ratio"] = float(fit["odds_ratio"])
            if evidence is None:
                verdict = "right sign (untested)" if positive else "wrong sign (untested)"
                rows.append({**row, "agrees": positive, "verdict": verdict})
                continue
            row[evidence] = float(fit[evidence])
            if evidence == "p":
                sure = bool(fit["p"] < alpha)
                row["significant"], doubt = sure, "not significant"
            else:
                sure = bool(fit["sign_share"] >= STABLE_SHARE)
                row["stable"], doubt = sure, "unstable"
            if sure:
                verdict = "agrees" if positive else "contradicts"
            else:
                verdict = f"{'right' if positive else 'wrong'} sign, {doubt}"
            rows.append({**row, "agrees": positive and sure, "verdict": verdict})
    table = pd.DataFrame(rows)
    # a model without any prototype AU (e.g. one on the geometric concepts only) still has every column
    expected = [
        value,
        *(["odds_ratio"] if "odds_ratio" in effects else []),
        *([evidence] if evidence else []),
    ]
    for column in [c for c in expected if c not in table]:
        table[column] = float("nan")
    return table
