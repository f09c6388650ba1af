"""What the network sees: FER2013-style grey faces (pixels 0-255) as mini-XCEPTION inputs.

The original's preprocessing (``oarriaga/face_classification``, ``preprocess_input``):
pixels scaled from 0-255 to [-1, 1]. Used by training, evaluation, ``predict``, Grad-CAM
and ``make compare`` alike, so that every path feeds the model the same numbers.
"""

from __future__ import annotations

import numpy as np

from cnn_baseline.data import resized


def scale(pixels: np.ndarray) -> np.ndarray:
    """Pixels 0-255 (any shape) -> float32 in [-1, 1], the original's preprocessing."""
    return pixels.astype("float32") / 127.5 - 1.0


def model_inputs(pixels: np.ndarray, side: int = 48) -> np.ndarray:
    """(n, h, w, 1) pixels 0-255 -> (n, side, side, 1) float32 in [-1, 1], the input of a
    mini-XCEPTION ``side`` pixels wide (``model.input_shape[1]``); resized bilinearly
    (OpenCV) when the faces are not ``side`` wide (FER2013's are 48x48)."""
    return scale(resized(pixels, side))
