"""Matplotlib figures of the comparison report, as embeddable PNG data URIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import draw_confusion, to_data_uri
from analysis.labels import EMOTIONS

FAMILY_COLOURS = {"AU": "#4477aa", "landmarks": "#228833", "pixels": "#cc6677", "baseline": "#999999"}


def score_intervals(models: dict) -> str:
    """Accuracy and macro-F1 of every model on the paired faces, with 95% bootstrap intervals."""
    keys = list(models)
    fig = Figure(figsize=(10, 0.45 * len(keys) + 1.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric, title in zip(axes, ("accuracy", "macro_f1"), ("accuracy", "macro-F1"), strict=True):
        for row, key in enumerate(keys):
            m = models[key]
            low, high = m[f"{metric}_ci"]
            colour = FAMILY_COLOURS.get(m["family"], "black")
            ax.errorbar(
                m[metric], row, xerr=[[m[metric] - low], [high - m[metric]]], fmt="o", color=colour, capsize=3
            )
            ax.text(high + 0.01, row, f"{m[metric]:.3f}", va="center", fontsize=9)
        ax.set_yticks(range(len(keys)), [models[k]["name"] for k in keys])
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"{title} (95% bootstrap interval)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()  # shared y axis: inverting once puts the first model on top
    return to_data_uri(fig)


def per_class_f1(per_class: pd.DataFrame, models: dict) -> str:
    """Grouped bars: F1 per emotion and model on the paired faces, with intervals."""
    keys = [k for k in models if k != "majority"]
    fig = Figure(figsize=(10.5, 4.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        rows = per_class[(per_class["model"] == key) & (per_class["set"] == "paired")].set_index("emotion")
        rows = rows.reindex(list(EMOTIONS))
        x = np.arange(len(EMOTIONS)) + (i - (len(keys) - 1) / 2) * width
        err = [rows["f1"] - rows["ci_low"], rows["ci_high"] - rows["f1"]]
        ax.bar(x, rows["f1"], width, yerr=err, capsize=2, label=models[key]["name"])
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1 (paired faces)")
    fig.legend(fontsize=8, ncols=3, loc="outside lower center")
    return to_data_uri(fig)


def confusion_grid(confusion: pd.DataFrame, models: dict, keys: list[str]) -> str:
    """Row-normalised confusion matrices of ``keys`` side by side (paired faces)."""
    cols = min(2, len(keys))
    rows = int(np.ceil(len(keys) / cols))
    fig = Figure(figsize=(5.2 * cols, 4.6 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[len(keys) :]:
        ax.axis("off")
    for ax, key in zip(axes, keys, strict=False):
        counts = (
            confusion[confusion["model"] == key]
            .pivot(index="true", columns="predicted", values="count")
            .reindex(index=list(EMOTIONS), columns=list(EMOTIONS))
            .fillna(0)  # an emotion a model never predicts has no rows: zero faces
            .astype(int)
        )
        draw_confusion(ax, counts, fontsize=9)
        ax.set_title(models[key]["name"], fontsize=11)
    return to_data_uri(fig)


def kappa_heatmap(kappa: pd.DataFrame, models: dict) -> str:
    """Cohen's kappa between every two models' labels on the paired faces."""
    fig = Figure(figsize=(7.5, 6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(kappa.to_numpy(), cmap="viridis", vmin=0, vmax=1)
    names = [models[k]["name"] for k in kappa.index]
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(kappa.shape[0]):
        for j in range(kappa.shape[1]):
            colour = "black" if kappa.iat[i, j] > 0.6 else "white"
            ax.text(j, i, f"{kappa.iat[i, j]:.2f}", ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(image, ax=ax, label="Cohen's kappa", shrink=0.8)
    return to_data_uri(fig)


def face_and_gradcam(face: np.ndarray, cam: np.ndarray, caption: str) -> str:
    """The 48x48 face (pixels 0-255) beside it with the CNN's Grad-CAM map (0-1) on top."""
    fig = Figure(figsize=(2.6, 1.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.imshow(face, cmap="gray", vmin=0, vmax=255)
    right.imshow(face, cmap="gray", vmin=0, vmax=255)
    right.imshow(cam.astype(float), cmap="jet", alpha=0.45, vmin=0, vmax=1)
    for ax in (left, right):
        ax.axis("off")
    right.set_title(caption, fontsize=9)
    return to_data_uri(fig)


def reliability(models: dict) -> str:
    """Reliability diagram: accuracy against mean top-label confidence per bin, one line per model."""
    keys = [k for k in models if models[k].get("calibration", {}).get("bins")]
    fig = Figure(figsize=(6.5, 5), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", label="perfect calibration")
    for key in keys:
        bins = models[key]["calibration"]["bins"]
        style = "-" if models[key]["family"] == "AU" else ":"
        label = f"{models[key]['name']} (ECE {models[key]['calibration']['ece']:.3f})"
        x, y = [b["confidence"] for b in bins], [b["accuracy"] for b in bins]
        ax.plot(x, y, style, marker="o", markersize=3, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean top-label probability in the bin")
    ax.set_ylabel("accuracy in the bin")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return to_data_uri(fig)
