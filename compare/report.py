"""Render ``reports/compare.html`` and ``reports/index.html`` from the results files (no model run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from analysis.au_table import au_label
from analysis.figures import diverging_heatmap, stars
from analysis.files import write_text
from compare import figures

TOP_TERMS = 5
CONFUSION_MODELS = ["logit_au_r", "glassbox", "hgb_au_rc", "cnn", "fer_package", "logit_seed"]


def render_compare_report(results_dir: str | Path, html_path: str | Path) -> Path:
    """Build the self-contained comparison page from the files ``run_compare`` wrote.

    Raises:
        FileNotFoundError: a results file is missing (run ``python -m compare run`` first).
    """
    results = Path(results_dir)
    metrics = json.loads((results / "metrics.json").read_text(encoding="utf-8"))
    models = metrics["models"]
    per_class = pd.read_csv(results / "per_class_f1.csv")
    confusion = pd.read_csv(results / "confusion.csv")
    kappa = pd.read_csv(results / "kappa.csv", index_col=0)
    costs = pd.read_csv(results / "costs.csv")
    images = {
        "scores": figures.score_intervals(models),
        "per_class": figures.per_class_f1(per_class, models),
        "confusion": figures.confusion_grid(confusion, models, [k for k in CONFUSION_MODELS if k in models]),
        "kappa": figures.kappa_heatmap(kappa, models),
        **_surrogate_heatmaps(results),
    }
    page = (
        _environment()
        .get_template("compare.html.j2")
        .render(
            m=metrics,
            models=models,
            summary=summary(metrics),
            images=images,
            per_class=per_class[per_class["set"] == "paired"],
            costs=costs.set_index("model"),
            alignment=_alignment(results),
            cards=_cards(results),
        )
    )
    write_text(html_path, page)
    return Path(html_path)


def summary(metrics: dict) -> str:
    """The findings in plain language (``templates/summary.txt.j2``), every number read from ``metrics``."""
    text = _environment().get_template("summary.txt.j2").render(m=metrics, models=metrics["models"])
    return " ".join(text.split())


def render_index(reports_dir: str | Path) -> Path:
    """Write ``reports/index.html`` linking the logit, glass-box, CNN and comparison pages that exist."""
    reports = Path(reports_dir)
    pages = [
        (
            "logit.html",
            "The explainable AU model",
            "multinomial logit: odds ratios, marginal effects, tests, FACS",
        ),
        (
            "glassbox.html",
            "Glass-box AU models",
            "GAMs, AU pairs, EBMs selected by CV: stability and FACS checks",
        ),
        ("cnn.html", "The black box", "mini-XCEPTION on FER2013 pixels: training, scores, Grad-CAM"),
        (
            "compare.html",
            "The comparison",
            "both on the same faces: paired scores, McNemar, surrogate, gallery",
        ),
    ]
    metrics_path = reports / "compare" / "metrics.json"
    text = summary(json.loads(metrics_path.read_text(encoding="utf-8"))) if metrics_path.exists() else None
    page = (
        _environment()
        .get_template("index.html.j2")
        .render(
            pages=[(href, title, what, (reports / href).exists()) for href, title, what in pages],
            summary=text,
        )
    )
    target = reports / "index.html"
    write_text(target, page)
    return target


def _surrogate_heatmaps(results: Path) -> dict[str, str]:
    out = {}
    for key, file, title in (
        ("surrogate", "surrogate_coefficients.csv", "fitted to the CNN's predictions"),
        ("true_logit", "logit_coefficients.csv", "fitted to the true labels"),
    ):
        table = pd.read_csv(results / file)
        table = table[table["au"] != "const"]
        values = table.pivot(index="au", columns="emotion", values="coef")
        marks = table.assign(mark=table["p"].map(stars)).pivot(index="au", columns="emotion", values="mark")
        out[key] = diverging_heatmap(values, marks, f"AU logit {title}", "log-odds vs neutral per AU unit")
    return out


def _alignment(results: Path, top: int = 3) -> list[dict]:
    """Per emotion: the AUs that most raise its odds (significant) for the surrogate and the true logit."""
    rows = []
    tables = {
        name: pd.read_csv(results / file)
        for name, file in (("surrogate", "surrogate_coefficients.csv"), ("true", "logit_coefficients.csv"))
    }
    for emotion in tables["true"]["emotion"].unique():
        row = {"emotion": emotion}
        for name, table in tables.items():
            part = table[(table["emotion"] == emotion) & (table["au"] != "const") & (table["p"] < 0.05)]
            part = part[part["coef"] > 0].nlargest(top, "coef")
            row[name] = ", ".join(
                f"{au_label(a)} (OR {o:.1f})" for a, o in zip(part["au"], part["odds_ratio"], strict=True)
            )
        rows.append(row)
    return rows


def _cards(results: Path) -> list[dict]:
    cards = pd.read_csv(results / "gallery.csv")
    if cards.empty:
        return []
    contributions = pd.read_csv(results / "gallery_contributions.csv")
    maps = np.load(results / "gallery.npz")
    out = []
    for i, card in enumerate(cards.to_dict("records")):
        terms = contributions[contributions["image"] == card["image"]].set_index("term")["contribution"]
        aus = terms.drop("const", errors="ignore")
        top = aus.reindex(aus.abs().sort_values(ascending=False).index).iloc[:TOP_TERMS]
        scale = float(top.abs().max()) or 1.0
        card["bars"] = [
            {"term": au_label(t), "value": float(v), "width": round(48 * abs(v) / scale, 1)}
            for t, v in top.items()
        ]
        card["intercept"] = float(terms.get("const", 0.0))
        card["picture"] = figures.face_and_gradcam(
            maps["faces"][i], maps["cams"][i], f"Grad-CAM: {card['cnn_pred']}"
        )
        out.append(card)
    return out


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("compare", "templates"), autoescape=select_autoescape())
    env.filters["num"] = lambda v, d=3: "–" if v is None or v != v else f"{v:.{d}f}"
    env.filters["ci"] = lambda pair: f"[{pair[0]:.3f}, {pair[1]:.3f}]"
    env.filters["p"] = lambda v: "–" if v is None else (f"{v:.1e}" if v < 0.001 else f"{v:.3f}")
    return env
