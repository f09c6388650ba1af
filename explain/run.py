"""``make explain``: compute the explanations of an AU table (no labels), then write them as a unit.

Computing (:func:`compute_images`, :func:`compute_sequences`) is separate from writing
(:func:`write_results`, one results unit with a manifest, ``analysis.results``); :func:`run_explain`
does both. The page is rendered from the written files alone (``explain.report``).

Results (``reports/explain/``):

- ``metrics.json``: the input, the models (file, family, training data, counterfactual exact or
  not, bounds), the CNN (or why there is none), face crops (or why there are none), smoothing
  window, counts, seconds;
- images: ``faces.csv`` (one row per face: AU-model and CNN probabilities, the explained
  emotion and its log-odds, OpenFace's confidence, the counterfactual);
- videos: ``frames.csv`` (one row per frame and tracked face: raw and smoothed probabilities
  of both models, NaN where masked, the driving AUs' intensities), ``summary.csv`` (one row per
  track), ``gallery.csv`` (the bounded peak frames, explained like faces);
- ``contributions.csv``: ``key, emotion, term, contribution`` of every explained face or
  gallery frame (sums to its log-odds); ``crops.npz``: ``keys``, ``faces`` (n, 48, 48) uint8
  and ``cams`` (n, 48, 48) Grad-CAM maps of the explained faces that have a crop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import AU_R_COLUMNS, au_code
from analysis.files import write_csv, write_json
from analysis.labels import EMOTIONS
from analysis.results import check_writable, results_unit
from explain import data as tables
from explain import faces as crops
from explain import video as timeseries
from explain.explanations import contribution_rows, counterfactual_fields, explain_face
from explain.models import CNN, LoadedModel, cnn_gradcam, cnn_probabilities, load_au_model, load_cnn

DRIVERS = 5
DRIVER_SAMPLE = 2000
CNN_BATCH = 256


@dataclass
class ExplainSettings:
    """What one run explains and with what.

    ``table``: the AU table; ``model``: the saved AU model (.json); ``media``: the image
    folder, video file or folder the table's ``image``/``video`` paths are relative to (None:
    no face crops); ``source``: what the user gave (``IN=`` or ``AUS=``), for the page;
    ``window_s``: smoothing window (s); ``max_gallery``: most peak frames shown per run;
    ``cnn``: use the CNN (False: AU model only); ``unexplained``: the inputs left out (``input``
    or ``image``, ``label, reason``: the runner's failures, images or videos, or what the
    estimator could not take either); ``truncated``: the videos the runner read in part;
    ``openface_missed``: how many images OpenFace found no face in; ``estimated_missed``: their
    AUs were estimated (``explain.estimate``); ``estimator``: the estimator's ``source`` text.
    """

    table: Path
    model: Path
    out_dir: Path = Path("reports/explain")
    media: Path | None = None
    source: str = ""
    cnn: bool = True
    cnn_model: Path | None = None
    window_s: float = timeseries.DEFAULT_WINDOW_S
    max_gallery: int = timeseries.MAX_GALLERY
    chunk_rows: int = tables.CHUNK_ROWS
    unexplained: pd.DataFrame | None = None
    truncated: set[str] = field(default_factory=set)
    openface_missed: int = 0
    estimated_missed: bool = False
    estimator: str = ""


@dataclass
class ExplainResults:
    """Everything computed, before anything is written: CSV tables by file name, ``metrics``,
    and the explained faces' crops (``keys``, ``faces`` uint8, ``cams`` float16)."""

    tables: dict[str, pd.DataFrame]
    metrics: dict
    keys: list[str] = field(default_factory=list)
    faces: np.ndarray = field(default_factory=lambda: np.zeros((0, 48, 48), np.uint8))
    cams: np.ndarray = field(default_factory=lambda: np.zeros((0, 48, 48), np.float16))


