"""Render ``reports/explain.html`` from the results files alone (no model run).

Built by the one rendering module, :mod:`analysis.render` (autoescape on: an image or video
name from a user's folder is shown as text), which also refreshes ``reports/index.html``.
Long videos stay readable: each track's time series is drawn from at most ``MAX_POINTS``
points (means over equal runs of frames; a run whose frames are all masked stays a gap), the
gallery is bounded by the run (``metrics.max_gallery``), and image pages show at most
``MAX_CARDS`` face cards and ``MAX_ROWS`` table rows.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.au_table import au_label
from analysis.concepts import CONCEPT_NAMES
from analysis.figures import to_data_uri
from analysis.labels import EMOTIONS
from analysis.render import read_json, render_page
from analysis.results import verify_results
from explain.estimate import HINT

MAX_POINTS = 2000
MAX_CARDS = 60
MAX_ROWS = 500
TOP_TERMS = 8
COLOURS = {
    "angry": "#d62728", "disgust": "#8c564b", "happy": "#2ca02c",
    "neutral": "#7f7f7f", "sad": "#1f77b4", "surprise": "#ff7f0e",
}  # fmt: skip


def render_explain_report(results_dir: str | Path, html_path: str | Path) -> Path:
    """Build the self-contained explain page from the files ``run_explain`` wrote.

    Raises:
        ResultsError: the results folder is missing, or a file is missing or does not match
            its manifest (run ``make explain`` again).
    """
    results = Path(results_dir)
    verify_results(results)
    metrics = read_json(results / "metrics.json")
    contributions = pd.read_csv(results / "contributions.csv", keep_default_na=False, na_values=[""])
    pictures = _pictures(results)
    for key, default in (("openface_missed", 0), ("estimated_missed", False), ("estimator", "")):
        metrics.setdefault(key, default)  # results written before AU estimates existed
    metrics.setdefault("n_estimated", 0)
    metrics.setdefault("au_sources", {})
    unexplained_csv = results / "unexplained.csv"
    unexplained = (
        pd.read_csv(unexplained_csv, keep_default_na=False, dtype=str).rename(columns={"image": "input"})
        if unexplained_csv.is_file()  # "image": results written before videos were listed too
        else pd.DataFrame(columns=["input", "label", "reason"])
    )
    metrics.setdefault("partial_videos", [])
    context: dict = {
        "m": metrics,
        "emotions": EMOTIONS,
        "hint": HINT,
        "unexplained": unexplained.head(MAX_ROWS).to_dict("records"),
        "n_unexplained": len(unexplained),
        "max_rows": MAX_ROWS,
    }
    if metrics["kind"] == "images":
        faces = pd.read_csv(results / "faces.csv", keep_default_na=False, na_values=[""])
        if "au_source" not in faces:
            faces["au_source"] = "OpenFace"
        context["faces"] = faces.head(MAX_ROWS).to_dict("records")
        context["n_faces"] = len(faces)
        context["cards"] = [
            _card(r, contributions, pictures) for r in faces.head(MAX_CARDS).to_dict("records")
        ]
        context["max_cards"] = MAX_CARDS
    else:
        frames = pd.read_csv(results / "frames.csv", keep_default_na=False, na_values=[""])
        summary = pd.read_csv(results / "summary.csv", keep_default_na=False, na_values=[""])
        gallery = pd.read_csv(results / "gallery.csv", keep_default_na=False, na_values=[""])
        context["tracks"] = [
            {**row, "figure": _track_figure(frames, row, metrics)} for row in summary.to_dict("records")
        ]
        context["cards"] = [_card(r, contributions, pictures) for r in gallery.to_dict("records")]
    return render_page("explain/explain.html.j2", html_path, **context)


def _pictures(results: Path) -> dict[str, str]:
    """Key -> data URI of the face crop beside the CNN's Grad-CAM."""
    with np.load(results / "crops.npz") as data:
        keys, faces, cams = list(data["keys"]), data["faces"], data["cams"]
    return {str(k): _face_and_cam(faces[i], cams[i].astype(float)) for i, k in enumerate(keys)}


