"""Face detection for the live mode: OpenCV's YuNet (vendored ONNX, sha256-checked), Haar as fallback.

YuNet (Wu, Peng & Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence
Research 2023; ``cv2.FaceDetectorYN``) runs on the frame scaled so that its longer side is
``DETECT_SIDE`` pixels (640x480 -> 320x240: 4-8 ms here, against 15-24 ms at full size, and the
same faces on OpenFace's sample videos); boxes come back in the frame's own pixels. Its model
is not in the OpenCV wheel: ``live/models/`` vendors it (README there: provenance, licence),
and :func:`load_detector` refuses a file whose sha256 differs.

The Haar cascade (Viola & Jones 2001, ``haarcascade_frontalface_default.xml`` from
``cv2.data.haarcascades``, the parameters of ``cnn_baseline.predict.find_face``) is the fallback
where this OpenCV has no ``FaceDetectorYN``, or when asked for (``--detector haar``).

Box conventions: a detection's ``box`` is the detector's own (x, y, w, h) in pixels; the crop the
models see is taken from :func:`landmark_box`, the detector box mapped onto the bounding box of
OpenFace's 68 landmarks (the box ``explain.faces.crop_face`` expects), so a live face is cropped
exactly as ``make explain`` crops an OpenFace face.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parent / "models"
YUNET_MODEL = MODELS / "face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
DETECT_SIDE = 320
SCORE_THRESHOLD = 0.8
NMS_THRESHOLD = 0.3
# YuNet box -> OpenFace landmark box, measured on the 90 faces of tests/fixtures/openface/video
# (default_30.avi, multi_face_20.avi) against OpenFace 2.2.0's recorded 2D landmarks: same width
# (ratio 0.98-1.01) and horizontal centre; height 0.75 of YuNet's (sd 0.01-0.05), centre 0.10 of
# YuNet's height lower (YuNet's box holds the forehead, the landmarks stop at the brows).
LANDMARK_HEIGHT = 0.75
LANDMARK_SHIFT = 0.10
DETECTORS = ("yunet", "haar")


class DetectorError(RuntimeError):
    """The detector cannot be used (one line: which file, what is wrong)."""


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` (x, y, w, h) in pixels of the frame, ``score`` the detector's 0-1
    confidence (Haar gives none: 1.0)."""

    box: tuple[float, float, float, float]
    score: float


class YuNet:
    """``cv2.FaceDetectorYN`` on frames scaled to ``DETECT_SIDE``; see the module docstring."""

    name = "YuNet (OpenCV FaceDetectorYN, face_detection_yunet_2023mar.onnx)"

    def __init__(
        self, path: Path = YUNET_MODEL, score: float = SCORE_THRESHOLD, side: int | None = DETECT_SIDE
    ):
        import cv2

        self._net = cv2.FaceDetectorYN.create(
            str(path), "", (DETECT_SIDE, DETECT_SIDE), score, NMS_THRESHOLD, 50
        )
        self._side = side  # None: the frame's own size (the benchmark's comparison)
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces of a BGR frame (h, w, 3) uint8, largest first."""
        import cv2

        height, width = image.shape[:2]
        factor = min(1.0, self._side / max(height, width)) if self._side else 1.0
        small = (
            image
            if factor == 1.0
            else cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        )
        size = (small.shape[1], small.shape[0])
        if size != self._size:  # the network is reshaped only when the frame size changes
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(small)
        if faces is None:
            return []
        found = [Detection(tuple(float(v) / factor for v in face[:4]), float(face[14])) for face in faces]
        return sorted(found, key=lambda d: -d.box[2] * d.box[3])

    @staticmethod
    def crop_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """The landmark box ``explain.faces.crop_face`` crops from (:func:`landmark_box`)."""
        return landmark_box(box)


class Haar:
    """OpenCV's frontal-face Haar cascade, with ``cnn_baseline.predict.find_face``'s parameters."""

    name = "Haar cascade (haarcascade_frontalface_default.xml)"

    def __init__(self):
        import cv2

        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect(self, image: np.ndarray) -> list[Detection]:
        import cv2

        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        faces = self._cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(48, 48))
        found = [Detection(tuple(float(v) for v in face), 1.0) for face in faces]
        return sorted(found, key=lambda d: -d.box[2] * d.box[3])

    @staticmethod
    def crop_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """The box whose ``explain.faces.crop_face`` crop is the cascade's box itself (the crop
        ``cnn_baseline.predict.find_face`` takes): a square of side w / MARGIN, lifted by LIFT."""
        from explain.faces import LIFT, MARGIN

        x, y, w, h = box
        side = max(w, h) / MARGIN
        cx, cy = x + w / 2, y + h / 2 + LIFT * side
        return cx - side / 2, cy - side / 2, side, side


def check_model(path: Path = YUNET_MODEL, sha256: str = YUNET_SHA256) -> None:
    """Raises DetectorError: ``path`` is missing or its sha256 is not the vendored one's."""
    if not path.is_file():
        raise DetectorError(f"{path}: no YuNet model (the repository vendors it in live/models/)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise DetectorError(
            f"{path}: sha256 {digest[:16]}..., not the vendored YuNet model's {sha256[:16]}... "
            "(restore live/models/ from the repository; see live/models/README.md)"
        )


def load_detector(kind: str = "yunet", path: Path = YUNET_MODEL) -> tuple[YuNet | Haar, str]:
    """The detector and a note for the page (empty, or why the fallback is used).

    Raises:
        DetectorError: an unknown ``kind``; YuNet asked for and its model is missing or altered.
    """
    import cv2

    if kind not in DETECTORS:
        raise DetectorError(f"unknown detector {kind!r}: one of {', '.join(DETECTORS)}")
    if kind == "haar":
        return Haar(), "Haar cascade, as asked (--detector haar)"
    check_model(path)
    if not hasattr(cv2, "FaceDetectorYN"):
        return Haar(), f"this OpenCV ({cv2.__version__}) has no FaceDetectorYN: Haar cascade instead"
    return YuNet(path), ""


def landmark_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A detector box mapped onto OpenFace's landmark box (``LANDMARK_HEIGHT``, ``LANDMARK_SHIFT``):
    (x, y, w, h) pixels -> (x, y, w, h) pixels, as ``explain.faces.crop_face`` takes it."""
    x, y, w, h = box
    cy = y + h / 2 + LANDMARK_SHIFT * h
    height = LANDMARK_HEIGHT * h
    return x, cy - height / 2, w, height
