"""Render ``reports/glassbox.html`` from the files ``run_glassbox`` wrote (no refitting).

Built by the one rendering module, :mod:`analysis.render`. Effect columns are read under
their new names (``effect``, ``sign_share``) or their old ones (``coef``, ``same_sign``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from analysis.au_table import au_label
from analysis.figures import diverging_heatmap, to_data_uri
from analysis.glassbox_selection import candidates
from analysis.render import read_json, render_page
from analysis.results import verify_results

# What an effect is, when metrics.json does not say (``effect_definition``).
DEFAULT_EFFECT = "when the AU goes from 0 to intensity 2 (and present)"

DATASETS = {"seed": "Seed AU data (5-fold CV)", "fer2013": "FER2013 OpenFace AUs (Training → PrivateTest)"}


def render_glassbox_report(results_dir: str | Path, html_path: str | Path) -> Path:
    """Build the self-contained glass-box page from ``metrics.json`` and the per-dataset CSVs.

    Raises:
        ResultsError: the results folder is missing, or a file is missing or does not match
            its manifest (run ``make fit-glassbox`` again).
    """
    results = Path(results_dir)
    verify_results(results)  # a missing, truncated or foreign file is an error, not a page
    metrics = read_json(results / "metrics.json")
    sections = []
    for name, title in DATASETS.items():
        if name not in metrics:
            continue
        m = metrics[name]
        selection = _described(pd.read_csv(results / f"{name}_selection.csv"))
        stability = _renamed(pd.read_csv(results / f"{name}_stability.csv"), same_sign="sign_share")
        facs = _renamed(pd.read_csv(results / f"{name}_facs.csv"), coef="effect")
        importance = pd.read_csv(results / f"{name}_importance.csv")
        example = pd.read_csv(results / f"{name}_example.csv")
        effects = stability.pivot(index="au", columns="emotion", values="effect")
        effect = str(m.get("effect_definition", DEFAULT_EFFECT))
        marks = stability.assign(mark=np.where(stability["flips"], "†", "")).pivot(
            index="au", columns="emotion", values="mark"
        )
        sections.append(
            {
                "name": name,
                "title": title,
                "m": m,
                "selection": selection,
                "images": {
                    "tradeoff": _tradeoff(selection, m["selected"]),
                    "importance": _importance(importance),
                    "shapes": _shapes(pd.read_csv(results / f"{name}_shapes.csv")),
                    "effects": diverging_heatmap(
                        effects, marks, f"{m['selected']}: effect of each AU", "log-odds vs neutral"
                    ),
                },
                "flips": stability[stability["flips"]],
                "ranks": _top_ranks(stability),
                "facs_summary": _facs_summary(facs),
                "facs": facs[facs["model"] == m["selected"]],
                "example": _example(example),
                "effect": effect,
            }
        )
    return render_page("analysis/glassbox.html.j2", html_path, sections=sections)


def _described(selection: pd.DataFrame) -> pd.DataFrame:
    """``selection`` with each candidate described as the code now words it (results written
    before a wording fix read right); a key the code no longer has keeps its saved description."""
    current = {spec.key: spec.description for spec in candidates(with_presences=True)}
    saved = zip(selection["key"], selection["description"], strict=True)
    return selection.assign(description=[current.get(key, text) for key, text in saved])


def _renamed(table: pd.DataFrame, **old_to_new: str) -> pd.DataFrame:
    """``table`` with old column names mapped to new ones where only the old one is present."""
    return table.rename(columns={o: n for o, n in old_to_new.items() if o in table and n not in table})


def _tradeoff(selection: pd.DataFrame, selected: str) -> str:
    """Terms in the model (log scale) against CV macro-F1; the black box as a line."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    glass = selection[selection["key"] != "black_box"]
    ax.scatter(glass["n_terms"], glass["cv_macro_f1"], color="#4477aa")
    for row in glass.itertuples():
        weight = "bold" if row.key == selected else "normal"
        ax.annotate(row.key, (row.n_terms, row.cv_macro_f1), fontsize=8, xytext=(4, 3),
                    textcoords="offset points", fontweight=weight)  # fmt: skip
    box = selection[selection["key"] == "black_box"]
    if not box.empty:
        ax.axhline(
            float(box["cv_macro_f1"].iloc[0]), color="#cc6677", ls="--", label="black box (gradient boosting)"
        )
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xscale("log")
    # Plain numbers (20, 50, 100), not 2×10¹; minor ticks labelled at 2, 3 and 5 times a power of ten.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(_minor_label))
    ax.set_xlabel("terms a reader has to look at (log scale)")
    ax.set_ylabel("CV macro-F1")
    ax.grid(alpha=0.3)
    return to_data_uri(fig)


