"""Render ``reports/logit.html`` from the results files alone (no refitting).

The page is self-contained: figures are embedded as PNG data URIs and no script or
stylesheet is fetched, so it reads offline and can be mailed as one file. It is built by
the one rendering module, :mod:`analysis.render` (autoescape on, shared filters and style).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.au_table import au_label
from analysis.render import read_json, render_page
from analysis.results import verify_results

TOP_TERMS = 7


def render_logit_report(results_dir: str | Path, html_path: str | Path) -> Path:
    """Build the HTML page from the files ``run_fit_logit`` wrote into ``results_dir``.

    Raises:
        ResultsError: the results folder is missing, or a file is missing or does not match
            its manifest (run ``fit-logit`` again).
    """
    results = Path(results_dir)
    verify_results(results)  # a missing, truncated or foreign file is an error, not a page
    metrics = read_json(results / "metrics.json")
    read = {
        name: pd.read_csv(results / f"{name}.csv")
        for name in (
            "coefficients",
            "marginal_effects",
            "lr_tests",
            "vif",
            "cv_per_class",
            "facs",
            "examples",
            "explanations",
        )
    }
    confusion = pd.read_csv(results / "confusion.csv", index_col=0)
    class_means = pd.read_csv(results / "class_means.csv", index_col=0)
    coefs, ame = read["coefficients"], read["marginal_effects"]
    reference = metrics["reference"]

    terms = coefs[coefs["au"] != "const"]
    coef_wide = terms.pivot(index="au", columns="emotion", values="coef")
    order_aus = list(dict.fromkeys(terms["au"]))
    order_emotions = list(dict.fromkeys(terms["emotion"]))
    coef_wide = coef_wide.reindex(index=order_aus, columns=order_emotions)
    marks = (
        terms.assign(mark=terms["p"].map(figures.stars))
        .pivot(index="au", columns="emotion", values="mark")
        .reindex(index=order_aus, columns=order_emotions)
    )
    ame_wide = ame.pivot(index="au", columns="emotion", values="dydx").reindex(
        index=order_aus, columns=metrics["classes"]
    )
    ame_marks = (
        ame.assign(mark=ame["p"].map(figures.stars))
        .pivot(index="au", columns="emotion", values="mark")
        .reindex(index=order_aus, columns=metrics["classes"])
    )

    images = {
        "coef_heatmap": figures.diverging_heatmap(
            coef_wide, marks, f"Coefficients: log-odds vs {reference} per unit", "log-odds per unit"
        ),
        "forest": figures.forest_plots(coefs),
        "ame_heatmap": figures.diverging_heatmap(
            ame_wide * 100, ame_marks, "Average marginal effects", "percentage points per unit"
        ),
        "confusion": figures.confusion_heatmap(confusion),
        "per_class": figures.per_class_bars(read["cv_per_class"]),
    }
    return render_page(
        "analysis/logit.html.j2",
        html_path,
        m=metrics,
        reference=reference,
        images=images,
        coefficients=coefs,
        lr_tests=read["lr_tests"],
        vif=read["vif"],
        ame=ame,
        per_class=read["cv_per_class"],
        confusion=confusion,
        class_means=class_means,
        facs=read["facs"],
        examples=_example_cards(read["examples"], read["explanations"], reference),
    )


def _example_cards(examples: pd.DataFrame, explanations: pd.DataFrame, reference: str) -> list[dict]:
    """One card per example: the contributions to the emotion the card explains."""
    cards = []
    for _, example in examples.iterrows():
        parts = explanations[explanations["row"] == example["row"]]
        shown = example["predicted"] if example["predicted"] != reference else example["true"]
        note = ""
        if shown == reference:  # predicted and true are both the reference: show the runner-up
            shown = parts.groupby("emotion")["contribution"].sum().idxmax()
        if example["predicted"] == reference:
            why = "the true emotion" if shown == example["true"] else "the runner-up, most likely after it"
            note = (
                f"Predicted {reference}, the reference: its log-odds vs itself is 0, so the card shows"
                f" {shown} ({why}) vs {reference}; with {reference} predicted, every emotion's is below 0."
            )
        terms = parts[parts["emotion"] == shown].set_index("term")["contribution"]
        top = terms.reindex(terms.abs().sort_values(ascending=False).index)
        bars = top.iloc[:TOP_TERMS]
        if len(top) > TOP_TERMS:
            bars = pd.concat(
                [bars, pd.Series({f"{len(top) - TOP_TERMS} other terms": top.iloc[TOP_TERMS:].sum()})]
            )
        scale = float(bars.abs().max()) or 1.0
        cards.append(
            {
                **example.to_dict(),
                "shown": shown,
                "note": note,
                "log_odds": float(terms.sum()),
                "bars": [
                    {
                        "term": au_label(term)
                        if term in terms.index and term != "const"
                        else ("intercept" if term == "const" else term),
                        "value": float(value),
                        "width": round(48 * abs(value) / scale, 1),
                    }
                    for term, value in bars.items()
                ],
            }
        )
    return cards
