"""Is the AU bottleneck faithful? Interventions on the estimated AUs and decision agreement.

A concept-bottleneck model (Koh et al. 2020, "Concept Bottleneck Models", ICML) decides through
its concepts alone, so setting a concept by hand must move the decision exactly as the model's
own explanation says. For the AU logit on estimated AUs each emotion's log-odds against the
reference is ``const + sum(coef_AU * AU)``: replacing one AU's estimate by OpenFace's value (or
by 0) must move every log-odds by ``coef_AU * change`` and nothing else. ``interventions``
measures it on the model's *probabilities* (``log p_k - log p_neutral``), so the check covers
what the page reports, not only the formula.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.au_table import AU_R_COLUMNS, au_label
from analysis.concepts import CONCEPT_COLUMNS
from analysis.logit import AULogitModel

INTERVENTIONS = ("openface", "zero")  # set one AU to OpenFace's value, or to 0 (absent)


def _log_odds_from_probabilities(model: AULogitModel, rows: pd.DataFrame) -> pd.DataFrame:
    prob = model.predict_proba(rows)
    logp = np.log(prob.to_numpy())
    ref = list(prob.columns).index(model.reference)
    return pd.DataFrame(logp - logp[:, [ref]], index=rows.index, columns=prob.columns)[model.emotions]


def interventions(model: AULogitModel, estimated: pd.DataFrame, openface: pd.DataFrame) -> pd.DataFrame:
    """Per AU and intervention, on the faces of ``estimated`` (with OpenFace AUs ``openface``,
    same index): the largest deviation of any log-odds change from ``coef x change``, the mean
    absolute change of the AU, and how often the predicted emotion changes.

    Returns:
        One row per (AU, intervention): ``au``, ``au_label``, ``intervention``, ``n``,
        ``mean_abs_change``, ``max_abs_deviation``, ``changed`` (count) and ``changed_share``.
    """
    before = _log_odds_from_probabilities(model, estimated)
    predicted = model.predict(estimated)
    coefficients = model.params
    rows = []
    for au in model.features:
        for kind in INTERVENTIONS:
            after_rows = estimated.copy()
            after_rows[au] = openface[au].to_numpy(float) if kind == "openface" else 0.0
            change = after_rows[au].to_numpy(float) - estimated[au].to_numpy(float)
            after = _log_odds_from_probabilities(model, after_rows)
            expected = np.outer(change, coefficients.loc[au].to_numpy())
            deviation = np.abs((after - before).to_numpy() - expected).max() if len(change) else 0.0
            changed = int((model.predict(after_rows) != predicted).sum())
            rows.append(
                {
                    "au": au,
                    "au_label": au_label(au),
                    "intervention": kind,
                    "n": int(len(change)),
                    "mean_abs_change": float(np.abs(change).mean()) if len(change) else 0.0,
                    "max_abs_deviation": float(deviation),
                    "changed": changed,
                    "changed_share": changed / len(change) if len(change) else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def agreement(
    model: AULogitModel, estimated: pd.DataFrame, openface: pd.DataFrame, reference_labels: np.ndarray
) -> dict:
    """How often the estimated-AU logit decides a face the same on its estimated AUs as on its
    OpenFace AUs, and as the OpenFace-AU logit (``reference_labels``) does.

    Returns:
        ``n``, ``same_on_openface_aus`` and ``same_as_openface_logit`` (shares, 0-1), and the counts.
    """
    on_estimated = model.predict(estimated)
    on_openface = model.predict(openface[list(model.features)])
    same_inputs = int((on_estimated == on_openface).sum())
    same_reference = int((on_estimated == np.asarray(reference_labels)).sum())
    n = len(on_estimated)
    return {
        "n": int(n),
        "same_on_openface_aus": same_inputs / n if n else float("nan"),
        "same_on_openface_aus_count": same_inputs,
        "same_as_openface_logit": same_reference / n if n else float("nan"),
        "same_as_openface_logit_count": same_reference,
    }


def estimator_quality(
    openface: pd.DataFrame, estimated: pd.DataFrame, leaky: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per AU, the estimates against OpenFace's values on the same faces (``au_scores``: R², MAE,
    Pearson r, bias, usable) with the AU's name; with ``leaky``, the leak control's R² and MAE
    beside. The six geometric concepts follow as rows of their own when both tables have them
    (faces without OpenFace concepts left out of those rows)."""
    from cnn_baseline.au_estimator import au_scores

    columns = list(AU_R_COLUMNS)
    truth = openface[columns].to_numpy(float)
    table = au_scores(truth, estimated[columns].to_numpy(float))
    if leaky is not None:
        other = au_scores(truth, leaky[columns].to_numpy(float))
        table["r2_leaky"] = other["r2"].to_numpy()
        table["mae_leaky"] = other["mae"].to_numpy()
    concepts = list(CONCEPT_COLUMNS)
    if set(concepts) <= set(openface) and set(concepts) <= set(estimated):
        measured = openface[concepts].apply(pd.to_numeric, errors="coerce")
        kept = measured.notna().all(axis=1).to_numpy()
        if kept.any():
            rows = au_scores(
                measured.to_numpy(float)[kept], estimated[concepts].to_numpy(float)[kept], concepts
            )
            table = pd.concat([table, rows], ignore_index=True)
    table.insert(1, "au_label", [au_label(c) for c in table["au"]])
    return table
