"""The logit report: built from the results files alone, complete, and sound in a real browser."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pandas as pd

from analysis.report import render_logit_report
from analysis.run_logit import run_fit_logit
from tests.browser import needs_chromium, open_in_chromium

SECTIONS = (
    "data",
    "fit",
    "coefficients",
    "lr-tests",
    "marginal-effects",
    "vif",
    "prediction",
    "facs",
    "examples",
    "method",
)
RESULT_FILES = (
    "coefficients.csv",
    "marginal_effects.csv",
    "lr_tests.csv",
    "vif.csv",
    "cv_per_class.csv",
    "confusion.csv",
    "facs.csv",
    "examples.csv",
    "explanations.csv",
    "class_means.csv",
    "metrics.json",
    "model.json",
)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images, self.tables, self.rows_in_details = set(), [], 0, []
        self._details = 0
        self._rows = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self.tables += 1
        if tag == "details":
            self._details, self._rows = 1, 0
        if tag == "tr" and self._details:
            self._rows += 1

    def handle_endtag(self, tag):
        if tag == "details":
            self._details = 0
            self.rows_in_details.append(self._rows - 1)  # minus the header row


def test_results_files_have_stable_names_and_columns(seed_run):
    for name in RESULT_FILES:
        assert (seed_run.results_dir / name).is_file(), name
    coefs = pd.read_csv(seed_run.results_dir / "coefficients.csv")
    assert list(coefs.columns[:9]) == [
        "emotion",
        "au",
        "coef",
        "se",
        "z",
        "p",
        "ci_low",
        "ci_high",
        "odds_ratio",
    ]
    assert len(coefs) == 5 * 18
    metrics = json.loads((seed_run.results_dir / "metrics.json").read_text())
    for key in ("cv_accuracy", "cv_macro_f1", "n_rows", "pseudo_r2", "fit_seconds"):
        assert isinstance(metrics[key], int | float), key
    assert len(pd.read_csv(seed_run.results_dir / "marginal_effects.csv")) == 6 * 17


def test_report_contains_every_section_and_table(seed_run):
    page = _Page()
    page.feed(seed_run.report.read_text(encoding="utf-8"))
    assert set(SECTIONS) <= page.ids
    assert page.tables >= 12
    assert page.rows_in_details == [90, 102]  # full coefficient and marginal-effect tables
    assert len(page.images) == 5 and all(src.startswith("data:image/png;base64,") for src in page.images)
    text = seed_run.report.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # nothing fetched: readable offline
    assert "AU12 lip corner puller" in text and "EMFACS-7" in text


def test_report_rebuilds_from_files_without_refitting(seed_run, tmp_path):
    html = render_logit_report(seed_run.results_dir, tmp_path / "again.html")
    assert html.read_text(encoding="utf-8") == seed_run.report.read_text(encoding="utf-8")


def test_same_seed_gives_identical_results(seed_run, tmp_path):
    again = run_fit_logit(
        seed_run.metrics["input"], tmp_path, label_coding="seed", progress=False, render=False
    )
    timing = {"fit_seconds", "total_seconds"}
    first = {k: v for k, v in seed_run.metrics.items() if k not in timing}
    second = {k: v for k, v in again.metrics.items() if k not in timing}
    assert first == second
    for name in ("coefficients.csv", "cv_per_class.csv", "confusion.csv", "explanations.csv"):
        assert (again.results_dir / name).read_bytes() == (seed_run.results_dir / name).read_bytes(), name


@needs_chromium
def test_report_in_headless_chromium(seed_run, tmp_path):
    shot = tmp_path / "logit.png"
    seen = open_in_chromium(seed_run.report, shot)
    assert seen["errors"] == []
    assert seen["broken_images"] == [] and seen["images"] == 5
    assert seen["tables"] >= 12
    assert shot.stat().st_size > 50_000
