"""One interface for every AU model, and reading their JSON files safely.

Every fitted AU model of the workbench (the statsmodels logit ``analysis.logit.AULogitModel``,
the additive glass-box models and EBM of ``analysis.glassbox``, and the boosting black box
``BlackBox`` below) is a scikit-learn classifier with the same surface:

- ``fit(X, y)``: ``X`` a DataFrame holding the model's AU columns (other columns are
  ignored), ``y`` (n,) emotion names;
- ``classes_``: the emotions seen in training, in ``analysis.labels.EMOTIONS`` order;
- ``predict_proba(X)``: (n, K) DataFrame, columns ``classes_``, index ``X.index``;
- ``predict(X)``: (n,) numpy array of emotion names (never a Series);
- ``decision_function(X)``: (n, K) numpy array of log-odds versus the reference emotion
  (neutral), whose own column is 0; ``log_odds(X)``: the same without that column, as a
  DataFrame;
- ``explain(row)``: DataFrame, rows ``const`` and every term, one column per non-reference
  emotion; each column sums to that emotion's log-odds for the row (to 1e-9). The black box
  has no such decomposition and raises ``NoExplanationError``;
- ``importance(X)``: Series, one value per term (or AU column for the black box), largest
  first.

Saved models are JSON (never pickle). ``read_model_json`` turns every way a file can be bad
(missing, a directory, not UTF-8, not JSON, nested too deeply, the wrong format) into a
``ModelFileError`` whose message is one line naming the file and the problem; the model
classes' loaders use it and the checks below for parameters and shapes.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance

from analysis.labels import EMOTIONS

REFERENCE = "neutral"
# A model file is a few hundred kB at most; refuse to parse anything far larger.
MAX_MODEL_BYTES = 64 * 1024 * 1024


class ModelFileError(ValueError):
    """A model file cannot be used: the message names the file and what is wrong (one line)."""


class NoExplanationError(NotImplementedError):
    """The model has no exact per-term decomposition of its log-odds (the black box)."""


def probabilities_from_log_odds(log_odds: np.ndarray) -> np.ndarray:
    """(n, K) class probabilities from (n, K) log-odds versus any fixed reference.

    ``scipy.special.softmax`` over each row; the reference's own column is 0.
    """
    return softmax(np.asarray(log_odds, dtype=float), axis=1)


class AUModel(ClassifierMixin, BaseEstimator):
    """Base of every AU model (see the module docstring for the contract).

    Subclasses implement ``fit`` (setting ``classes_``), ``log_odds`` and ``explain``, and
    may override ``importance``. ``reference`` is the emotion every log-odds is taken against.
    """

    reference: str = REFERENCE
    classes_: np.ndarray

    @property
    def emotions(self) -> list[str]:
        """Non-reference emotions in ``EMOTIONS`` order: the columns of ``log_odds`` and ``explain``."""
        return [c for c in self.classes_ if c != self.reference]

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "classes_")

    def log_odds(self, X: pd.DataFrame) -> pd.DataFrame:
        """(n, K-1) log-odds of each non-reference emotion versus the reference."""
        raise NotImplementedError

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """(n, K) log-odds versus the reference, columns ``classes_``, the reference's column 0."""
        eta = self.log_odds(X)
        out = np.zeros((len(X), len(self.classes_)))
        for i, emotion in enumerate(self.classes_):
            if emotion != self.reference:
                out[:, i] = eta[emotion].to_numpy()
        return out

    def predict_proba(self, X: pd.DataFrame) -> pd.DataFrame:
        """(n, K) probabilities, columns ``classes_`` (``EMOTIONS`` order), rows summing to 1."""
        prob = probabilities_from_log_odds(self.decision_function(X))
        return pd.DataFrame(prob, index=X.index, columns=list(self.classes_))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) the most probable emotion of each row (first in ``EMOTIONS`` order on ties)."""
        return np.asarray(self.classes_)[self.decision_function(X).argmax(axis=1)]

    def explain(self, row: pd.Series) -> pd.DataFrame:
        """Rows ``const`` and every term, one column per non-reference emotion; columns sum
        to the row's log-odds."""
        raise NotImplementedError

    def importance(self, X: pd.DataFrame) -> pd.Series:
        """Mean |contribution| over the rows of ``X``, summed over emotions, per term (largest first)."""
        parts = np.stack([self.explain(row).drop(index="const").abs().to_numpy() for _, row in X.iterrows()])
        names = self.explain(X.iloc[0]).index.drop("const")
        return pd.Series(parts.mean(axis=0).sum(axis=1), index=names).sort_values(ascending=False)


def emotion_order(labels: Any) -> np.ndarray:
    """The distinct emotions of ``labels`` in ``EMOTIONS`` order (unknown names last, sorted)."""
    present = {str(v) for v in np.asarray(labels, dtype=object)}
    known = [e for e in EMOTIONS if e in present]
    return np.array(known + sorted(present - set(known)), dtype=object)


