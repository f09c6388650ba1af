"""The one rendering module: every HTML page of the workbench is built here.

One Jinja2 environment serves the templates of all stages (``analysis/…``, ``cnn/…``,
``compare/…``, ``explain/…``) with **autoescape on** for every page, so a string from a user's folder (an
image name, a label, an input path, a model path) is shown as text and never runs in a
reader's browser. Nothing is marked safe: the figures are PNG data URIs, whose base64
characters escaping leaves unchanged. The shared filters (numbers, p-values, intervals,
yes/no) and one stylesheet (``analysis/templates/style.css``, inlined) live here too, and
every page links back to ``index.html``, which each render refreshes.

Pages are self-contained (figures inlined, no script, no fetched stylesheet) so they can be
mailed around as single files.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path, PurePath
from typing import Any

from jinja2 import Environment, PackageLoader, PrefixLoader, StrictUndefined

from analysis.au_table import au_label
from analysis.figures import stars
from analysis.files import write_text
from analysis.results import ResultsError

# (file, title, what it shows, the command that makes it): the pages the index lists, in reading order.
PAGES: tuple[tuple[str, str, str, str], ...] = (
    ("logit.html", "The explainable AU model",
     "multinomial logit: odds ratios, marginal effects, tests, FACS", "make fit-logit"),
    ("glassbox.html", "Glass-box AU models",
     "GAMs, AU pairs, EBMs selected by CV: stability and FACS checks", "make fit-glassbox"),
    ("cnn.html", "The black box",
     "mini-XCEPTION on FER2013 pixels: training, scores, Grad-CAM", "make evaluate-cnn"),
    ("compare.html", "The comparison",
     "both on the same faces: paired scores, McNemar, surrogate, gallery", "make compare"),
    ("explain.html", "Explained faces and videos",
     "unlabelled images and videos: both models' readings, exact AU contributions, counterfactuals, "
     "emotions over time", "make explain IN=<images or video>"),
)  # fmt: skip
INDEX = "index.html"


def _autoescape(name: str | None) -> bool:
    """Escape every template except plain-text ones (``*.txt.j2``), which are escaped where used."""
    return name is None or not name.endswith(".txt.j2")


@cache
def environment() -> Environment:
    """The Jinja2 environment of every page: autoescape on, the shared filters, strict undefined."""
    env = Environment(
        loader=PrefixLoader(
            {
                "analysis": PackageLoader("analysis", "templates"),
                "cnn": PackageLoader("cnn_baseline", "templates"),
                "compare": PackageLoader("compare", "templates"),
                "explain": PackageLoader("explain", "templates"),
            }
        ),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=number,
        prob=probability,
        p=p_value,
        ci=interval,
        pct=percent,
        yesno=yes_no,
        signed=signed,
        thousands=thousands,
        filename=file_name,
        au=au_label,
        stars=stars,
    )
    return env


def render_page(template: str, html_path: str | Path, **context: Any) -> Path:
    """Render ``template`` (e.g. ``analysis/logit.html.j2``) to ``html_path``; refresh the index beside it."""
    page = environment().get_template(template).render(**context)
    target = Path(html_path)
    write_text(target, page)
    render_index(target.parent)
    return target


def render_text(template: str, **context: Any) -> str:
    """Render a plain-text template to one line of prose (whitespace collapsed)."""
    return " ".join(environment().get_template(template).render(**context).split())


def read_json(path: Path) -> Any:
    """A results JSON file, with the file named when it is not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing; run the stage that writes it again") from None
    except ValueError as error:
        raise ResultsError(f"{path}: not valid JSON ({error}); run the stage again") from None


def compare_summary(metrics: dict[str, Any]) -> str:
    """The comparison's findings in plain language, every number read from its ``metrics.json``."""
    return render_text("compare/summary.txt.j2", m=metrics, models=metrics["models"])


