"""Emotion probabilities for image files: take or find the face, classify it.

How the face is taken from each file (``faces``):

- ``"cropped"``: the whole image is the face (any size; sides at most 2:1), as FER2013's
  faces are;
- ``"detect"``: OpenCV's bundled Haar cascade (Viola & Jones 2001;
  ``haarcascade_frontalface_default.xml`` from ``cv2.data.haarcascades``) finds the faces,
  as the seed project did, and the largest is cropped;
- ``"auto"`` (default): an image of exactly 48x48 grey pixels is a FER2013-style face crop
  and is taken whole (the cascade, run on such crops, missed 13 of the 30 replay faces in
  ``tests/fixtures/openface/replay/input/``); any other image goes through the cascade.

The face is made grey, brought to FER2013's 48x48 (``cv2.INTER_AREA``) and then to the
model's input exactly as the FER2013 faces are in training and evaluation
(``cnn_baseline.preprocess.model_inputs``), and classified mirror-averaged
(``cnn_baseline.evaluate.MIRROR``).

Every file ends as a row: its probabilities, or the reason it could not be classified
(missing, empty, not an image, over OpenCV's size limit, too small, no face found). One bad
file never stops the others.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from cnn_baseline.data import CLASS_NAMES, SIDE
from cnn_baseline.errors import PredictError

FaceMode = Literal["auto", "detect", "cropped"]
FACE_MODES: tuple[FaceMode, ...] = ("auto", "detect", "cropped")
# Small images (FER2013's 48 px) are enlarged before detection: the cascade's window is 24 px.
MIN_DETECT_SIDE = 192
# ... but never beyond this longer side (a 1x10000 image would otherwise become 192x1,920,000).
MAX_DETECT_SIDE = 4096
MIN_FACE_SIDE = 24  # the cascade's window: a shorter side cannot hold a face it can find
MAX_CROP_ASPECT = 2.0  # a given face crop is about square: longer side at most twice the shorter
GREY_TOLERANCE = 2  # colour channels differing by at most this (0-255) count as grey (JPEG noise)


def read_grey(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as grey pixels, (height, width) uint8 0-255, decoded by OpenCV.

    The bytes are read by Python (any file name works) and decoded with ``cv2.imdecode``.

    Raises:
        PredictError: missing, a folder, empty, unreadable, not an image, or over OpenCV's
            size limit (``CV_IO_MAX_IMAGE_PIXELS``, 2^30 pixels by default).
    """
    import cv2

    data = _bytes(Path(path))
    try:
        grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):
            raise PredictError("larger than OpenCV's image size limit (2^30 pixels)") from None
        raise PredictError(f"OpenCV cannot decode it ({_one_line(exc)})") from None
    if grey is None or grey.size == 0:
        raise PredictError(f"not an image OpenCV can read ({len(data):,} bytes)")
    return grey


