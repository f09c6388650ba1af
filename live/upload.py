"""``POST /api/explain``: a photo or a short video, explained by ``make explain``'s own engine.

The upload becomes an AU table in a temporary folder (deleted when the answer is sent), and
``explain.run.compute_images`` / ``compute_sequences`` explain it, exactly as ``make explain``
explains a table: the same AU model, contributions, CNN crops and counterfactual. Where the AUs
come from (``au_source`` of each face):

- **OpenFace** (``--openface-bin``, or ``$OPENFACE_BIN``, names an executable
  ``FaceLandmarkImg``): ``explain.openface.extract`` runs the runner on the photo, as ``make
  explain IN=<photo> BACKEND=native`` does;
- **AU estimator** otherwise, and always for videos: the live path's faces (``live.engine``) and
  the estimator's AUs, written as an estimator's image table (``source`` column, the crop's box)
  or, for a video, as a sequence table (``live.session.Recording``), then explained the same way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS, BOX_COLUMNS
from analysis.concepts import CONCEPT_COLUMNS
from analysis.labels import EMOTIONS
from live.engine import LiveEngine
from live.frames import InputError, Limits, check_dimensions, decode
from live.session import Recording, Tracker

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".wmv", ".m4v", ".mpg", ".mpeg")
OPENFACE = "OpenFace 2.2.0 (FaceLandmarkImg)"


def openface_binary(given: str | None) -> str | None:
    """The FaceLandmarkImg to use for photos: ``given``, else ``$OPENFACE_BIN``; None when neither
    names an executable file."""
    binary = given or os.environ.get("OPENFACE_BIN")
    if binary and Path(binary).is_file() and os.access(binary, os.X_OK):
        return binary
    return None


def explain_upload(
    engine: LiveEngine,
    data: bytes,
    filename: str,
    limits: Limits,
    openface_bin: str | None = None,
    openface_args: str = "",
) -> dict:
    """The explanation of an uploaded photo (``{"kind": "image", "faces": [...]}``) or video
    (``{"kind": "video", "frames", "tracks": [...], "faces": [...]}``: the peak frames of each
    track, as ``make explain``'s gallery). ``openface_bin``/``openface_args``: the native OpenFace
    for photos and the arguments added to its call (as ``make explain OPENFACE_ARGS=``).

    Raises:
        InputError: empty, over the size limit, neither an image nor a video OpenCV can read, an
            image side out of bounds, a video without a readable frame.
    """
    if not data:
        raise InputError("empty file (0 bytes)")
    if len(data) > limits.upload_bytes:
        raise InputError(
            f"file of {len(data):,} bytes is over the upload limit of {limits.upload_bytes:,} bytes"
        )
    with tempfile.TemporaryDirectory(prefix="live-upload-") as tmp:
        folder = Path(tmp)
        try:
            check_dimensions(data, limits)
        except InputError as error:
            if not str(error).startswith("not an image"):
                raise
            return _video(engine, data, filename, folder, limits)
        return _image(engine, data, folder, openface_bin, openface_args)


def _image(
    engine: LiveEngine, data: bytes, folder: Path, openface_bin: str | None, openface_args: str
) -> dict:
    """A photo: OpenFace's face (the runner keeps the most confident face of an image, as ``make
    explain`` does) where OpenFace is installed, and the AU estimator's AUs for every other face
    the detector finds (all faces without OpenFace); one table, explained by ``compute_images``."""
    import cv2

    from explain.openface import OpenFaceSettings, extract
    from explain.run import ExplainSettings, compute_images
    from live.session import MIN_IOU, iou

    image = decode(data)
    media = folder / "input"
    media.mkdir()
    name = "upload.png"  # named by the server; PNG keeps the decoded pixels exactly
    cv2.imwrite(str(media / name), image)
    binary = openface_binary(openface_bin)
    found = pd.DataFrame()
    if binary:
        settings = OpenFaceSettings("native", binary, openface_args)
        table, media = extract(media / name, settings, folder / "cache", allow_no_faces=True)
        if table.is_file():
            found = pd.read_csv(table, dtype=str, keep_default_na=False, skipinitialspace=True)
    openface_boxes = (
        [list(map(float, row)) for row in found[list(BOX_COLUMNS)].to_numpy()] if len(found) else []
    )
    detections = engine.detect(image)
    faces, kept = engine.crops(image, detections)
    crop_boxes = [engine.detector.crop_box(d.box) for d in detections]  # OpenFace's kind of box
    others = [  # the detector's faces OpenFace did not take
        (j, i)
        for j, i in enumerate(kept)
        if all(iou(list(crop_boxes[i]), b) < MIN_IOU for b in openface_boxes)
    ]
    if found.empty and not others:
        return {"kind": "image", "faces": [], "au_source": OPENFACE if binary else engine.au_source,
                "note": "no face found"}  # fmt: skip
    aus, concepts, presences = engine.estimate(faces[[j for j, _ in others]] if others else faces[:0])
    extra = [{} for _ in range(len(aus))]  # the estimator's concepts and presences, when it gives them
    for columns, values in ((CONCEPT_COLUMNS, concepts), (AU_C_COLUMNS, presences)):
        for k in range(len(aus)) if values is not None else ():
            extra[k].update({c: repr(float(v)) for c, v in zip(columns, values[k], strict=True)})
    rows = [
        {
            "image": name, "face": len(found) + k, "source": engine.au_source,
            **dict(zip(BOX_COLUMNS, map(repr, map(float, crop_boxes[i])), strict=True)),
            **{c: repr(float(v)) for c, v in zip(AU_R_COLUMNS, aus[k], strict=True)},
            **extra[k],
        }
        for k, (_, i) in enumerate(others)
    ]  # fmt: skip
    table = folder / "au_table_upload.csv"
    pd.concat([found, pd.DataFrame(rows)], ignore_index=True).fillna("").to_csv(table, index=False)
    shown = [*openface_boxes, *(detections[i].box for _, i in others)]
    settings = ExplainSettings(table=table, model=engine.loaded.path, media=media, cnn=True)
    results = compute_images(settings, engine.loaded, engine.cnn_keras, crop_reason="")
    contributions = results.tables["contributions.csv"]
    read = pd.read_csv(table)
    out = []
    for i, record in results.tables["faces.csv"].iterrows():
        out.append(
            {
                "id": i + 1,
                "box": [round(float(v), 1) for v in shown[i]],
                **_models(record),
                "aus": {c: round(float(read[c].iloc[i]), 4) for c in AU_R_COLUMNS},
                "contributions": _contributions(contributions, record["key"]),
                "au_source": record["au_estimator"] or OPENFACE,
                "counterfactual": record.get("cf_sentence", ""),
            }
        )
    sources = sorted({face["au_source"] for face in out})
    return {"kind": "image", "faces": out, "au_source": "; ".join(sources)}


def _video(engine: LiveEngine, data: bytes, filename: str, folder: Path, limits: Limits) -> dict:
    import cv2

    from explain.run import ExplainSettings, compute_sequences

    suffix = Path(filename).suffix.lower()
    path = folder / f"upload{suffix if suffix in VIDEO_SUFFIXES else '.video'}"
    path.write_bytes(data)
    capture = cv2.VideoCapture(str(path))
    recording = Recording("upload", engine.au_source, max_rows=limits.video_frames * 8)
    tracker = Tracker()
    fps = 0.0
    n = 0
    boxes: dict[tuple[int, int], list[float]] = {}  # (frame, face id) -> the detector's box
    try:
        if not capture.isOpened():
            raise InputError("neither an image nor a video OpenCV can read")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        while n < limits.video_frames:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            n += 1
            if max(frame.shape[:2]) > limits.max_side:
                raise InputError(
                    f"video frames of {frame.shape[1]}x{frame.shape[0]} pixels: over {limits.max_side} px"
                )
            result = engine.analyse(frame)
            ids = tracker.assign([f["box"] for f in result.faces])
            for face, face_id in zip(result.faces, ids, strict=True):
                face["id"] = face_id
                boxes[(n, face_id)] = face["box"]
            crops = [engine.detector.crop_box(f["box"]) for f in result.faces]
            timestamp = (n - 1) / fps if fps > 0 else (n - 1) / 30.0
            recording.frames = n - 1  # frame numbers follow the video's, faces or not
            recording.add(result.faces, crops, timestamp)
    finally:
        capture.release()
    if n == 0:
        raise InputError("neither an image nor a video OpenCV can read (no frame decoded)")
    if not recording.rows:
        return {"kind": "video", "frames": n, "tracks": [], "faces": [], "au_source": engine.au_source,
                "note": "no face found in any frame"}  # fmt: skip
    table = recording.save(folder)
    settings = ExplainSettings(table=table, model=engine.loaded.path, media=path, cnn=True)
    results = compute_sequences(settings, engine.loaded, engine.cnn_keras, crop_reason="")
    gallery = results.tables["gallery.csv"]
    contributions = results.tables["contributions.csv"]
    rows = pd.DataFrame(recording.rows)
    faces = []
    for _, card in gallery.iterrows():
        match = rows[(rows["frame"] == card["frame"]) & (rows["face_id"] == card["face_id"])]
        faces.append(
            {
                "id": int(card["face_id"]),
                "frame": int(card["frame"]),
                "timestamp": float(card["timestamp"]),
                "box": boxes.get((int(card["frame"]), int(card["face_id"]))),
                **_models(card),
                "aus": {c: float(match[c].iloc[0]) for c in AU_R_COLUMNS} if len(match) else {},
                "contributions": _contributions(contributions, card["key"]),
                "au_source": engine.au_source,
                "peak_emotion": card["peak_emotion"],
                "counterfactual": card.get("cf_sentence", ""),
            }
        )
    tracks = [_clean(row) for row in results.tables["summary.csv"].to_dict("records")]
    return {"kind": "video", "frames": n, "tracks": tracks, "faces": faces, "au_source": engine.au_source}


def _models(record: pd.Series) -> dict:
    return {
        "probabilities": {e: _number(record[f"au_{e}"]) for e in EMOTIONS},
        "cnn_probabilities": {e: _number(record[f"cnn_{e}"]) for e in EMOTIONS},
        "explained": record["explained"],
        "log_odds": _number(record["log_odds"]),
    }


def _contributions(table: pd.DataFrame, key: str) -> dict:
    rows = table[table["key"] == key]
    return {str(t): _number(v) for t, v in zip(rows["term"], rows["contribution"], strict=True)}


def _number(value) -> float | None:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


def _clean(row: dict) -> dict:
    return {k: (_number(v) if isinstance(v, float) else v) for k, v in row.items()}