def _face_and_cam(face: np.ndarray, cam: np.ndarray) -> str:
    fig = Figure(figsize=(2.6, 1.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.imshow(face, cmap="gray", vmin=0, vmax=255)
    left.set_title("face crop (48x48)", fontsize=8)
    right.imshow(face, cmap="gray", vmin=0, vmax=255)
    right.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    right.set_title("CNN Grad-CAM", fontsize=8)
    for ax in (left, right):
        ax.axis("off")
    return to_data_uri(fig)


def _card(row: dict, contributions: pd.DataFrame, pictures: dict[str, str]) -> dict:
    """One explained face: probabilities of both models, the top contributions (the rest summed,
    so the shown values still add up to the log-odds), counterfactual, picture."""
    terms = contributions[contributions["key"] == row["key"]].set_index("term")["contribution"]
    const = float(terms.get("const", 0.0))
    others = terms.drop("const", errors="ignore")
    ranked = others.reindex(others.abs().sort_values(ascending=False, kind="stable").index)
    top, rest = ranked.iloc[:TOP_TERMS], ranked.iloc[TOP_TERMS:]
    scale = float(top.abs().max()) if len(top) and top.abs().max() > 0 else 1.0
    bars = [
        {"term": _term_label(str(t)), "value": float(v), "width": round(60 * abs(v) / scale, 1)}
        for t, v in top.items()
    ]
    probabilities = [
        {
            "emotion": e,
            "au": row.get(f"au_{e}"),
            "cnn": row.get(f"cnn_{e}"),
            "au_width": _width(row.get(f"au_{e}")),
            "cnn_width": _width(row.get(f"cnn_{e}")),
        }
        for e in EMOTIONS
    ]
    return {
        **row,
        "bars": bars,
        "intercept": const,
        "rest": float(rest.sum()),
        "n_rest": int(len(rest)),
        "total": float(terms.sum()),
        "probabilities": probabilities,
        "picture": pictures.get(str(row["key"])),
    }


def _width(value) -> float:
    return 0.0 if value is None or not np.isfinite(float(value)) else round(80 * float(value), 1)


def _term_label(term: str) -> str:
    """``AU12_r`` -> ``AU12 lip corner puller``; ``AU12_r (spline)`` keeps its suffix; a presence
    ``AU12_c`` reads ``AU12 lip corner puller (presence)``; a geometric concept by its name
    (``mouth_open`` -> ``mouth opening``, suffix kept); pair terms (``AU06 x AU12``) as they are."""
    concept = re.fullmatch(r"([a-z_]+?)(\s.*)?", term)
    if concept and concept.group(1) in CONCEPT_NAMES:
        return CONCEPT_NAMES[concept.group(1)] + (concept.group(2) or "")
    match = re.fullmatch(r"(AU\d\d)_([rc])(.*)", term)
    if not match:
        return term
    code, kind, rest = match.groups()
    return au_label(f"{code}_r") + (" (presence)" if kind == "c" else "") + rest


def _binned(values: np.ndarray, size: int) -> np.ndarray:
    """Means over runs of ``size`` rows (NaN ignored; a run of NaN only stays NaN)."""
    if size <= 1:
        return values
    n = int(np.ceil(len(values) / size)) * size
    padded = np.full((n, *values.shape[1:]), np.nan)
    padded[: len(values)] = values
    blocks = padded.reshape(n // size, size, *values.shape[1:])
    counts = np.isfinite(blocks).sum(axis=1)
    sums = np.nansum(blocks, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _track_figure(frames: pd.DataFrame, track: dict, metrics: dict) -> str:
    """Smoothed probabilities of the AU model and the CNN, and the driving AUs' intensities, over
    time; masked frames (success 0) shaded grey and left as gaps."""
    rows = frames[
        (frames["video"].astype(str) == str(track["video"])) & (frames["face_id"] == track["face_id"])
    ]
    size = max(1, int(np.ceil(len(rows) / MAX_POINTS)))
    times = rows["timestamp"].to_numpy(dtype=float)
    x = times if np.ptp(times) > 0 else rows["frame"].to_numpy(dtype=float)
    x_label = "time (s)" if np.ptp(times) > 0 else "frame"
    xs = _binned(x, size)
    masked = _binned((rows["success"].to_numpy() != 1).astype(float), size)
    drivers = [c for c in metrics.get("drivers", []) if c in rows]
    panels = [("AU model", "au_smooth_"), ("CNN", "cnn_smooth_")]
    fig = Figure(figsize=(10.5, 7.2), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    for ax, (name, prefix) in zip(axes[:2], panels, strict=True):
        for emotion in EMOTIONS:
            ax.plot(xs, _binned(rows[prefix + emotion].to_numpy(dtype=float), size), color=COLOURS[emotion],
                    label=emotion, linewidth=1.2)  # fmt: skip
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{name}\nprobability")
        if not np.isfinite(rows[[prefix + e for e in EMOTIONS]].to_numpy(dtype=float)).any():
            ax.text(0.5, 0.5, f"no {name} predictions (see above)", ha="center", va="center",
                    transform=ax.transAxes, fontsize=10, color="#555")  # fmt: skip
    axes[0].legend(ncols=6, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.25))
    for column in drivers:
        axes[2].plot(
            xs, _binned(rows[column].to_numpy(dtype=float), size), label=au_label(column), linewidth=1
        )
    axes[2].set_ylim(0, 5)
    axes[2].set_ylabel("AU intensity (0-5)")
    axes[2].set_xlabel(x_label)
    if drivers:
        axes[2].legend(ncols=3, fontsize=8, loc="upper right")
    for ax in axes:
        ax.fill_between(xs, 0, 1, where=masked > 0.5, color="#bbbbbb", alpha=0.5, step="mid",
                        transform=ax.get_xaxis_transform(), linewidth=0)  # fmt: skip
    return to_data_uri(fig)