def run_explain(settings: ExplainSettings) -> dict:
    """Explain the table, write ``settings.out_dir`` as a unit; return ``metrics.json``'s content.

    Raises:
        ExplainError: the table cannot be read or has no AU columns.
        ModelFileError: the model file is unusable (one line).
    """
    check_writable(settings.out_dir)  # before the work, not after it
    results = compute(settings)
    write_results(results, settings.out_dir)
    return results.metrics


def compute(settings: ExplainSettings) -> ExplainResults:
    """The explanations of ``settings.table``, images or sequences; nothing written."""
    start = time.perf_counter()
    kind = tables.table_kind(settings.table)
    loaded = load_au_model(settings.model)
    crop_reason = _crop_reason(settings, tables.has_boxes(settings.table) or _has_estimates(settings.table))
    if not settings.cnn:
        cnn = CNN(None, "mini-XCEPTION", "left out (--no-cnn)")
    elif crop_reason:
        cnn = CNN(None, "mini-XCEPTION", "no face crops to classify (see Face crops)")
    else:
        cnn = load_cnn(settings.cnn_model)
    if kind == "images":
        results = compute_images(settings, loaded, cnn, crop_reason)
    else:
        results = compute_sequences(settings, loaded, cnn, crop_reason)
    results.metrics.update(
        {
            "kind": kind,
            "source": settings.source or settings.table.name,
            "table": settings.table.name,
            "model": _model_metrics(loaded),
            "cnn": {"name": cnn.name, "available": cnn.model is not None, "reason": cnn.reason},
            "openface_missed": settings.openface_missed,
            "estimated_missed": settings.estimated_missed,
            "estimator": settings.estimator,
        }
    )
    unexplained = _unexplained(settings.unexplained)
    results.metrics["n_unexplained"] = int(len(unexplained))
    results.tables["unexplained.csv"] = unexplained  # always written: an empty one says none failed
    crop_reason = results.metrics.pop("crop_reason_video", crop_reason)  # a video that would not open
    results.metrics.update(
        {
            "crops": {"available": not crop_reason, "reason": crop_reason},
            "seconds": time.perf_counter() - start,
        }
    )
    return results


def write_results(results: ExplainResults, out_dir: str | Path) -> Path:
    """Write ``results`` into ``out_dir`` as a unit (staged beside it, then swapped in); return it."""
    with results_unit(out_dir, stage="explain") as staging:
        for name, table in results.tables.items():
            write_csv(staging / name, table)
        with open(staging / "crops.npz", "wb") as handle:
            np.savez_compressed(
                handle,
                keys=np.array(results.keys, dtype=str),
                faces=results.faces.astype(np.uint8),
                cams=results.cams.astype(np.float16),
            )
        write_json(staging / "metrics.json", results.metrics)
    return Path(out_dir)


# ------------------------------------------------------------------------------------ images


