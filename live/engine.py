"""One frame in, per face the AU model's explanation out: detect, crop, AU estimator, AU model, CNN.

The stages are the project's own, called in process:

- faces: ``live.detector`` (YuNet; Haar as fallback), cropped by ``explain.faces.crop_face`` from
  the detector box mapped onto OpenFace's landmark box (``live.detector.landmark_box``), so a
  live face is the 48x48 grey crop ``make explain`` takes of an OpenFace face;
- AUs: the AU estimator (``cnn_baseline.au_estimator.estimate_aus``: mirror-averaged, 0-5);
- emotions and contributions: the saved AU model as ``explain`` loads it
  (``explain.models.load_au_model``) and explains it (``explain.explanations.explain_face``:
  exact per-term contributions to the explained emotion's log-odds vs neutral);
- CNN: mini-XCEPTION (``explain.models.cnn_probabilities``: mirror-averaged, six emotions).

Speed: Keras' ``predict``/``predict_on_batch`` cost 70-290 ms a call here, whatever the batch;
calling the model inside one ``tf.function`` costs 3-7 ms. :class:`CompiledModel` wraps each
network so that the project's helpers above run unchanged on the fast call; all faces of a frame
go through in one batch (with their mirrors).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS
from analysis.concepts import CONCEPT_COLUMNS
from analysis.labels import EMOTIONS
from live.detector import Detection, load_detector

MAX_FACES = 8
"""Faces explained per frame at most (the largest); more are counted, not explained."""
DIGITS = 4


class LiveError(RuntimeError):
    """The live mode cannot start or cannot take an input (one line)."""


class CompiledModel:
    """A Keras model called directly inside one ``tf.function`` (input (None, *input_shape[1:])
    float32, traced once): ``input_shape``, ``output_shape`` and ``predict_on_batch`` as the
    model's, so ``cnn_baseline``'s prediction helpers take it unchanged."""

    def __init__(self, model):
        import tensorflow as tf

        self.keras_model = model
        self.input_shape = model.input_shape
        self.output_shape = model.output_shape
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        self._call = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def predict_on_batch(self, inputs: np.ndarray) -> np.ndarray:
        return self._call(np.asarray(inputs, np.float32)).numpy()


@dataclass
class FrameResult:
    """``faces``: one dict per explained face (``box``, ``score``, ``probabilities``,
    ``cnn_probabilities``, ``aus``, ``contributions``, ``explained``, ``log_odds``; no ``id``:
    tracking is per connection); ``found``: faces detected; ``timings``: ms per stage."""

    faces: list[dict]
    found: int
    timings: dict[str, float] = field(default_factory=dict)
    crops: np.ndarray | None = None


class LiveEngine:
    """The models of the live path, loaded once.

    Args:
        model: the saved AU model (.json), as ``make explain MODEL=`` takes it; it must read AU
            intensities only (the estimator gives no presences).
        estimator, cnn: ``.keras`` files (defaults: the committed ones).
        detector: ``"yunet"`` or ``"haar"``.

    Raises:
        LiveError: the AU model reads AU presences; ModelFileError: a model file is unusable;
        DetectorError: the YuNet file is missing or altered.
    """

    def __init__(
        self, model: str | Path, estimator: str | Path | None = None, cnn: str | Path | None = None,
        detector: str = "yunet",
    ):  # fmt: skip
        import cnn_baseline  # noqa: F401  (TensorFlow's settings before it loads)
        from cnn_baseline.au_estimator import (
            DEFAULT_AU_MODEL,
            estimates_concepts,
            estimates_presences,
            load_au_estimator,
        )
        from explain.estimate import estimator_label
        from explain.models import load_au_model, load_cnn

        self.loaded = load_au_model(model)
        self.estimator_path = Path(estimator or DEFAULT_AU_MODEL)
        self.estimator_keras = load_au_estimator(self.estimator_path)
        concepts, presences = (
            estimates_concepts(self.estimator_keras),
            estimates_presences(self.estimator_keras),
        )
        given = {*AU_R_COLUMNS, *(CONCEPT_COLUMNS if concepts else ()), *(AU_C_COLUMNS if presences else ())}
        unreadable = [c for c in self.loaded.columns if c not in given]
        if unreadable:
            gives = (
                "the 17 intensities"
                + (", the six concepts" if concepts else "")
                + (" and the 18 presences" if presences else "")
            )
            raise LiveError(
                f"{model}: the AU model reads {', '.join(unreadable[:3])} ..., which the AU estimator "
                f"{self.estimator_path.name} does not give (it estimates {gives} only): use a model "
                "on those, e.g. MODEL=reports/logit/model.json (make fit-logit)"
            )
        self.estimator = CompiledModel(self.estimator_keras)
        self.au_source = estimator_label(self.estimator_path)
        self.cnn_keras = load_cnn(cnn)
        if self.cnn_keras.model is None:
            raise LiveError(f"no CNN: {self.cnn_keras.reason}")
        from explain.models import CNN

        self.cnn = CNN(CompiledModel(self.cnn_keras.model), self.cnn_keras.name)
        self.detector, self.detector_note = load_detector(detector)
        self.warm_up()

    def warm_up(self) -> None:
        """Trace both networks once (the first call of a ``tf.function`` costs seconds)."""
        grey = np.full((2, 48, 48), 128, np.uint8)
        self.estimate_aus(grey)
        self.cnn_probabilities(grey)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces of a BGR frame, largest first (at most ``MAX_FACES``)."""
        return self.detector.detect(image)[:MAX_FACES]

    def crops(self, image: np.ndarray, detections: list[Detection]) -> tuple[np.ndarray, list[int]]:
        """(n, 48, 48) grey crops of the detections (``explain.faces.crop_face``) and the indices of
        the detections they belong to (a box wholly outside the frame has none)."""
        import cv2

        from explain.faces import crop_face

        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        faces, kept = [], []
        for i, detection in enumerate(detections):
            face = crop_face(grey, self.detector.crop_box(detection.box))
            if face is not None:
                faces.append(face)
                kept.append(i)
        return (np.stack(faces) if faces else np.zeros((0, 48, 48), np.uint8)), kept

    def analyse(self, image: np.ndarray) -> FrameResult:
        """Every face of a BGR frame (h, w, 3) uint8, explained; timings in ms per stage."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        detections = self.detect(image)
        timings["detect"] = _ms(start)
        start = time.perf_counter()
        faces, kept = self.crops(image, detections)
        timings["crop"] = _ms(start)
        start = time.perf_counter()
        estimates = self.estimate(faces)
        timings["au_estimator"] = _ms(start)
        start = time.perf_counter()
        explained = self.explain_aus(estimates)
        timings["au_model"] = _ms(start)
        start = time.perf_counter()
        cnn = self.cnn_probabilities(faces)
        timings["cnn"] = _ms(start)
        out = []
        for j, i in enumerate(kept):
            detection = detections[i]
            out.append(
                {
                    "box": [round(v, 1) for v in detection.box],
                    "score": round(detection.score, DIGITS),
                    **explained[j],
                    "cnn_probabilities": _rounded(dict(zip(EMOTIONS, cnn[j], strict=True))),
                }
            )
        return FrameResult(out, len(detections), timings, faces)

    def explain_aus(self, estimates) -> list[dict]:
        """Per face of ``estimates`` (``cnn_baseline.au_estimator.Estimates``: (n, 17) AU
        intensities, and (n, 6) concepts in inter-ocular distances and (n, 18) presences 0/1 when
        the estimator gives them): the AU model's ``probabilities``, the ``aus`` (and ``concepts``,
        ``presences``), the explained emotion, its log-odds and the per-term ``contributions``
        (``explain_face``)."""
        from explain.explanations import explain_face

        if len(estimates.aus) == 0:
            return []
        parts = {"aus": (AU_R_COLUMNS, estimates.aus), "concepts": (CONCEPT_COLUMNS, estimates.concepts),
                 "presences": (AU_C_COLUMNS, estimates.presences)}  # fmt: skip
        given = {key: (columns, values) for key, (columns, values) in parts.items() if values is not None}
        rows = pd.concat(
            [pd.DataFrame(values, columns=list(columns)) for columns, values in given.values()], axis=1
        )
        probabilities = self.loaded.model.predict_proba(rows[self.loaded.columns])
        out = []
        for i in range(len(rows)):
            p = probabilities.iloc[i]
            explanation = explain_face(self.loaded, rows.iloc[i], p)
            out.append(
                {
                    "probabilities": _rounded({e: float(p[e]) for e in EMOTIONS}),
                    **{
                        key: _rounded(dict(zip(columns, map(float, values[i]), strict=True)))
                        for key, (columns, values) in given.items()
                    },
                    "contributions": _rounded(
                        {str(k): float(v) for k, v in explanation.contributions.items()}
                    ),
                    "explained": explanation.emotion,
                    "log_odds": round(explanation.log_odds, DIGITS),
                }
            )
        return out

    def estimate(self, faces: np.ndarray):
        """``cnn_baseline.au_estimator.estimate`` of (n, 48, 48) grey faces 0-255: ``Estimates``
        (AUs 0-5; concepts and presences, or None)."""
        from cnn_baseline.au_estimator import estimate

        return estimate(self.estimator, faces[..., None])

    def estimate_aus(self, faces: np.ndarray) -> np.ndarray:
        return self.estimate(faces)[0]

    def cnn_probabilities(self, faces: np.ndarray) -> np.ndarray:
        from explain.models import cnn_probabilities

        return cnn_probabilities(self.cnn, faces)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _rounded(values: dict[str, float]) -> dict[str, float | None]:
    """Values rounded for the wire; NaN (no value) as null."""
    return {k: (round(float(v), DIGITS) if np.isfinite(v) else None) for k, v in values.items()}