def is_fer_crop(path: str | os.PathLike[str], grey: np.ndarray) -> bool:
    """Whether an image is a FER2013-style face crop: exactly 48x48 and grey (one channel, or
    colour channels equal within ``GREY_TOLERANCE``)."""
    import cv2

    if grey.shape != (SIDE, SIDE):
        return False
    image = cv2.imdecode(np.frombuffer(_bytes(Path(path)), np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim == 2 or image.shape[2] == 1:
        return image is not None
    colour = image[..., :3].astype(int)
    return int((colour.max(axis=2) - colour.min(axis=2)).max()) <= GREY_TOLERANCE


def find_face(grey: np.ndarray) -> np.ndarray:
    """The largest frontal face in a grey image (height, width), as a grey crop (pixels 0-255).

    The image is enlarged so that its shorter side is ``MIN_DETECT_SIDE`` (longer side capped
    at ``MAX_DETECT_SIDE``) before the Haar cascade runs; the crop comes from the enlarged image.

    Raises:
        PredictError: the image is too small to hold a face, or the cascade found none.
    """
    import cv2

    height, width = grey.shape
    if min(height, width) < MIN_FACE_SIDE:
        raise PredictError(
            f"{width}x{height} pixels: too small to hold a face the detector can find "
            f"(its window is {MIN_FACE_SIDE} px)"
        )
    factor = max(1.0, MIN_DETECT_SIDE / min(height, width))
    factor = max(1.0, min(factor, MAX_DETECT_SIDE / max(height, width)))
    big = cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC) if factor > 1 else grey
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(big, scaleFactor=1.1, minNeighbors=5, minSize=(48, 48))
    if len(faces) == 0:
        raise PredictError("no face found by the Haar cascade (pass --cropped if the file is a face crop)")
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return big[y : y + h, x : x + w]


def face_of(path: str | os.PathLike[str], faces: FaceMode = "auto") -> tuple[np.ndarray, str]:
    """The face of one image file as FER2013 pixels, (48, 48) uint8 0-255, and how it was
    taken: ``"crop"`` (the whole image) or ``"detected"`` (Haar cascade).

    Raises:
        PredictError: the file cannot be read or decoded, or it holds no usable face.
        ValueError: ``faces`` is not one of ``FACE_MODES``.
    """
    import cv2

    if faces not in FACE_MODES:
        raise ValueError(f"faces must be one of {', '.join(FACE_MODES)}, not {faces!r}")
    grey = read_grey(path)
    if faces == "cropped" or (faces == "auto" and is_fer_crop(path, grey)):
        height, width = grey.shape
        if max(height, width) > MAX_CROP_ASPECT * min(height, width):
            raise PredictError(
                f"{width}x{height} pixels: not a face crop (sides differ by more than {MAX_CROP_ASPECT:g}:1)"
            )
        face, how = grey, "crop"
    else:
        face, how = find_face(grey), "detected"
    if face.shape != (SIDE, SIDE):
        face = cv2.resize(face, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    return face, how


def predict_files(
    paths: list[str | os.PathLike[str]], model_path: str | os.PathLike[str], faces: FaceMode = "auto"
) -> pd.DataFrame:
    """One row per file, in order: ``file``, ``face`` (``crop``, ``detected`` or empty),
    ``predicted``, the 7 class probabilities (FER2013 order) and ``error`` (empty, or why the
    file was not classified; its probabilities are then NaN).

    Raises:
        ModelFileError: ``model_path`` is not a usable model (before any image is read).
    """
    from cnn_baseline.evaluate import class_probabilities
    from cnn_baseline.model import load_model
    from cnn_baseline.preprocess import model_inputs

    model = load_model(model_path, num_classes=len(CLASS_NAMES))
    rows: list[dict] = []
    crops: list[np.ndarray] = []
    for path in paths:
        row = {"file": _display(path), "face": "", "predicted": "", **dict.fromkeys(CLASS_NAMES, np.nan)}
        try:
            face, row["face"] = face_of(path, faces)
        except PredictError as exc:
            rows.append({**row, "error": str(exc)})
            continue
        crops.append(face)
        rows.append({**row, "error": ""})
    if crops:
        prob = class_probabilities(model, model_inputs(np.stack(crops)[..., None], model.input_shape[1]))
        done = iter(prob)
        for row in rows:
            if not row["error"]:
                p = next(done)
                row.update(zip(CLASS_NAMES, map(float, p), strict=True))
                row["predicted"] = CLASS_NAMES[int(p.argmax())]
    return pd.DataFrame(rows, columns=["file", "face", "predicted", *CLASS_NAMES, "error"])


def _bytes(path: Path) -> bytes:
    if not path.exists():
        raise PredictError("no such file")
    if path.is_dir():
        raise PredictError("a folder, not an image file")
    if not path.is_file():
        raise PredictError("not a regular file (a device, socket or pipe)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PredictError(f"cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise PredictError("empty file (0 bytes)")
    return data


def _display(path: str | os.PathLike[str]) -> str:
    """A file name printable on any terminal: undecodable bytes as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