def compute_images(
    settings: ExplainSettings, loaded: LoadedModel, cnn: CNN, crop_reason: str
) -> ExplainResults:
    """Every face of an image table: both models' probabilities, contributions, counterfactual, crop."""
    from explain.estimate import source_labels

    table = tables.read_image_table(settings.table)
    _check_model_columns(loaded, table.columns, settings.table)
    estimated = tables.estimated_rows(table)
    _check_estimated_inputs(loaded, table, estimated, settings.table)
    probs = loaded.model.predict_proba(table[loaded.columns].astype(float))
    keys = [f"face{i + 1}" for i in range(len(table))]
    sources = (
        table["source"].astype(str).str.strip() if "source" in table else pd.Series("", index=table.index)
    )
    labels = source_labels(sources, settings.estimated_missed)

    face_crops: dict[int, np.ndarray] = {}
    missing_crop: dict[int, str] = {}
    if not crop_reason:
        for i, row in table.iterrows():
            path = _media_path(settings.media, str(row["image"]))
            box = tuple(row[list(tables.BOX_COLUMNS)]) if tables.BOX_COLUMNS[0] in table else (np.nan,) * 4
            if estimated[i] and not np.all(np.isfinite(np.asarray(box, float))):
                crop, missing_crop[i] = _estimator_face(path)  # the face the estimator saw
            else:
                image = crops.read_image(path)
                crop = None if image is None else crops.crop_face(image, box)
                if crop is None:
                    missing_crop[i] = (
                        "no usable box" if image is not None else "image not found or box outside it"
                    )
            if crop is not None:
                face_crops[i] = crop
    order = sorted(face_crops)
    stacked = np.stack([face_crops[i] for i in order]) if order else np.zeros((0, 48, 48), np.uint8)
    cnn_prob = cnn_probabilities(cnn, stacked)
    cams = cnn_gradcam(cnn, stacked)

    rows, contributions = [], []
    cnn_by_row = {i: cnn_prob[j] for j, i in enumerate(order)}
    for i, row in table.iterrows():
        p = probs.iloc[i]
        explanation = explain_face(loaded, row, p)
        record = {
            "key": keys[i],
            "image": str(row["image"]),
            "au_source": labels[i],
            "au_estimator": sources[i] if estimated[i] else "",
            "confidence": float(row["confidence"]),  # NaN: estimated, OpenFace never fitted it
            "success": pd.NA if np.isnan(row["success"]) else int(row["success"]),
            "au_predicted": str(p.idxmax()),
            **{f"au_{e}": float(p.get(e, np.nan)) for e in EMOTIONS},
            "cnn_predicted": _top(cnn_by_row.get(i)),
            **{f"cnn_{e}": _value(cnn_by_row.get(i), k) for k, e in enumerate(EMOTIONS)},
            "explained": explanation.emotion,
            "log_odds": explanation.log_odds,
            "crop": i in face_crops,
            "crop_note": "" if i in face_crops else (crop_reason or missing_crop.get(i, "")),
            **counterfactual_fields(loaded, row),
        }
        rows.append(record)
        contributions.extend(contribution_rows(keys[i], explanation))
    metrics = {
        "n_faces": int(len(table)),
        "n_crops": len(order),
        "n_unsuccessful": int((table["success"] == 0).sum()),  # OpenFace's rows only (NaN: estimated)
        "n_openface": int((~estimated).sum()),
        "n_estimated": int(estimated.sum()),
        "au_sources": {str(k): int(v) for k, v in sources[estimated].value_counts(sort=False).items()},
    }
    faces = pd.DataFrame(rows)
    faces["success"] = faces["success"].astype("Int64")  # written 1/0, empty for estimated faces
    return ExplainResults(
        tables={"faces.csv": faces, "contributions.csv": pd.DataFrame(contributions)},
        metrics=metrics,
        keys=[keys[i] for i in order],
        faces=stacked,
        cams=np.asarray(cams, dtype=np.float16),
    )


# --------------------------------------------------------------------------------- sequences


UNEXPLAINED_COLUMNS = ["input", "label", "reason"]


def _unexplained(table: pd.DataFrame | None) -> pd.DataFrame:
    """``unexplained.csv``: one row per input (image or video) left out, with its reason."""
    if table is None:
        return pd.DataFrame(columns=UNEXPLAINED_COLUMNS)
    table = table.rename(columns={"image": "input", "video": "input"})
    if "label" not in table:
        table = table.assign(label="")
    return table[UNEXPLAINED_COLUMNS].reset_index(drop=True)


def partial_sentence(video: dict) -> str:
    """``"cut.avi: read 9 of 30 frames"`` for a ``metrics.json`` ``partial_videos`` entry."""
    return f"{video['video']}: read {video['frames_read']:,} of {video['frames_declared']:,} frames"


def _frames_per_video(settings: ExplainSettings, frames: pd.DataFrame) -> dict[str, tuple[int, int | None]]:
    """Per video of the table: frames in the table (read by OpenFace) and frames its header
    declares (None without the video file, e.g. ``--aus`` alone, or when OpenCV cannot tell)."""
    from openface_runner.video import declared_frames

    out = {}
    for video, group in frames.groupby("video", sort=False):
        declared = None
        media = settings.media
        if media is not None and media.exists():
            path = media if media.is_file() else media / str(video)
            declared = (declared_frames(path) or None) if path.is_file() else None
        out[str(video)] = (int(group["frame"].nunique()), declared)
    return out


