"""Every page, built by the one rendering module from real results with hostile names.

The stages run on real data whose user-supplied strings (image names, the input file's
name, a model path) are script: a page must show them as text, in the real headless
Chromium, and no dialog may fire. The same pages are checked for what a reader sees:
no absolute path of the machine, no Python values, a link back to the index, an index
that lists the pages present, and figure text of at least 10 px.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import figures, render
from analysis.results import ResultsError
from tests.browser import needs_chromium, open_in_chromium
from tests.conftest import FIXTURES, HOSTILE, IMG, INPUT_NAME, SCRIPT, copy_results, hostile

ROOT = Path(__file__).resolve().parent.parent
SEED_TABLE = ROOT / "data" / "seed_au" / "emotion_all.csv"
FER2013_AUS = ROOT / "data" / "fer2013_openface" / "fer2013_openface.csv.gz"
FER2013_NO_FACE = ROOT / "data" / "fer2013_openface" / "fer2013_openface_no_face.csv.gz"
PYTHON_VALUES = re.compile(r"\b(True|False|nan|NaN|None)\b|\(0\.000\)")


_hostile = hostile


@pytest.fixture(scope="module")
def pages(tmp_path_factory, hostile_seed_input) -> Path:
    """One reports folder with the logit page of a real fit on the seed table, its image
    column replaced by hostile names and saved under a hostile file name."""
    from analysis.run_logit import run_fit_logit

    folder = tmp_path_factory.mktemp("pages")
    run_fit_logit(hostile_seed_input, folder / "reports", label_coding="seed", progress=False)
    return folder / "reports"


@pytest.fixture(scope="module")
def glassbox_page(pages, glassbox_small) -> Path:
    """The glass-box page beside it, from the shared cut-down `fit-glassbox` run on the hostile
    seed table and 2,400 real FER2013 OpenFace rows with hostile names (``glassbox_small``)."""
    from analysis.glassbox_report import render_glassbox_report

    copy_results(glassbox_small[0], pages / "glassbox")
    return render_glassbox_report(pages / "glassbox", pages / "glassbox.html")


@pytest.fixture(scope="module")
def cnn_page(pages, tmp_path_factory) -> Path:
    """The CNN page beside it: the committed model scored on the committed FER2013 sample,
    its training record naming a hostile model file it was started from."""
    pytest.importorskip("tensorflow")
    import cnn_baseline  # noqa: F401  (sets TensorFlow's oneDNN limits before it loads)
    from cnn_baseline.report import render_cnn_report
    from cnn_baseline.report_data import evaluate_all

    work = tmp_path_factory.mktemp("cnn")
    committed = ROOT / "cnn_baseline" / "models"
    run = work / "run"
    run.mkdir()
    record = json.loads((committed / "run" / "training.json").read_text())
    record["initialised_from"] = {"model": f"/home/someone/{IMG}&.keras", "sha256": "0" * 64}
    record["kept_model"]["members"][1]["model"] = f"{IMG} member"  # the committed model is averaged
    (run / "training.json").write_text(json.dumps(record))
    shutil.copy(committed / "run" / "history.csv", run)
    model = work / "model.keras"
    shutil.copy(committed / "mini_xception.keras", model)
    sample = pd.read_csv(FIXTURES / "fer2013_privatetest_sample.csv.gz")
    sample["Usage"] = ["PublicTest" if i % 3 == 0 else "PrivateTest" for i in range(len(sample))]
    sample.to_csv(work / "sample.csv", index=False)
    evaluate_all(work / "sample.csv", model, pages / "cnn", run)
    return render_cnn_report(pages / "cnn", pages / "cnn.html")


@pytest.fixture(scope="module")
def compare_page(pages, tmp_path_factory) -> Path:
    """The comparison page beside it: all models on the committed 300-face sample (real
    pixels and OpenFace AUs), every image renamed to a hostile name in all three inputs."""
    pytest.importorskip("tensorflow")
    import cnn_baseline  # noqa: F401
    from compare.data import ESTIMATED, load_compare_data
    from compare.report import render_compare_report
    from compare.run import CompareSettings, run_compare

    work = tmp_path_factory.mktemp("compare")
    pixels = pd.read_csv(FIXTURES / "fer2013_privatetest_sample.csv.gz")
    stems = sorted(set(pixels["image"]))
    aus = pd.read_csv(FER2013_AUS)
    aus = pd.concat(
        [aus[aus["Usage"] == "Training"].groupby("emotion").head(100), aus[aus["image"].isin(stems)]]
    )
    missing = pd.read_csv(FER2013_NO_FACE)
    missing = missing[missing["image"].isin(stems)]
    estimated = pd.read_csv(ESTIMATED)  # the AU estimator's rows: the bottleneck rows too
    estimated = pd.concat(
        [
            estimated[estimated["Usage"] == "Training"].groupby("label").head(100),
            estimated[estimated["image"].isin(stems)],
        ]
    )
    names = {stem: f"{_hostile(i)}{stem}" for i, stem in enumerate(stems)}
    inputs = ((pixels, "pixels.csv.gz"), (aus, "aus.csv"), (missing, "no_face.csv"), (estimated, "est.csv"))
    for frame, file in inputs:
        frame["image"] = frame["image"].map(lambda s: names.get(s, s))
        frame.to_csv(work / file, index=False)
    data = load_compare_data(work / "aus.csv", work / "no_face.csv", work / "pixels.csv.gz", work / "est.csv")
    settings = CompareSettings(
        out_dir=pages / "compare",
        n_resamples=50,
        latency_repeats=2,
        gallery_per_case=3,
        estimated_glassbox="logit",
    )
    run_compare(data, settings)
    return render_compare_report(pages / "compare", pages / "compare.html")


def test_every_page_template_escapes():
    env = render.environment()
    templates = [t for t in env.list_templates() if t.endswith(".html.j2")]
    assert {"analysis/logit.html.j2", "analysis/glassbox.html.j2", "cnn/cnn.html.j2"} <= set(templates)
    assert {"compare/compare.html.j2", "analysis/index.html.j2", "analysis/page.html.j2"} <= set(templates)
    assert all(env.autoescape(name) for name in templates)
    page = env.from_string("{% extends 'analysis/page.html.j2' %}{% block body %}{{ x }}{% endblock %}")
    assert "&lt;script&gt;" in page.render(x=SCRIPT) and SCRIPT not in page.render(x=SCRIPT)


def test_one_set_of_filters_writes_what_a_reader_reads():
    assert render.p_value(0.0) == "< 0.001" and render.p_value(0.0123) == "0.012"
    assert render.yes_no(True) == "yes" and render.number(False) == "no"
    assert render.number(float("nan")) == "–" and render.number(None) == "–"
    assert (
        render.number(0.5) == "0.500" and render.number(2e-5) == "2.0e-05" and render.number(0.0) == "0.000"
    )
    assert render.interval((0.1234, 0.5)) == "[0.123, 0.500]"
    assert (
        render.percent(0.4567) == "45.7%"
        and render.signed(-0.5) == "-0.50"
        and render.thousands(4473) == "4,473"
    )
    assert render.file_name("/home/someone/data/my table.csv") == "my table.csv"
    assert render.number(0.0032, 2) == "0.003" and render.number(-0.0014, 2) == "-0.001"
    assert render.probability(2.5e-6) == "< 0.01" and render.probability(0.456) == "0.46"


@needs_chromium
def test_logit_page_shows_hostile_names_as_text(pages, tmp_path):
    html = pages / "logit.html"
    seen = open_in_chromium(html, tmp_path / "logit.png")
    assert seen["dialogs"] == [] and seen["scripts"] == 0 and seen["errors"] == []
    assert seen["broken_images"] == [] and seen["images"] == 5
    assert f"Input: {INPUT_NAME}" in seen["text"]  # the file name, literally
    shown = re.findall(r"· (.*\.jpg)", seen["text"])  # the example cards' image names
    assert len(shown) >= 6 and {s for s in HOSTILE if any(n.startswith(s) for n in shown)} == set(HOSTILE)
    assert seen["links"][0] == "index.html"


def test_logit_page_shows_no_machine_path_and_no_python_values(pages):
    source = (pages / "logit.html").read_text(encoding="utf-8")
    assert str(pages.parent) not in source and "/input/" not in source
    text = re.sub(r"<[^>]+>", " ", source)
    assert PYTHON_VALUES.search(text) is None, PYTHON_VALUES.search(text)
    assert "converged</th><td>yes, after" in source and "(p &lt; 0.001)" in source


@needs_chromium
def test_glassbox_page_shows_hostile_names_as_text(glassbox_page, tmp_path):
    seen = open_in_chromium(glassbox_page, tmp_path / "glassbox.png")
    assert seen["dialogs"] == [] and seen["scripts"] == 0 and seen["errors"] == []
    assert seen["broken_images"] == [] and seen["images"] == 8
    assert INPUT_NAME in seen["text"]  # the seed section's source
    example = re.search(
        r"\n(.*): contributions to each emotion's log-odds", seen["text"].split("FER2013")[-1]
    )
    assert example is not None and example.group(1).startswith(HOSTILE), example  # the FER2013 face's name
    assert "nan" not in seen["text"].split() and seen["links"][0] == "index.html"
    assert PYTHON_VALUES.search(seen["text"]) is None


@needs_chromium
def test_cnn_page_shows_hostile_model_name_as_text(cnn_page, tmp_path):
    seen = open_in_chromium(cnn_page, tmp_path / "cnn.png")
    assert seen["dialogs"] == [] and seen["scripts"] == 0 and seen["errors"] == []
    assert seen["broken_images"] == [] and seen["images"] == 4
    assert f"{IMG}&.keras" in seen["text"] and "/home/someone" not in seen["text"]
    assert "The kept model is the weight average of" in seen["text"] and f"{IMG} member" in seen["text"]
    assert seen["links"][0] == "index.html"
    assert PYTHON_VALUES.search(seen["text"]) is None


@needs_chromium
def test_compare_page_shows_hostile_image_names_as_text(compare_page, tmp_path):
    seen = open_in_chromium(compare_page, tmp_path / "compare.png")
    assert seen["dialogs"] == [] and seen["scripts"] == 0 and seen["errors"] == []
    assert seen["broken_images"] == []
    cards = pd.read_csv(compare_page.parent / "compare" / "gallery.csv")
    assert len(cards) >= 3
    for image in cards["image"]:
        assert f"· {image}" in seen["text"]  # the card's caption
        assert f"{image} and its Grad-CAM" in seen["alts"]  # inside alt="…"
    assert all(image.startswith(HOSTILE) for image in cards["image"])  # every card's name is script
    assert seen["links"][0] == "index.html"
    assert PYTHON_VALUES.search(seen["text"]) is None


def test_compare_page_shows_every_models_confusion_and_one_surrogate_scale(compare_page, monkeypatch):
    from compare import figures as compare_figures
    from compare import report

    calls = {"confusion": [], "limits": []}
    confusion_grid, heatmap = compare_figures.confusion_grid, report.diverging_heatmap

    def grid_spy(confusion, models, keys):
        calls["confusion"].append(keys)
        return confusion_grid(confusion, models, keys)

    def heatmap_spy(*args, **kwargs):
        calls["limits"].append(kwargs.get("limit"))
        return heatmap(*args, **kwargs)

    monkeypatch.setattr(compare_figures, "confusion_grid", grid_spy)
    monkeypatch.setattr(report, "diverging_heatmap", heatmap_spy)
    results = compare_page.parent / "compare"
    report.render_compare_report(results, compare_page.parent / "again.html")
    models = json.loads((results / "metrics.json").read_text())["models"]
    assert calls["confusion"] == [list(models)] and len(models) >= 7
    assert len(calls["limits"]) == 2 and calls["limits"][0] == calls["limits"][1] is not None


def test_every_stage_refreshes_the_index(tmp_path, pages):
    from analysis.report import render_logit_report

    index = tmp_path / "index.html"
    render_logit_report(pages / "logit", tmp_path / "logit.html")
    source = index.read_text(encoding="utf-8")
    assert '<a href="logit.html">' in source
    assert '<a href="glassbox.html">' not in source and "<code>make fit-glassbox</code> makes it" in source
    (tmp_path / "cnn.html").write_text("<p>a CNN page</p>")  # another stage's page appears ...
    render_logit_report(pages / "logit", tmp_path / "logit.html")  # ... and the next render lists it
    assert '<a href="cnn.html">' in index.read_text(encoding="utf-8")


@needs_chromium
def test_index_lists_the_pages_present(glassbox_page, cnn_page, compare_page, tmp_path):
    seen = open_in_chromium(cnn_page.parent / "index.html", tmp_path / "index.png")
    assert seen["dialogs"] == [] and seen["errors"] == []
    assert seen["links"] == ["logit.html", "glassbox.html", "cnn.html", "compare.html"]
    assert "What we found" in seen["text"]
    from analysis.render import PAGES

    present = [title for file, title, _, _ in PAGES if file in seen["links"]]
    for line in seen["text"].splitlines():  # no "not generated" for a page that exists
        assert not ("makes it" in line and any(line.startswith(title) for title in present)), line


def test_a_tampered_results_file_is_an_error_naming_it(pages, tmp_path):
    from analysis.report import render_logit_report
    from analysis.results import results_unit

    folder = tmp_path / "logit"
    with results_unit(folder, "fit-logit") as staging:  # a results folder written as a unit
        for file in (pages / "logit").iterdir():
            if file.name != "manifest.json":
                shutil.copy(file, staging)
    render_logit_report(folder, tmp_path / "logit.html")  # intact: renders
    coefficients = folder / "coefficients.csv"
    coefficients.write_bytes(coefficients.read_bytes()[:300])  # truncated
    with pytest.raises(ResultsError, match="coefficients.csv"):
        render_logit_report(folder, tmp_path / "again.html")
    assert not (tmp_path / "again.html").exists()


def test_figure_text_is_at_least_10_px_as_displayed(
    pages, glassbox_page, cnn_page, compare_page, monkeypatch
):
    from analysis.glassbox_report import render_glassbox_report
    from analysis.report import render_logit_report
    from cnn_baseline.report import render_cnn_report
    from compare.report import render_compare_report

    seen: list[tuple[str, float]] = []
    texts: list[str] = []
    savefig = Figure.savefig

    def measuring(fig, *args, **kwargs):
        title = next((t.get_text() for ax in fig.axes if (t := ax.title).get_text()), "?")
        seen.append((title, figures.smallest_text_px(fig)))
        texts.extend(
            t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_fontsize"))
        )
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", measuring)
    render_logit_report(pages / "logit", pages / "again.html")
    render_glassbox_report(pages / "glassbox", pages / "again.html")
    render_cnn_report(pages / "cnn", pages / "again.html")
    render_compare_report(pages / "compare", pages / "again.html")
    assert len(seen) >= 5 + 8 + 4 + 6
    small = [(title, round(px, 1)) for title, px in seen if px < 10]
    assert small == []
    assert not [
        t for t in texts if "nan" in t.split() or "(nan)" in t
    ]  # e.g. a model that never predicts an emotion
