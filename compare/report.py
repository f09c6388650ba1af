"""Render ``reports/compare.html`` from the results files (no model run).

Built by the one rendering module, :mod:`analysis.render`, which also writes ``reports/index.html``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import au_label
from analysis.figures import diverging_heatmap, stars
from analysis.render import compare_summary, read_json, render_page, render_text
from analysis.render import render_index as _render_index
from analysis.results import verify_results
from compare import figures

TOP_TERMS = 5


def render_compare_report(results_dir: str | Path, html_path: str | Path) -> Path:
    """Build the self-contained comparison page from the files ``run_compare`` wrote.

    Raises:
        ResultsError: the results folder is missing, or a file is missing or does not match
            its manifest (run ``make compare`` again).
    """
    results = Path(results_dir)
    verify_results(results)  # a missing, truncated or foreign file is an error, not a page
    metrics = read_json(results / "metrics.json")
    models = metrics["models"]
    per_class = pd.read_csv(results / "per_class_f1.csv")
    confusion = pd.read_csv(results / "confusion.csv")
    kappa = pd.read_csv(results / "kappa.csv", index_col=0)
    costs = pd.read_csv(results / "costs.csv")
    images = {
        "scores": figures.score_intervals(models),
        "per_class": figures.per_class_f1(per_class, models),
        "confusion": figures.confusion_grid(
            confusion, models, [k for k in models if k in set(confusion["model"])]
        ),
        "kappa": figures.kappa_heatmap(kappa, models),
        "reliability": figures.reliability(models),
        **_surrogate_heatmaps(results),
        **_transfer_heatmaps(results, metrics.get("transfer", {}).get("model")),
    }
    return render_page(
        "compare/compare.html.j2",
        html_path,
        m=metrics,
        models=models,
        summary=summary(metrics),
        images=images,
        per_class=per_class[per_class["set"] == "paired"],
        costs=costs.set_index("model"),
        alignment=_alignment(results),
        cards=_cards(results),
        transfer_facs=_transfer_facs(results),
        bottleneck_rows=_intervention_rows(results),
        quality_rows=_quality_rows(results),
    )


def summary(metrics: dict) -> str:
    """The findings in plain language (``templates/summary.txt.j2``; another dataset:
    ``templates/dataset_summary.txt.j2``), every number read from ``metrics``."""
    if "dataset" in metrics:
        return render_text("compare/dataset_summary.txt.j2", m=metrics, models=metrics["models"])
    return compare_summary(metrics)


def render_index(reports_dir: str | Path) -> Path:
    """Write ``reports/index.html`` (kept for callers; :func:`analysis.render.render_index` does it)."""
    return _render_index(reports_dir)


def _surrogate_heatmaps(results: Path) -> dict[str, str]:
    """The surrogate's and the true-label logit's coefficients, on one shared colour scale."""
    values, marks = {}, {}
    for key, file in (("surrogate", "surrogate_coefficients.csv"), ("true_logit", "logit_coefficients.csv")):
        table = pd.read_csv(results / file)
        table = table[table["au"] != "const"]
        values[key] = table.pivot(index="au", columns="emotion", values="coef")
        marks[key] = table.assign(mark=table["p"].map(stars)).pivot(
            index="au", columns="emotion", values="mark"
        )
    limit = max(float(np.nanmax(np.abs(v.to_numpy()))) for v in values.values()) or 1.0
    titles = {"surrogate": "fitted to the CNN's predictions", "true_logit": "fitted to the true labels"}
    return {
        key: diverging_heatmap(
            values[key], marks[key], f"AU logit {titles[key]}", "log-odds vs neutral per AU unit", limit=limit
        )
        for key in values
    }


def _transfer_heatmaps(results: Path, model: str | None = None) -> dict[str, str]:
    """The FER2013 logit's and the refitted (in-domain) logit's coefficients on one colour scale
    (``model``: the refit's kind, ``metrics.json`` ``transfer.model``, named in its title)."""
    path = results / "transfer_coefficients.csv"
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    table = table[table["au"] != "const"]
    values = {
        "transfer_fer2013": table.pivot(index="au", columns="emotion", values="coef_fer2013"),
        "transfer_in_domain": table.pivot(index="au", columns="emotion", values="coef"),
    }
    marks = {
        "transfer_fer2013": table.assign(m=table["p_fer2013"].map(stars)).pivot(
            index="au", columns="emotion", values="m"
        ),
        "transfer_in_domain": table.assign(m=table["p"].map(stars)).pivot(
            index="au", columns="emotion", values="m"
        ),
    }
    limit = max(float(np.nanmax(np.abs(v.to_numpy()))) for v in values.values()) or 1.0
    refit = "refitted on this dataset" + (f" ({model})" if model and model.startswith("L2") else "")
    titles = {"transfer_fer2013": "trained on FER2013", "transfer_in_domain": refit}
    return {
        key: diverging_heatmap(
            values[key], marks[key], f"AU logit {titles[key]}", "log-odds vs neutral per AU unit", limit=limit
        )
        for key in values
    }


def _transfer_facs(results: Path) -> list[dict]:
    path = results / "transfer_facs.csv"
    if not path.is_file():
        return []
    table = pd.read_csv(path, keep_default_na=False)
    return [{**row, "au_label": au_label(row["au"])} for row in table.to_dict("records")]


def _intervention_rows(results: Path) -> list[dict]:
    """One row per AU: the estimated-AU logit's coefficient range and both interventions."""
    path = results / "bottleneck_interventions.csv"
    if not path.is_file():
        return []
    effects = pd.read_csv(path)
    coefficients = pd.read_csv(results / "estimated_logit_coefficients.csv")
    rows = []
    for au, part in effects.groupby("au", sort=False):
        by_kind = part.set_index("intervention")
        coef = coefficients.loc[coefficients["au"] == au, "coef"]
        rows.append(
            {
                "au_label": au_label(au),
                "coef_low": float(coef.min()),
                "coef_high": float(coef.max()),
                "openface_change": float(by_kind.loc["openface", "mean_abs_change"]),
                "openface_changed": float(by_kind.loc["openface", "changed_share"]),
                "zero_change": float(by_kind.loc["zero", "mean_abs_change"]),
                "zero_changed": float(by_kind.loc["zero", "changed_share"]),
                "deviation": float(part["max_abs_deviation"].max()),
            }
        )
    return rows


def _quality_rows(results: Path) -> list[dict]:
    path = results / "au_estimator_quality.csv"
    return pd.read_csv(path).to_dict("records") if path.is_file() else []


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
    metrics = read_json(results / "metrics.json")
    names = {k: v["name"] for k, v in metrics["models"].items()}
    labels = pd.DataFrame()
    if (cards["case"] == "grown").any():  # each model's prediction on the confusions' faces
        labels = pd.read_csv(results / "predictions.csv", keep_default_na=False).drop_duplicates("image")
        labels = labels.set_index("image")
    out = []
    for i, card in enumerate(cards.to_dict("records")):
        if card["case"] == "grown":
            row = labels.loc[card["image"]] if card["image"] in labels.index else {}
            card["predictions"] = [
                {"name": name, "label": row[key], "ok": row[key] == card["true"]}
                for key, name in names.items()
                if key in row
            ]
            card["model_name"] = names.get(card["model"], card["model"])
        terms = contributions[contributions["image"] == card["image"]].set_index("term")["contribution"]
        aus = terms.drop("const", errors="ignore")
        ranked = aus.reindex(aus.abs().sort_values(ascending=False).index)
        top = ranked.iloc[:TOP_TERMS]
        scale = float(top.abs().max()) or 1.0
        card["bars"] = [
            {"term": au_label(t), "value": float(v), "width": round(48 * abs(v) / scale, 1)}
            for t, v in top.items()
        ]
        if len(ranked) > TOP_TERMS:  # the rest summed, so intercept + bars = the stated log-odds
            rest = float(ranked.iloc[TOP_TERMS:].sum())
            card["bars"].append(
                {
                    "term": f"{len(ranked) - TOP_TERMS} other terms",
                    "value": rest,
                    "width": round(min(48.0, 48 * abs(rest) / scale), 1),
                }
            )
        card["intercept"] = float(terms.get("const", 0.0))
        card["picture"] = figures.face_and_gradcam(
            maps["faces"][i], maps["cams"][i], f"Grad-CAM: {card['cnn_pred']}"
        )
        out.append(card)
    return out