def _minor_label(value: float, _position=None) -> str:
    """A log axis's minor tick as a plain number where its leading digit is 2, 3 or 5, else blank."""
    if value <= 0:
        return ""
    leading = round(value / 10 ** np.floor(np.log10(value)))
    return f"{value:g}" if leading in (2, 3, 5) else ""


def _importance(importance: pd.DataFrame, top: int = 20) -> str:
    """The ``top`` terms by mean |contribution|, largest on top."""
    rows = importance.head(top).iloc[::-1]
    fig = Figure(figsize=(7, 0.28 * len(rows) + 1), layout="constrained")
    ax = fig.subplots()
    ax.barh([_term_label(t) for t in rows["term"]], rows["importance"], color="#4477aa")
    ax.set_xlabel("mean |contribution| to the log-odds, summed over emotions")
    return to_data_uri(fig)


def _shapes(shapes: pd.DataFrame) -> str:
    """One panel per AU: log-odds change vs neutral over the AU's observed range (others 0)."""
    aus = list(dict.fromkeys(shapes["au"]))
    cols = 5
    rows = int(np.ceil(len(aus) / cols))
    fig = Figure(figsize=(2.15 * cols, 2.1 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[len(aus) :]:
        ax.axis("off")
    for ax, au in zip(axes, aus, strict=False):
        part = shapes[shapes["au"] == au]
        for emotion, curve in part.groupby("emotion"):
            ax.plot(curve["intensity"], curve["log_odds"], label=emotion)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(au_label(au), fontsize=9)
        ax.tick_params(labelsize=9)  # at least 10 px where a page shows the figure scaled down
    axes[0].legend(fontsize=9)
    fig.supxlabel("AU intensity (0-5)", fontsize=10)
    fig.supylabel("log-odds vs neutral", fontsize=10)
    return to_data_uri(fig)


def _top_ranks(stability: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Per emotion, the AUs with the best median rank and their rank interval under resampling."""
    return stability.sort_values(["emotion", "rank_median"]).groupby("emotion").head(top)


def _facs_summary(facs: pd.DataFrame) -> pd.DataFrame:
    """Per model: prototype AUs, how many raise their emotion, how many do so stably."""
    return (
        facs.assign(positive=facs["effect"] > 0)
        .groupby("model")
        .agg(prototype_aus=("au", "size"), positive=("positive", "sum"), agrees=("agrees", "sum"))
        .reset_index()
    )


def _example(example: pd.DataFrame, top: int = 8) -> dict[str, Any]:
    """The example face's largest terms per emotion, the rest summed, and a heading for it."""
    emotions = [c for c in example.columns if c not in ("term", "image", "label")]
    table = example.set_index("term")[emotions]
    shown = table.drop("const").abs().sum(axis=1).sort_values(ascending=False).index[:top]
    image = example["image"].iloc[0] if "image" in example else None
    label = example["label"].iloc[0] if "label" in example else None
    named = isinstance(image, str) and image.strip() != ""
    known = isinstance(label, str) and label.strip() != ""
    title = (image if named else f"The first {label} face" if known else "The example face") + (
        f" (true: {label})" if known and named else ""
    )
    return {
        "title": title,
        "emotions": emotions,
        "rows": [("intercept", table.loc["const"]), *[(_term_label(t), table.loc[t]) for t in shown]],
        "rest": table.drop(["const", *shown]).sum(),
        "n_rest": len(table) - 1 - len(shown),
        "total": table.sum(),
    }


def _term_label(term: str) -> str:
    """An AU term by its FACS name; pair terms (``a x b``) and others as written."""
    return au_label(term) if " x " not in term and "_" in term else term