def compute_sequences(
    settings: ExplainSettings, loaded: LoadedModel, cnn: CNN, crop_reason: str
) -> ExplainResults:
    """Every frame of a sequence table, streamed: probabilities, smoothing, summary, gallery."""
    frames = _stream_predictions(settings, loaded)
    drivers = _drivers(loaded, frames)
    used = frames["success"].to_numpy() == 1
    au_raw = frames[[f"au_{e}" for e in EMOTIONS]].to_numpy(dtype=float, copy=True)

    cnn_raw = np.full_like(au_raw, np.nan)
    gallery_crops: dict[int, np.ndarray] = {}
    windows: dict[tuple[str, int], int] = {}
    au_smooth = np.full_like(au_raw, np.nan)
    for (video, face_id), index in frames.groupby(["video", "face_id"], sort=False).indices.items():
        fps = timeseries.frame_rate(frames["timestamp"].to_numpy()[index])
        window = timeseries.window_frames(settings.window_s, fps)
        windows[(video, face_id)] = window
        au_smooth[index] = timeseries.smooth(au_raw[index], window, ~used[index])

    candidates = _peak_candidates(frames, au_smooth, used)
    gallery = timeseries.bounded_gallery(candidates, settings.max_gallery)
    gallery_positions = set(gallery["position"].astype(int))

    if not crop_reason:
        cnn_raw, gallery_crops, crop_reason = _video_cnn(settings, frames, used, cnn, gallery_positions)

    cnn_smooth = np.full_like(cnn_raw, np.nan)
    for key, index in frames.groupby(["video", "face_id"], sort=False).indices.items():
        cnn_mask = ~used[index] | ~np.all(np.isfinite(cnn_raw[index]), axis=1)
        cnn_smooth[index] = timeseries.smooth(cnn_raw[index], windows[key], cnn_mask)

    read = _frames_per_video(settings, frames)
    summaries = []
    for (video, _), index in frames.groupby(["video", "face_id"], sort=False).indices.items():
        row = timeseries.summary_row(frames.iloc[index], au_smooth[index], cnn_smooth[index], used[index])
        row["frames_read"], row["frames_declared"] = read[str(video)]
        summaries.append(row)
    partial = [
        {"video": video, "frames_read": n_read, "frames_declared": declared}
        for video, (n_read, declared) in read.items()
        if video in settings.truncated and declared
    ]

    out = frames[["video", "face_id", "frame", "timestamp", "success", "confidence"]].copy()
    for k, emotion in enumerate(EMOTIONS):
        out[f"au_{emotion}"] = au_raw[:, k]
        out[f"au_smooth_{emotion}"] = au_smooth[:, k]
        out[f"cnn_{emotion}"] = cnn_raw[:, k]
        out[f"cnn_smooth_{emotion}"] = cnn_smooth[:, k]
    for column in drivers:
        out[column] = np.where(used, frames[column].to_numpy(), np.nan)

    cards, contributions, keys, faces = [], [], [], []
    for g, card in gallery.iterrows():
        position = int(card["position"])
        row = frames.iloc[position]
        p = pd.Series(au_raw[position], index=list(EMOTIONS))
        explanation = explain_face(loaded, row, p)
        key = f"frame{g + 1}"
        record = {
            "key": key,
            "video": row["video"],
            "face_id": int(row["face_id"]),
            "frame": int(row["frame"]),
            "timestamp": float(row["timestamp"]),
            "confidence": float(row["confidence"]),
            "peak_emotion": card["peak_emotion"],
            "peak_probability": float(card["peak_probability"]),
            "au_predicted": str(p.idxmax()),
            **{f"au_{e}": float(au_raw[position, k]) for k, e in enumerate(EMOTIONS)},
            "cnn_predicted": _top(cnn_raw[position]),
            **{f"cnn_{e}": float(cnn_raw[position, k]) for k, e in enumerate(EMOTIONS)},
            "explained": explanation.emotion,
            "log_odds": explanation.log_odds,
            "crop": position in gallery_crops,
            **counterfactual_fields(loaded, row),
        }
        cards.append(record)
        contributions.extend(contribution_rows(key, explanation))
        if position in gallery_crops:
            keys.append(key)
            faces.append(gallery_crops[position])
    stacked = np.stack(faces) if faces else np.zeros((0, 48, 48), np.uint8)
    cams = cnn_gradcam(cnn, stacked)
    metrics = {
        "n_frames": int(len(frames)),
        "n_used": int(used.sum()),
        "n_tracks": len(summaries),
        "window_s": settings.window_s,
        "windows": [{"video": v, "face_id": int(f), "frames": int(w)} for (v, f), w in windows.items()],
        "default_window_frames": timeseries.DEFAULT_WINDOW_FRAMES,
        "max_gallery": settings.max_gallery,
        "n_gallery_candidates": int(len(candidates)),
        "drivers": drivers,
        "crop_reason_video": crop_reason,
        "partial_videos": partial,  # read in part: [{video, frames_read, frames_declared}]
    }
    return ExplainResults(
        tables={
            "frames.csv": out,
            "summary.csv": pd.DataFrame(summaries),
            "gallery.csv": pd.DataFrame(cards, columns=_card_columns(cards)),
            "contributions.csv": pd.DataFrame(
                contributions, columns=["key", "emotion", "term", "contribution"]
            ),
        },
        metrics=metrics,
        keys=keys,
        faces=stacked,
        cams=np.asarray(cams, dtype=np.float16),
    )