def render_index(reports_dir: str | Path) -> Path:
    """Write ``<reports_dir>/index.html`` listing which pages exist (and the comparison's summary)."""
    reports = Path(reports_dir)
    summary = None
    metrics_path = reports / "compare" / "metrics.json"
    if (reports / "compare.html").exists() and metrics_path.exists():
        try:
            summary = compare_summary(read_json(metrics_path))
        except (ResultsError, KeyError, TypeError):
            summary = None  # the comparison page itself says what is wrong
    page = (
        environment()
        .get_template("analysis/index.html.j2")
        .render(
            pages=[
                {
                    "href": href,
                    "title": title,
                    "what": what,
                    "command": command,
                    "present": (reports / href).is_file(),
                }
                for href, title, what, command in PAGES
            ],
            summary=summary,
            datasets=_compared_datasets(reports),
        )
    )
    target = reports / INDEX
    write_text(target, page)
    return target


def _compared_datasets(reports: Path) -> list[dict[str, str]]:
    """The ``compare-<name>.html`` pages of ``make compare IN=<labelled folder>`` present in ``reports``."""
    out = []
    for page in sorted(reports.glob("compare-*.html")):
        name, what = page.stem.removeprefix("compare-"), ""
        try:
            metrics = read_json(reports / page.stem / "metrics.json")
            dataset = metrics["dataset"]
            name = str(dataset.get("name", name))
            logit = metrics["models"]["logit_au_r"]
            what = (
                f"{logit['n']:,} faces with an OpenFace face of {dataset.get('source', '')}; "
                f"AU logit trained on FER2013: accuracy {logit['accuracy']:.3f}"
            )
        except (ResultsError, KeyError, TypeError, ValueError):
            what = "its results folder is missing or unreadable"
        out.append({"href": page.name, "name": name, "what": what})
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: Any, digits: int = 3) -> str:
    """A number for a table: fixed ``digits`` decimals.

    A nonzero that would read 0 gets the fewest decimals that show it as nonzero, up to
    ``max(digits + 1, 4)`` (0.0032 with 2 digits reads "0.003", not "0.00" or "3.2e-03");
    only a smaller one is written in scientific notation (2e-5 with 3 digits: "2.0e-05").
    Missing values (None, NaN) read "–", booleans "yes"/"no", text passes through.
    """
    if _missing(value):
        return "–"
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, str):
        return value
    value = float(value)
    if value != 0 and abs(value) < 0.5 * 10 ** (-digits):
        needed = math.ceil(-math.log10(2 * abs(value)))  # the fewest decimals that show it nonzero
        if needed > max(digits + 1, 4):
            return f"{value:.1e}"
        return f"{value:.{needed}f}"
    return f"{value:.{digits}f}"


def p_value(value: Any) -> str:
    """A p-value as a reader writes it: "< 0.001" below that, else three decimals."""
    if _missing(value):
        return "–"
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def interval(pair: Any, digits: int = 3) -> str:
    """A confidence interval ``[low, high]``."""
    low, high = pair
    return f"[{number(low, digits)}, {number(high, digits)}]"


def probability(value: Any) -> str:
    """A probability (0-1) with 2 decimals; a nonzero one below 0.005 reads "< 0.01", not 2.5e-06."""
    if not _missing(value) and 0 < float(value) < 0.005:
        return "< 0.01"
    return number(value, 2)


def percent(value: Any, digits: int = 1) -> str:
    """A share (0–1) as a percentage."""
    return "–" if _missing(value) else f"{100 * float(value):.{digits}f}%"


def yes_no(value: Any) -> str:
    """A truth value in words."""
    return "–" if _missing(value) else ("yes" if bool(value) else "no")


def signed(value: Any, digits: int = 2) -> str:
    """A number with its sign (contributions: +0.42, -0.13)."""
    return "–" if _missing(value) else f"{float(value):+.{digits}f}"


def thousands(value: Any) -> str:
    """A count with thousands separators."""
    return "–" if _missing(value) else f"{int(value):,}"


def file_name(path: Any) -> str:
    """Only the file name of a path: a page never shows the folders of the machine it was made on."""
    return PurePath(str(path)).name
