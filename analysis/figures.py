"""Matplotlib figures of the logit report, returned as embeddable PNG data URIs.

Figures are drawn at :data:`DPI` no wider than :data:`MAX_WIDTH_IN` inches, so a page's
column (about 1,100 px) shows them unscaled, and no text is smaller than
:data:`MIN_FONT_PT` points: at least 10 px as displayed (:func:`smallest_text_px`).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from analysis.au_table import au_label

DPI = 100
MAX_WIDTH_IN = 11.0  # 1,100 px at DPI: the page's column shows the figure unscaled
MIN_FONT_PT = 8  # 8 pt at 100 dpi = 11 px


def to_data_uri(fig: Figure) -> str:
    """PNG of ``fig`` as a ``data:`` URI, so the HTML page needs no other file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def smallest_text_px(fig: Figure, column_px: float = MAX_WIDTH_IN * DPI) -> float:
    """The smallest visible text of ``fig`` in CSS pixels as a page shows it.

    A page shows a figure at its pixel size, scaled down to fit a column of ``column_px``.
    """
    width_px = fig.get_figwidth() * DPI
    scale = min(1.0, column_px / width_px)
    sizes = [
        text.get_fontsize()
        for text in fig.findobj(
            lambda artist: hasattr(artist, "get_fontsize") and hasattr(artist, "get_text")
        )
        if text.get_visible() and text.get_text().strip()
    ]
    return min(sizes, default=float("inf")) * DPI / 72 * scale


def stars(p: float) -> str:
    """Significance marks: * p<0.05, ** p<0.01, *** p<0.001."""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def diverging_heatmap(
    values: pd.DataFrame, marks: pd.DataFrame | None, title: str, unit: str, limit: float | None = None
) -> str:
    """Heatmap rows = AUs, columns = emotions; colours diverge around 0 (blue < 0 < red).

    ``limit``: the colour scale runs from -limit to +limit (default: the largest |value|); give
    two heatmaps the same limit to compare their colours.
    """
    if limit is None:
        limit = float(np.nanmax(np.abs(values.to_numpy()))) or 1.0
    fig = Figure(figsize=(1.2 * values.shape[1] + 3.2, 0.36 * values.shape[0] + 1.4), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values.to_numpy(), cmap="RdBu_r", norm=TwoSlopeNorm(0, -limit, limit), aspect="auto")
    ax.set_xticks(range(values.shape[1]), values.columns)
    ax.set_yticks(range(values.shape[0]), [au_label(a) for a in values.index])
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            mark = "" if marks is None else marks.iat[i, j]
            colour = "white" if abs(values.iat[i, j]) > 0.6 * limit else "black"
            ax.text(j, i, f"{values.iat[i, j]:.2f}{mark}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=unit, shrink=0.8)
    return to_data_uri(fig)


def forest_plots(coefficients: pd.DataFrame) -> str:
    """Odds ratio with 95% CI per AU, one panel per emotion vs the reference (three a row); log x-axis."""
    coefs = coefficients[coefficients["au"] != "const"]
    emotions = list(dict.fromkeys(coefs["emotion"]))
    aus = list(dict.fromkeys(coefs["au"]))
    cols = min(3, len(emotions))
    rows = int(np.ceil(len(emotions) / cols))
    fig = Figure(figsize=(3.1 * cols + 1.6, (0.3 * len(aus) + 1.2) * rows), layout="constrained")
    grid = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    for ax in grid.ravel()[len(emotions) :]:
        ax.axis("off")
    axes = grid.ravel()[: len(emotions)]
    for ax, emotion in zip(axes, emotions, strict=True):
        part = coefs[coefs["emotion"] == emotion].set_index("au").reindex(aus)
        y = np.arange(len(aus))[::-1]
        significant = part["p"] < 0.05
        ax.errorbar(
            part["odds_ratio"],
            y,
            xerr=[part["odds_ratio"] - part["or_ci_low"], part["or_ci_high"] - part["odds_ratio"]],
            fmt="none",
            ecolor="0.5",
            lw=1,
        )
        ax.scatter(part["odds_ratio"], y, c=np.where(significant, "C3", "0.6"), s=14, zorder=3)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([0.01, 0.1, 0.3, 1, 3, 10, 100]))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(emotion)
        ax.set_xlabel("odds ratio per unit")
        ax.tick_params(labelbottom=True)
    grid[0, 0].set_yticks(np.arange(len(aus))[::-1], [au_label(a) for a in aus])
    return to_data_uri(fig)


def confusion_heatmap(counts: pd.DataFrame) -> str:
    """Row-normalised confusion matrix; each cell shows the share and the count."""
    fig = Figure(figsize=(6.2, 5), layout="constrained")
    draw_confusion(fig.subplots(), counts)
    return to_data_uri(fig)


def draw_confusion(ax, counts: pd.DataFrame, fontsize: float = 9) -> None:
    """Draw a row-normalised confusion matrix (rows = true, columns = predicted) on ``ax``."""
    share = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)  # a row without faces reads 0
    ax.imshow(share.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(counts.columns)), counts.columns, rotation=30)
    ax.set_yticks(range(len(counts.index)), counts.index)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            colour = "white" if share.iat[i, j] > 0.6 else "black"
            text = f"{share.iat[i, j]:.2f}\n({counts.iat[i, j]})"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=colour)


def per_class_bars(per_class: pd.DataFrame) -> str:
    """Grouped bars of precision, recall and F1 per emotion."""
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(per_class))
    for k, metric in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (k - 1) * 0.27, per_class[metric], width=0.27, label=metric)
    ax.set_xticks(x, per_class["emotion"])
    ax.set_ylim(0, 1)
    ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.18), frameon=False)
    return to_data_uri(fig)