def _stream_predictions(settings: ExplainSettings, loaded: LoadedModel) -> pd.DataFrame:
    """The table's chunks reduced to what the stage keeps per frame: keys, the AU columns, boxes
    (float32), and the AU model's probabilities (float32, NaN where ``success`` is 0)."""
    parts = []
    keep_au = list(dict.fromkeys([*loaded.columns, *AU_R_COLUMNS]))
    for chunk in tables.iter_sequence_chunks(settings.table, settings.chunk_rows):
        _check_model_columns(loaded, chunk.columns, settings.table)
        prob = loaded.model.predict_proba(chunk[loaded.columns].astype(float)).to_numpy().copy()
        prob[chunk["success"].to_numpy() != 1] = np.nan
        part = chunk[["video", "face_id", "frame", "timestamp", "confidence", "success"]].copy()
        part["video"] = part["video"].astype("category")
        for column in keep_au:  # the model's columns exactly as read: explanations are of these values
            part[column] = chunk[column].astype(float)
        for column in tables.BOX_COLUMNS:
            if column in chunk:
                part[column] = chunk[column].astype(np.float32)
        for k, emotion in enumerate(EMOTIONS):
            part[f"au_{emotion}"] = prob[:, k].astype(np.float32)
        parts.append(part)
    frames = pd.concat(parts, ignore_index=True)
    frames["video"] = frames["video"].astype(str)
    frames = frames.sort_values(["video", "face_id", "frame"], kind="stable").reset_index(drop=True)
    return frames


def _drivers(loaded: LoadedModel, frames: pd.DataFrame) -> list[str]:
    """The ``DRIVERS`` AU intensity columns that drive the predictions most: the model's global
    importance (mean |contribution|, ``AUModel.importance``) over up to ``DRIVER_SAMPLE`` used
    frames (evenly spaced), summed per AU over the terms that read it."""
    used = frames.index[frames["success"] == 1]
    if len(used) == 0:
        return []
    sample = frames.loc[used[np.linspace(0, len(used) - 1, min(DRIVER_SAMPLE, len(used))).astype(int)]]
    importance = loaded.model.importance(sample[loaded.columns].astype(float))
    per_au: dict[str, float] = {}
    for term, value in importance.items():
        codes = {c for c in str(term).replace(" x ", " ").split() if c.startswith("AU")}
        for code in {au_code(c) for c in codes}:
            per_au[code] = per_au.get(code, 0.0) + float(value)
    ranked = sorted(per_au, key=lambda c: -per_au[c])
    return [f"{c}_r" for c in ranked if f"{c}_r" in AU_R_COLUMNS][:DRIVERS]


