"""Surrogate fidelity: how much of the CNN's behaviour the AU logit can reproduce.

A global surrogate (Craven & Shavlik 1996; Molnar, "Interpretable Machine Learning", ch.
"Global Surrogate"): the AU_r logit is fitted to the CNN's *predicted* emotions on Training
faces, then scored on PrivateTest by how often it reproduces the CNN's prediction. Its
coefficients say which AUs the CNN's decisions line up with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.au_table import LABEL
from analysis.labels import EMOTIONS, name_for
from analysis.logit import LogitFit, fit_logit
from cnn_baseline.predictions import PROBABILITY_COLUMNS
from compare.models import AU_R, six_of_seven


class SurrogateError(ValueError):
    """The CNN's Training predictions do not cover the Training AU rows."""


@dataclass
class Surrogate:
    """``fit``: the logit fitted to the CNN's labels; ``fidelity``: share of paired
    PrivateTest faces where it predicts what the CNN predicts; ``fidelity_true_logit``: the
    same share for the logit fitted to the true labels (the baseline agreement);
    ``n_train``: Training faces used; ``predictions``: (n_paired,) surrogate labels."""

    fit: LogitFit
    fidelity: float
    fidelity_true_logit: float
    n_train: int
    predictions: np.ndarray


def cnn_training_labels(train: pd.DataFrame, cnn_predictions: pd.DataFrame) -> pd.Series:
    """The CNN's six-class label for each Training AU row (join on file stem and true label).

    Raises:
        SurrogateError: some Training AU rows have no CNN prediction.
    """
    prob = cnn_predictions[PROBABILITY_COLUMNS].to_numpy(dtype=float)
    six = pd.DataFrame(six_of_seven(prob), columns=list(EMOTIONS))
    keyed = pd.DataFrame(
        {
            "image": cnn_predictions["image"].to_numpy(),
            LABEL: [name_for(c, "fer2013") for c in cnn_predictions["emotion"]],
            "cnn_label": six.idxmax(axis=1).to_numpy(),
        }
    ).drop_duplicates(["image", LABEL])
    joined = train[["image", LABEL]].merge(keyed, on=["image", LABEL], how="left")
    missing = joined["cnn_label"].isna()
    if missing.any():
        example = joined["image"][missing].iloc[0]
        raise SurrogateError(f"{int(missing.sum())} Training AU rows have no CNN prediction, e.g. {example}")
    return pd.Series(joined["cnn_label"].to_numpy(), index=train.index)


def fit_surrogate(
    train: pd.DataFrame,
    paired_test: pd.DataFrame,
    cnn_predictions: pd.DataFrame,
    cnn_test_labels: np.ndarray,
    true_logit_test_labels: np.ndarray,
) -> Surrogate:
    """Fit the AU_r logit to the CNN's Training labels and measure fidelity on ``paired_test``.

    Args:
        train: Training AU rows (``CompareData.train``).
        paired_test: the PrivateTest rows with a face.
        cnn_predictions: ``cnn_baseline.predictions.read_training_predictions`` output.
        cnn_test_labels, true_logit_test_labels: (len(paired_test),) labels of the CNN and of
            the logit fitted to the true labels on the same faces.
    """
    target = train.assign(**{LABEL: cnn_training_labels(train, cnn_predictions)})
    fit = fit_logit(target, AU_R, tests=False)  # coefficients only: no LR tests
    predicted = fit.model.predict(paired_test)
    return Surrogate(
        fit,
        float((predicted == cnn_test_labels).mean()),
        float((true_logit_test_labels == cnn_test_labels).mean()),
        len(target),
        predicted,
    )
