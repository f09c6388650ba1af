"""Prediction quality by stratified k-fold cross-validation (scikit-learn).

The fold models are scikit-learn's unpenalised multinomial ``LogisticRegression``:
the same maximum-likelihood model as statsmodels' ``MNLogit`` (the softmax
parametrisation differs only by a per-feature shift, the probabilities are identical),
fitted by a faster solver. A majority-class ``DummyClassifier`` runs on the same folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from analysis.au_table import LABEL
from analysis.logit import auto_jobs


def plain_logit() -> LogisticRegression:
    """Unpenalised multinomial logit, scikit-learn's equivalent of ``MNLogit``."""
    return LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-8, max_iter=200)


@dataclass
class CrossValidation:
    """Out-of-fold results.

    ``metrics``: cv_accuracy, cv_macro_f1, cv_log_loss and the majority baseline's.
    ``per_class``: emotion, precision, recall, f1, support.
    ``confusion``: counts, rows = true emotion, columns = predicted.
    ``probabilities``: (n, J) out-of-fold probabilities, index = the table's index.
    """

    metrics: dict[str, Any]
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    probabilities: pd.DataFrame

    @property
    def confusion_normalised(self) -> pd.DataFrame:
        """Confusion matrix divided by each true class's row total (recall on the diagonal)."""
        return self.confusion.div(self.confusion.sum(axis=1), axis=0)


def cross_validated_scores(
    table: pd.DataFrame,
    features: list[str],
    classes: list[str],
    folds: int = 5,
    seed: int = 0,
    n_jobs: int | None = None,
    progress: bool = False,
) -> CrossValidation:
    """Stratified ``folds``-fold CV of the plain logit and the majority baseline.

    scikit-learn's ``cross_val_predict`` on shuffled ``StratifiedKFold`` splits: every row's
    probabilities come from the one fold model that did not see it.

    Args:
        table: n rows with ``features`` and ``label``.
        features: AU columns.
        classes: emotion names in report order (the reference first).
        folds: number of folds (shuffled, ``random_state=seed``).
        seed: fixes the fold assignment, so the same input gives the same numbers.
        n_jobs: processes for the folds (joblib; None: ``analysis.logit.auto_jobs``).
        progress: let joblib report the folds as they finish.

    Returns:
        A ``CrossValidation`` with out-of-fold metrics.
    """
    x = table[features].to_numpy(dtype=float)
    y = table[LABEL].map({c: i for i, c in enumerate(classes)}).to_numpy()
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    jobs = auto_jobs(n_jobs, len(y))
    prob = cross_val_predict(
        plain_logit(), x, y, cv=splits, method="predict_proba", n_jobs=jobs, verbose=int(progress)
    )
    majority = cross_val_predict(DummyClassifier(strategy="most_frequent"), x, y, cv=splits)

    pred = prob.argmax(axis=1)
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    metrics = {
        "cv_folds": folds,
        "cv_seed": seed,
        "cv_accuracy": float(accuracy_score(y, pred)),
        "cv_macro_f1": float(f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "cv_log_loss": float(log_loss(y, np.clip(prob, 1e-15, 1), labels=labels)),
        "majority_class": classes[int(np.bincount(y).argmax())],
        "majority_accuracy": float(accuracy_score(y, majority)),
        "majority_macro_f1": float(f1_score(y, majority, average="macro", labels=labels, zero_division=0)),
    }
    per_class = pd.DataFrame(
        {"emotion": classes, "precision": precision, "recall": recall, "f1": f1, "support": support}
    )
    confusion = pd.DataFrame(
        confusion_matrix(y, pred, labels=labels),
        index=pd.Index(classes, name="true"),
        columns=pd.Index(classes, name="predicted"),
    )
    probabilities = pd.DataFrame(prob, index=table.index, columns=classes)
    return CrossValidation(metrics, per_class, confusion, probabilities)