def _peak_candidates(frames: pd.DataFrame, smoothed: np.ndarray, used: np.ndarray) -> pd.DataFrame:
    """Each track's peak frames per emotion (``explain.video.peak_positions``)."""
    rows = []
    for (video, face_id), index in frames.groupby(["video", "face_id"], sort=False).indices.items():
        fps = timeseries.frame_rate(frames["timestamp"].to_numpy()[index]) or 1.0
        gap = max(1, int(round(fps)))  # two peaks of one emotion at least a second apart
        for position, k in timeseries.peak_positions(smoothed[index], min_gap=gap):
            at = int(index[position])
            rows.append(
                {
                    "position": at,
                    "video": video,
                    "face_id": int(face_id),
                    "frame": int(frames["frame"].iat[at]),
                    "peak_emotion": EMOTIONS[k],
                    "peak_probability": float(smoothed[at, k]),
                }
            )
    columns = ["position", "video", "face_id", "frame", "peak_emotion", "peak_probability"]
    return pd.DataFrame(rows, columns=columns)


def _video_cnn(
    settings: ExplainSettings, frames: pd.DataFrame, used: np.ndarray, cnn: CNN, gallery: set[int]
) -> tuple[np.ndarray, dict[int, np.ndarray], str]:
    """Decode each video once: crop every used frame's face by its box; CNN probabilities of the
    crops (batches of ``CNN_BATCH``), and the gallery frames' crops. Returns (probabilities
    (n, 6), crops by position, a reason when no video could be opened)."""
    prob = np.full((len(frames), len(EMOTIONS)), np.nan)
    kept: dict[int, np.ndarray] = {}
    opened = 0
    boxes = frames[list(tables.BOX_COLUMNS)].to_numpy(dtype=float)
    for video, index in frames.groupby("video", sort=False).indices.items():
        path = _media_path(settings.media, str(video))
        wanted: dict[int, list[int]] = {}
        for position in index[used[index]]:
            wanted.setdefault(int(frames["frame"].iat[position]), []).append(int(position))
        if not wanted or not path.exists():
            continue
        batch_faces: list[np.ndarray] = []
        batch_positions: list[int] = []
        for number, grey in crops.video_frames(path, set(wanted)):
            opened += 1
            for position in wanted[number]:
                face = crops.crop_face(grey, tuple(boxes[position]))
                if face is None:
                    continue
                if position in gallery:
                    kept[position] = face
                batch_faces.append(face)
                batch_positions.append(position)
            if len(batch_faces) >= CNN_BATCH:
                prob[batch_positions] = cnn_probabilities(cnn, np.stack(batch_faces))
                batch_faces, batch_positions = [], []
        if batch_faces:
            prob[batch_positions] = cnn_probabilities(cnn, np.stack(batch_faces))
    reason = "" if opened else "no face crops: the videos the table names could not be opened or decoded"
    return prob, kept, reason


# ----------------------------------------------------------------------------------- helpers


def _crop_reason(settings: ExplainSettings, boxes: bool) -> str:
    """Why there are no face crops (empty when there are)."""
    if settings.media is None:
        return (
            "no face crops: the AU table was given alone (AUS=) without the images or video it was "
            "extracted from (IN=)"
        )
    if not boxes:
        return (
            "no face crops: the AU table has no face box (face_x, face_y, face_w, face_h; the runner "
            "writes them when OpenFace runs with -2Dfp)"
        )
    return ""