class BlackBox(AUModel):
    """scikit-learn ``HistGradientBoostingClassifier`` (defaults, fixed ``seed``) on AU columns.

    The yardstick every glass-box is measured against: it predicts and has log-odds
    (differences of its raw scores), but no exact per-term explanation (``explain`` raises
    ``NoExplanationError``). ``importance`` is scikit-learn's permutation importance against
    the model's own predictions: how much its decisions change when one AU column is shuffled.
    Not saved as JSON (refitting takes seconds).
    """

    def __init__(self, columns: list[str] | None = None, seed: int = 0):
        self.columns = columns
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: Any) -> BlackBox:
        columns = list(self.columns) if self.columns is not None else list(X.columns)
        self.columns_ = columns
        self.model_ = HistGradientBoostingClassifier(random_state=self.seed).fit(
            X[columns].to_numpy(dtype=float), np.asarray(y, dtype=object)
        )
        self.classes_ = emotion_order(self.model_.classes_)
        return self

    def log_odds(self, X: pd.DataFrame) -> pd.DataFrame:
        raw = self.model_.decision_function(X[self.columns_].to_numpy(dtype=float))
        if raw.ndim == 1:  # two classes: one score, log-odds of classes_[1] vs classes_[0]
            raw = np.column_stack([np.zeros(len(raw)), raw])
        order = list(self.model_.classes_)
        ref = raw[:, order.index(self.reference)]
        values = np.column_stack([raw[:, order.index(e)] - ref for e in self.emotions])
        return pd.DataFrame(values, index=X.index, columns=self.emotions)

    def predict_proba(self, X: pd.DataFrame) -> pd.DataFrame:
        prob = self.model_.predict_proba(X[self.columns_].to_numpy(dtype=float))
        order = [list(self.model_.classes_).index(e) for e in self.classes_]
        return pd.DataFrame(prob[:, order], index=X.index, columns=list(self.classes_))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model_.predict(X[self.columns_].to_numpy(dtype=float)), dtype=object)

    def explain(self, row: pd.Series) -> pd.DataFrame:
        raise NoExplanationError(
            "the boosting black box has no exact per-term explanation; use a glass-box model"
        )

    def importance(self, X: pd.DataFrame, n_repeats: int = 5) -> pd.Series:
        result = permutation_importance(
            self, X[self.columns_], self.predict(X), n_repeats=n_repeats, random_state=self.seed
        )
        return pd.Series(result.importances_mean, index=self.columns_).sort_values(ascending=False)

    @property
    def n_parameters(self) -> int:
        """One split threshold or leaf value per tree node."""
        return int(sum(len(tree.nodes) for trees in self.model_._predictors for tree in trees))


# ---------------------------------------------------------------- reading model files


def read_model_json(path: str | os.PathLike[str], formats: tuple[str, ...]) -> dict[str, Any]:
    """Read a model file's JSON object and check its ``format`` is one of ``formats``.

    Args:
        path: the file.
        formats: accepted values of the file's ``format`` field.

    Returns:
        The parsed object (a dict).

    Raises:
        ModelFileError: missing, a directory, unreadable, larger than ``MAX_MODEL_BYTES``, not
            UTF-8, not JSON, nested too deeply for the parser, NaN/Infinity constants, not a
            JSON object, or another format. The message is ``"<path>: <what is wrong>"``.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise ModelFileError(f"{path}: is a directory, not a model file")
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelFileError(f"{path}: {size:,} bytes is too large for a model file")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not a text file (not UTF-8), so not a JSON model") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ModelFileError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except RecursionError:
        raise ModelFileError(f"{path}: JSON nested too deeply to be a model file") from None
    except ValueError as error:  # from _reject_constant
        raise ModelFileError(f"{path}: {error}") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: a model file holds a JSON object, not a {type(data).__name__}")
    if data.get("format") not in formats:
        raise ModelFileError(
            f"{path}: not an AU model file of format {' or '.join(formats)} (format {data.get('format')!r})"
        )
    return data


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} in the JSON")


class Fields:
    """Typed access to a model file's fields; every violation is a ``ModelFileError``."""

    def __init__(self, path: str | os.PathLike[str], data: dict[str, Any]):
        self.path, self.data = Path(path), data

    def error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {message}")

    def get(self, name: str, where: dict[str, Any] | None = None) -> Any:
        source = self.data if where is None else where
        if name not in source:
            raise self.error(f"no {name!r} field")
        return source[name]

    def names(self, value: Any, what: str, unique: bool = True) -> list[str]:
        """A non-empty list of strings."""
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.error(f"{what} must be a non-empty list of names")
        if unique and len(set(value)) != len(value):
            raise self.error(f"{what} repeat a name")
        return list(value)

    def number(self, value: Any, what: str) -> float:
        """A finite JSON number (not a string, null or boolean)."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(f"{what} must be a finite number, not {_describe(value)}")
        return float(value)

    def numbers(self, value: Any, what: str, length: int | None = None) -> np.ndarray:
        """A list of finite numbers, of ``length`` when given."""
        if not isinstance(value, list):
            raise self.error(f"{what} must be a list of numbers, not {_describe(value)}")
        out = np.array([self.number(v, f"every value of {what}") for v in value], dtype=float)
        if length is not None and len(out) != length:
            raise self.error(f"{what} has {len(out)} values, expected {length}")
        return out

    def classes(self, value: Any, reference: str) -> list[str]:
        """Emotion names of ``EMOTIONS``, the reference among them."""
        classes = self.names(value, "classes")
        unknown = [c for c in classes if c not in EMOTIONS]
        if unknown:
            raise self.error(f"unknown emotion(s) {', '.join(unknown)} in classes")
        if reference not in classes or len(classes) < 2:
            raise self.error(f"classes must hold the reference {reference!r} and another emotion")
        return classes


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the text {value[:20]!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)
