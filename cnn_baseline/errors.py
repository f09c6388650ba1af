"""The CNN stage's own error types: ``python -m cnn_baseline`` prints them as one line
("error: …", exit 2); any other exception is a bug and keeps its traceback."""

from __future__ import annotations


class CNNError(ValueError):
    """An input or setting the CNN stage cannot use; the message names it and what is wrong."""


class FER2013Error(CNNError):
    """FER2013 input that cannot be used; the message names the file and row."""


class ModelFileError(CNNError):
    """A model file that cannot be used; the message names the file and what is wrong."""


class EvaluateError(CNNError):
    """Evaluation settings that cannot work together; the message says which and why."""


class PredictError(CNNError):
    """An image that cannot be classified; the message is the reason (one line, no path)."""
