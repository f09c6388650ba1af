"""The CNN stage's own error types: ``python -m cnn_baseline`` prints them as one line
("error: …", exit 2); any other exception is a bug and keeps its traceback."""

from __future__ import annotations

from analysis.au_models import ModelFileError as AUModelFileError


class CNNError(ValueError):
    """An input or setting the CNN stage cannot use; the message names it and what is wrong."""


class FER2013Error(CNNError):
    """FER2013 input that cannot be used; the message names the file and row."""


class ModelFileError(CNNError, AUModelFileError):
    """A model file that cannot be used; the message names the file and what is wrong.

    Also an :class:`analysis.au_models.ModelFileError`, so every CLI that reports a bad model
    file (the AU models' JSON or the CNN's ``.keras``) catches one type."""


class EvaluateError(CNNError):
    """Evaluation settings that cannot work together; the message says which and why."""


class PredictError(CNNError):
    """An image that cannot be classified; the message is the reason (one line, no path)."""