def _has_estimates(path: Path) -> bool:
    """An image table with rows an AU estimator gave (their faces are taken as it took them)."""
    return "source" in tables.header(path) and tables.table_kind(path) == "images"


def _estimator_face(path: Path) -> tuple[np.ndarray | None, str]:
    """The face of an estimated row as the estimator took it (``cnn_baseline.predict.face_of``,
    ``auto``), or None and why."""
    try:
        from cnn_baseline.errors import PredictError
        from cnn_baseline.predict import face_of
    except ImportError as error:  # pragma: no cover - cnn_baseline is part of the project
        return None, f"no face crop ({error})"
    try:
        return face_of(path, "auto")[0], ""
    except PredictError as error:
        return None, str(error).split(" (pass --cropped")[0]


def _check_estimated_inputs(loaded: LoadedModel, table: pd.DataFrame, estimated: np.ndarray, path: Path):
    """Every row the model reads must have every column it reads: an estimator gives the 17
    intensities only, so a model reading AU presences (``AU*_c``) cannot explain its rows.

    Raises:
        ExplainError: one line naming the model, the columns and the first such face.
    """
    from explain.errors import ExplainError

    values = table[loaded.columns].to_numpy(dtype=float)
    empty = ~np.isfinite(values)
    if not empty.any():
        return
    i = int(np.argmax(empty.any(axis=1)))
    columns = [c for c, e in zip(loaded.columns, empty[i], strict=True) if e]
    what = "AUs an estimator gave" if estimated[i] else "AUs"
    raise ExplainError(
        f"{path}: the AU model {loaded.path.name} reads {', '.join(columns[:4])}"
        f"{' ...' if len(columns) > 4 else ''}, empty for {table['image'].iloc[i]} ({what}; the AU "
        "estimator gives the 17 intensities only): use a model on AU intensities only, e.g. "
        "MODEL=reports/logit/model.json (make fit-logit)"
    )


def _media_path(media: Path | None, name: str) -> Path:
    """The file an ``image``/``video`` entry names: ``media`` itself when it is a file (a single
    video), else the path below the ``media`` folder."""
    if media is None:
        return Path(name)
    if media.is_file():
        return media
    if name == media.name and not (media / name).exists():  # the images of the folder itself
        return media  # (the runner names a sequence of frames lying in the input folder after it)
    return media / name


def _check_model_columns(loaded: LoadedModel, columns, path: Path) -> None:
    from explain.errors import ExplainError

    missing = [c for c in loaded.columns if c not in set(columns)]
    if missing:
        raise ExplainError(
            f"{path}: the AU model {loaded.path.name} reads column(s) the table lacks: "
            f"{', '.join(missing[:6])}"
        )


def _model_metrics(loaded: LoadedModel) -> dict:
    from analysis.counterfactual import linear_slopes

    exact = linear_slopes(loaded.model, loaded.intensities) is not None
    return {
        "file": loaded.path.name,
        "family": loaded.family,
        "training": loaded.training,
        "columns": loaded.columns,
        "counterfactual_exact": exact,
        "counterfactual_bounds": loaded.ranges_source,
        "lower": {c: float(v) for c, v in loaded.lower.items()},
        "upper": {c: float(v) for c, v in loaded.upper.items()},
    }


def _top(p: np.ndarray | None) -> str:
    if p is None or not np.all(np.isfinite(p)):
        return ""
    return EMOTIONS[int(np.argmax(p))]


def _value(p: np.ndarray | None, k: int) -> float:
    return float(p[k]) if p is not None else float("nan")


def _card_columns(cards: list[dict]) -> list[str]:
    if cards:
        return list(cards[0])
    base = ["key", "video", "face_id", "frame", "timestamp", "confidence", "peak_emotion", "peak_probability"]
    return [*base, "au_predicted", *[f"au_{e}" for e in EMOTIONS], "cnn_predicted",
            *[f"cnn_{e}" for e in EMOTIONS], "explained", "log_odds", "crop", "cf_sentence"]  # fmt: skip
