"""The ``fit-logit`` stage: AU table -> fitted logit -> results files -> HTML report.

Results (stable names, read by the report and by later stages) under ``<out>/logit/``:
``coefficients.csv``, ``marginal_effects.csv``, ``lr_tests.csv``, ``vif.csv``,
``cv_per_class.csv``, ``confusion.csv``, ``facs.csv``, ``explanations.csv``,
``examples.csv``, ``class_means.csv``, ``metrics.json``, ``model.json`` and
``manifest.json``, written as a unit (``analysis.results``); the page is ``<out>/logit.html``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.au_table import LABEL, SEED_AU_TABLE, feature_columns, read_au_table, six_class_rows
from analysis.cv_scores import CrossValidation, cross_validated_scores
from analysis.explanations import contributions, pick_examples
from analysis.facs import SOURCE as FACS_SOURCE
from analysis.facs import facs_agreement
from analysis.files import write_csv, write_json
from analysis.labels import EMOTIONS
from analysis.logit import FitError, LogitFit, fit_logit
from analysis.quality import apply_quality_policy
from analysis.results import check_writable, results_unit


@dataclass
class LogitRun:
    """A finished ``fit-logit`` run: the fit, the CV and the paths written."""

    fit: LogitFit
    cv: CrossValidation
    metrics: dict[str, Any]
    results_dir: Path
    report: Path | None


def run_fit_logit(
    input_path: str | Path = SEED_AU_TABLE,
    out_dir: str | Path = "reports",
    label_column: str | None = None,
    label_coding: str = "auto",
    reference: str = "neutral",
    seed: int = 0,
    folds: int = 5,
    quality_policy: str = "drop",
    drop_unsuccessful: bool = True,
    n_jobs: int | None = None,
    progress: bool = True,
    render: bool = True,
    features: str = "aus",
) -> LogitRun:
    """Read, clean, fit, cross-validate, write results and (optionally) render the report.

    Args: as the ``workbench fit-logit`` options (``--help`` describes them).

    Raises:
        AUTableError: the input table is invalid (the message names file, column, row).
        FitError: the cleaned data cannot be fitted (also: no rows left after the selection).
        ResultsError: the results folder cannot be written.

    The results folder is replaced as a whole only when everything was computed and written;
    a failure or a kill on the way leaves the previous results as they were.
    """
    started = time.perf_counter()
    check_writable(Path(out_dir) / "logit")  # before the fit, not after it
    input_path = Path(input_path)
    table = read_au_table(input_path, label_column=label_column, label_coding=label_coding)
    selection = _select_rows(table, drop_unsuccessful, input_path)
    rows = selection.pop("rows")
    feature_set = features
    features = feature_columns(feature_set, rows, input_path)
    without_concepts = 0
    if feature_set != "aus":  # faces without a landmark fit have no concepts: left out, counted
        without_concepts = int(rows[features].isna().any(axis=1).sum())
        rows = rows.dropna(subset=features)
    rows, quality = apply_quality_policy(rows, features, quality_policy)
    if rows.empty:
        raise FitError(
            f"{input_path}: the quality policy {quality_policy!r} removed all {quality.rows_in} rows "
            f"({quality.all_zero_rows} all-zero, {quality.conflicting_rows} conflicting, "
            f"{quality.exact_duplicate_rows} duplicate); try --quality-policy keep"
        )

    smallest = rows[LABEL].value_counts()
    if len(smallest) and smallest.min() < folds:
        raise FitError(
            f"{input_path}: {folds}-fold cross-validation needs at least {folds} rows per emotion; "
            f"{smallest.idxmin()} has {smallest.min()}"
        )
    fit = fit_logit(rows, features, reference=reference, n_jobs=n_jobs, progress=progress)
    classes = fit.model.classes
    cv = cross_validated_scores(
        rows, features, classes, folds=folds, seed=seed, n_jobs=n_jobs, progress=progress
    )
    facs = facs_agreement(fit.coefficients)

    predicted = fit.model.predict(rows)
    examples = pick_examples(rows, predicted, per_class=2, seed=seed)
    if "image" in rows:
        examples.insert(0, "image", rows.loc[examples.index, "image"])
    examples.index.name = "row"
    explained = contributions(fit.model, rows.loc[examples.index])
    class_means = rows.groupby(LABEL)[features].mean().reindex([c for c in EMOTIONS if c in classes])

    fit.model.metadata.update({"input": input_path.name, "seed": seed, "quality_policy": quality_policy})

    metrics: dict[str, Any] = {
        **cv.metrics,
        **fit.fit_stats,
        "input": str(input_path),
        "input_sha256": hashlib.sha256(input_path.read_bytes()).hexdigest(),
        "features": features,
        "feature_set": feature_set,
        "rows_without_concepts": without_concepts,
        "quality": quality.as_dict(),
        **selection,
        "class_counts": rows[LABEL].value_counts().reindex(classes).astype(int).to_dict(),
        "facs_source": FACS_SOURCE,
        "facs_agreement": f"{int(facs['agrees'].sum())}/{len(facs)}",
        "warnings": fit.warnings,
        "total_seconds": time.perf_counter() - started,
    }
    results = Path(out_dir) / "logit"
    with results_unit(results, stage="fit-logit") as staging:
        write_csv(staging / "coefficients.csv", fit.coefficients)
        write_csv(staging / "marginal_effects.csv", fit.marginal_effects)
        write_csv(staging / "lr_tests.csv", fit.lr_tests)
        write_csv(staging / "vif.csv", fit.vif)
        write_csv(staging / "cv_per_class.csv", cv.per_class)
        write_csv(staging / "confusion.csv", cv.confusion, index=True)
        write_csv(staging / "facs.csv", facs)
        write_csv(staging / "examples.csv", examples, index=True)
        write_csv(staging / "explanations.csv", explained)
        write_csv(staging / "class_means.csv", class_means, index=True)
        fit.model.to_json(staging / "model.json")
        write_json(staging / "metrics.json", metrics)

    report = None
    if render:
        from analysis.report import render_logit_report

        report = render_logit_report(results, Path(out_dir) / "logit.html")
    return LogitRun(fit, cv, metrics, results, report)


def _select_rows(table: pd.DataFrame, drop_unsuccessful: bool, path: Path) -> dict[str, Any]:
    """Keep the six analysed emotions and, where a ``success`` column exists, trusted fits.

    Raises:
        FitError: no row is left; the message says which step removed them.
    """
    six = six_class_rows(table)
    info: dict[str, Any] = {"rows_read": len(table), "fear_rows_excluded": len(table) - len(six)}
    if six.empty:
        raise FitError(f"{path}: all {len(table)} rows are labelled fear, left out of the six-class analysis")
    if drop_unsuccessful and "success" in six:
        unsuccessful = six["success"] == 0
        info["unsuccessful_rows_excluded"] = int(unsuccessful.sum())
        if unsuccessful.all():
            raise FitError(
                f"{path}: every one of the {len(six)} six-class rows has success = 0 (OpenFace did not "
                "trust its fit); use --keep-unsuccessful to fit them anyway"
            )
        six = six[~unsuccessful]
    info["rows"] = six
    return info
