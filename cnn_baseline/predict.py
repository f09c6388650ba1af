"""Emotion probabilities for image files: find the face, crop it, classify it.

Faces are found with OpenCV's bundled Haar cascade (Viola & Jones 2001;
``haarcascade_frontalface_default.xml`` from ``cv2.data.haarcascades``), as the seed
project did; the largest face is cropped, made grey, resized to the model's input and
scaled to [-1, 1].
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from cnn_baseline.data import CLASS_NAMES

# Small images (FER2013's 48 px) are enlarged before detection: the cascade's window is 24 px.
MIN_DETECT_SIDE = 192


class PredictError(ValueError):
    """An image that cannot be classified (unreadable, or no face found)."""


def find_face(path: str | os.PathLike[str]) -> np.ndarray:
    """The largest frontal face of an image as a grey crop (pixels 0-255).

    Raises:
        PredictError: unreadable or corrupt file, or no face found.
    """
    import cv2

    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise PredictError(f"{path}: unreadable or not an image")
    scale = max(1.0, MIN_DETECT_SIDE / min(grey.shape))
    big = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale > 1 else grey
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(big, scaleFactor=1.1, minNeighbors=5, minSize=(48, 48))
    if len(faces) == 0:
        raise PredictError(f"{path}: no face found")
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return big[y : y + h, x : x + w]


def predict_files(paths: list[str | os.PathLike[str]], model_path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per file: ``file``, ``predicted``, the 7 class probabilities, or ``error``.

    Files that cannot be classified keep a row with the reason in ``error``.
    """
    import cv2
    import keras

    from cnn_baseline.evaluate import class_probabilities
    from cnn_baseline.train import scale

    model = keras.models.load_model(model_path, compile=False)
    side = model.input_shape[1]
    rows = []
    for path in paths:
        try:
            face = cv2.resize(find_face(path), (side, side), interpolation=cv2.INTER_AREA)
        except PredictError as exc:
            rows.append({"file": str(path), "error": str(exc)})
            continue
        prob = class_probabilities(model, scale(face[None, ..., None]))[0]
        rows.append(
            {
                "file": str(path),
                "predicted": CLASS_NAMES[int(prob.argmax())],
                **dict(zip(CLASS_NAMES, map(float, prob), strict=True)),
                "error": "",
            }
        )
    return pd.DataFrame(rows)
