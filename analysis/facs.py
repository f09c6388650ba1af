"""Does a fitted AU model agree with the FACS prototypes of each emotion?

Prototypes: the EMFACS-7 predictions of Friesen & Ekman (1983, *EMFACS-7: Emotional
Facial Action Coding System*, unpublished manual, UCSF), in the form tabulated for the six
basic emotions in the FACS literature (e.g. the "Emotion" table of the Wikipedia article
"Facial Action Coding System"): happiness 6+12, sadness 1+4+15, surprise 1+2+5B+26,
anger 4+5+7+23, disgust 9+15+16. OpenFace 2.x estimates no AU16 (lower lip depressor),
so disgust is checked on 9+15. Each prototype AU is expected to raise the odds of its
emotion against neutral (a positive coefficient).
"""

from __future__ import annotations

import pandas as pd

from analysis.au_table import AU_NAMES

PROTOTYPES: dict[str, tuple[str, ...]] = {
    "happy": ("AU06", "AU12"),
    "sad": ("AU01", "AU04", "AU15"),
    "surprise": ("AU01", "AU02", "AU05", "AU26"),
    "angry": ("AU04", "AU05", "AU07", "AU23"),
    "disgust": ("AU09", "AU15"),
}
SOURCE = "EMFACS-7 (Friesen & Ekman 1983); AU16 omitted: OpenFace has no AU16"


def facs_agreement(coefficients: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Compare a coefficient table with the EMFACS prototypes.

    Args:
        coefficients: long table with ``emotion, au, coef, p, odds_ratio`` (``au`` as
            ``AU12_r``), log-odds versus neutral.
        alpha: significance level for a coefficient's two-sided p-value.

    Returns:
        One row per prototype AU of the emotions present: emotion, au, au_name,
        expected_sign (``+``), coef, odds_ratio, p, significant, agrees (positive and
        significant), verdict (``agrees``, ``right sign, not significant``,
        ``contradicts`` or ``AU not in model``).
    """
    rows = []
    by_key = coefficients.assign(code=coefficients["au"].str.split("_").str[0]).set_index(["emotion", "code"])
    for emotion, aus in PROTOTYPES.items():
        if emotion not in set(coefficients["emotion"]):
            continue
        for au in aus:
            key = (emotion, au)
            row = {"emotion": emotion, "au": au, "au_name": AU_NAMES[au], "expected_sign": "+"}
            if key not in by_key.index:
                rows.append({**row, "verdict": "AU not in model", "agrees": False})
                continue
            fit = by_key.loc[key]
            significant = bool(fit["p"] < alpha)
            positive = bool(fit["coef"] > 0)
            if positive and significant:
                verdict = "agrees"
            elif positive:
                verdict = "right sign, not significant"
            else:
                verdict = "contradicts" if significant else "wrong sign, not significant"
            rows.append(
                {
                    **row,
                    "coef": float(fit["coef"]),
                    "odds_ratio": float(fit["odds_ratio"]),
                    "p": float(fit["p"]),
                    "significant": significant,
                    "agrees": positive and significant,
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows)
