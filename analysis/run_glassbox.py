"""``make fit-glassbox``: select a glass-box AU model on two real datasets and write its results.

1. ``seed``: the bundled seed AU table (4,473 faces, 17 AU intensities), 5-fold CV on all rows.
2. ``fer2013``: the FER2013 OpenFace AUs (17 intensities + 18 presences): selection by CV
   on the Training faces, then one score on the paired PrivateTest faces (a face found), and
   on the "unseen" ones (whose AUs repeat no Training face).

Each AU's effect is read inside its observed range, from the 5th to the 95th percentile of its
training intensities (``analysis.facs.effect_range``); ``effects.csv`` and ``metrics.json``
say which range. Results are written as a unit (``analysis.results``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from analysis.au_table import (
    AU_C_COLUMNS,
    AU_R_COLUMNS,
    FER2013_AU_TABLE,
    LABEL,
    SEED_AU_TABLE,
    au_code,
    one_face_per_image,
    read_au_table,
    six_class_rows,
)
from analysis.facs import EFFECT_PERCENTILES, PROTOTYPES, effect_ranges, facs_agreement
from analysis.files import write_csv, write_json
from analysis.glassbox import GlassBox
from analysis.glassbox_selection import (
    au_effects,
    black_box,
    bootstrap_stability,
    candidates,
    select,
)
from analysis.quality import apply_quality_policy, repeats_training_face
from analysis.results import check_writable, results_unit


@dataclass
class GlassboxSettings:
    """What ``run_glassbox`` uses; ``seed`` is the random seed, the data are the two tables."""

    out_dir: Path = Path("reports/glassbox")
    seed_au_input: Path = SEED_AU_TABLE
    fer2013_input: Path = FER2013_AU_TABLE
    folds: int = 5
    n_resamples: int = 200
    seed: int = 0
    fast: bool = False  # a short candidate list (tests)
    n_jobs: int = -1


def load_datasets(settings: GlassboxSettings) -> dict[str, dict]:
    """Both datasets as ``{name: {train, test (or None), intensities, presences, source}}``."""
    seed_au = six_class_rows(read_au_table(settings.seed_au_input, label_coding="seed"))
    seed_au, _ = apply_quality_policy(seed_au, list(AU_R_COLUMNS), "drop")
    fer = one_face_per_image(six_class_rows(read_au_table(settings.fer2013_input, "emotion", "name")))
    return {
        "seed": {
            "train": seed_au.reset_index(drop=True),
            "test": None,
            "intensities": list(AU_R_COLUMNS),
            "presences": [],
            "source": f"{Path(settings.seed_au_input).name}, quality policy drop, 5-fold CV",
        },
        "fer2013": {
            "train": fer[fer["Usage"] == "Training"].reset_index(drop=True),
            "test": fer[fer["Usage"] == "PrivateTest"].reset_index(drop=True),
            "intensities": list(AU_R_COLUMNS),
            "presences": list(AU_C_COLUMNS),
            "source": "FER2013 OpenFace AUs: CV on Training, scored once on the paired PrivateTest faces",
        },
    }


def run_glassbox(settings: GlassboxSettings | None = None, progress: bool = True) -> dict:
    """Select, score, explain and bootstrap on both datasets; write ``reports/glassbox/``.

    Files per dataset ``<name>_``: ``selection.csv`` (every candidate and the black box),
    ``facs.csv`` (EMFACS agreement of every model: ``effect``, and for the selected model the
    bootstrap ``sign_share`` and ``stable``), ``effects.csv`` (each AU's effect on each emotion,
    every model, read from ``low`` to ``high`` intensity), ``stability.csv`` (bootstrap of the
    selected model), ``importance.csv``, ``shapes.csv`` and ``example.csv`` (the selected
    model), ``model.json`` (the selected model as JSON, ``analysis.glassbox.load_glassbox``;
    an EBM as its settings, refitted when loaded); and ``metrics.json`` (per dataset: per
    model ``cv_accuracy``, ``cv_macro_f1``, ``n_terms``, test scores
    where there is a test set; ``selected``; ``effect_range``).
    Nothing is replaced unless both datasets finished: the folder is written as a unit.
    """
    settings = settings or GlassboxSettings()
    check_writable(settings.out_dir)  # before the fits, not after them
    metrics: dict = {"selected": {}}
    tables: dict[str, pd.DataFrame] = {}
    selected_models: dict[str, GlassBox] = {}
    for name, ds in load_datasets(settings).items():
        start = time.perf_counter()
        dataset_tables, metrics[name], selected_models[name] = _one_dataset(name, ds, settings, progress)
        metrics[name]["seconds"] = time.perf_counter() - start
        tables.update({f"{name}_{part}.csv": table for part, table in dataset_tables.items()})
        chosen = metrics["selected"][name] = metrics[name]["selected"]
        if progress:
            row = metrics[name]["models"][chosen]
            box = metrics[name]["models"]["black_box"]
            print(f"{name}: {chosen} CV {row['cv_accuracy']:.3f} / {row['cv_macro_f1']:.3f} "
                  f"(black box {box['cv_accuracy']:.3f} / {box['cv_macro_f1']:.3f}) "
                  f"in {metrics[name]['seconds']:.0f} s", flush=True)  # fmt: skip
    with results_unit(settings.out_dir, stage="fit-glassbox") as staging:
        for file_name, table in tables.items():
            write_csv(staging / file_name, table)
        write_json(staging / "metrics.json", metrics)
        for name, model in selected_models.items():  # the selected model, loaded by `make compare`
            row = metrics[name]["models"][metrics[name]["selected"]]
            model.to_json(staging / f"{name}_model.json", metadata={
                "dataset": name, "source": metrics[name]["source"], "n_train": metrics[name]["n_train"],
                "fit_seconds": row["fit_seconds"], "seed": settings.seed,
            })  # fmt: skip
    return metrics


def _one_dataset(
    name: str, ds: dict, settings: GlassboxSettings, progress: bool
) -> tuple[dict[str, pd.DataFrame], dict, GlassBox]:
    """Select, score, explain and bootstrap on one dataset: its result tables, metrics and the
    selected model."""
    if progress:
        print(f"{name}: cross-validating candidates on {len(ds['train']):,} faces ...", flush=True)
    specs = candidates(bool(ds["presences"]), settings.fast)
    selection = select(
        ds["train"], ds["intensities"], ds["presences"], specs, settings.folds, settings.seed, settings.n_jobs
    )
    table = selection.table.copy()
    if ds["test"] is not None:
        table = _score_test(table, selection.models, ds, settings.seed)
    chosen = selection.selected
    model = selection.models[chosen]
    aus = sorted({au_code(c) for c in ds["intensities"]})
    ranges = effect_ranges(ds["train"], ds["intensities"])
    probe = ds["train"].sample(min(1000, len(ds["train"])), random_state=settings.seed)
    effects = pd.concat(
        [au_effects(m, probe, aus, ranges).assign(model=key) for key, m in selection.models.items()],
        ignore_index=True,
    )
    if progress:
        print(f"{name}: selected {chosen}; bootstrap x{settings.n_resamples} ...", flush=True)
    spec = next(s for s in specs if s.key == chosen)
    stability = bootstrap_stability(
        spec, model, ds["train"], ds["intensities"], ds["presences"], settings.n_resamples, settings.seed,
        settings.n_jobs, ranges=ranges,
    )  # fmt: skip
    facs = pd.concat(
        [
            _facs(effects[effects["model"] == k], stability if k == chosen else None).assign(model=k)
            for k in selection.models
        ],
        ignore_index=True,
    )
    importance = model.importance(probe).rename("importance").rename_axis("term").reset_index()
    tables = {
        "selection": table,
        "effects": effects,
        "stability": stability,
        "facs": facs,
        "importance": importance,
        "shapes": _shapes(model, ds["intensities"], ds["train"]),
        "example": _example(model, ds["test"] if ds["test"] is not None else ds["train"]),
    }
    metrics = {
        "source": ds["source"],
        "n_train": len(ds["train"]),
        "models": {row.pop("key"): row for row in table.to_dict("records")},
        "selected": chosen,
        "selection_rule": "highest mean of CV accuracy and CV macro-F1 among the glass-box candidates",
        "n_resamples": settings.n_resamples,
        "effect_range": {
            "percentiles": list(EFFECT_PERCENTILES),
            "rule": "each AU's effect: log-odds change from its 5th to its 95th percentile "
            "intensity on the training faces (and presence 0 -> 1), other AUs as observed",
            "intensities": {au: list(bounds) for au, bounds in ranges.items()},
        },
    }
    return tables, metrics, model


def _score_test(table: pd.DataFrame, models: dict[str, GlassBox], ds: dict, seed: int) -> pd.DataFrame:
    test, columns = ds["test"], ds["intensities"] + ds["presences"]
    unseen = ~repeats_training_face(ds["train"], test, columns)
    preds = {key: m.predict(test) for key, m in models.items()}
    preds["black_box"] = black_box(ds["train"], columns, seed).predict(test)
    rows = []
    for key in table["key"]:
        p, y = preds[key], test[LABEL].to_numpy()
        rows.append(
            {
                "test_accuracy": accuracy_score(y, p),
                "test_macro_f1": f1_score(y, p, average="macro", zero_division=0),
                "unseen_accuracy": accuracy_score(y[unseen], p[unseen]),
                "unseen_macro_f1": f1_score(y[unseen], p[unseen], average="macro", zero_division=0),
                "n_test": len(y),
                "n_unseen": int(unseen.sum()),
            }
        )
    return pd.concat([table.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def _facs(effects: pd.DataFrame, stability: pd.DataFrame | None) -> pd.DataFrame:
    """EMFACS agreement from AU effects; with a bootstrap (the selected model), the evidence for
    a sign is ``sign_share``, the share of refits with the same sign (no test, so no p-value)."""
    table = effects.copy()
    if stability is not None:
        share = stability.set_index(["emotion", "au"])["same_sign"]
        table["sign_share"] = [share[(e, a)] for e, a in zip(table["emotion"], table["au"], strict=True)]
    return facs_agreement(table[table["emotion"].isin(PROTOTYPES)], value="effect")


def _shapes(model: GlassBox, intensities: list[str], train: pd.DataFrame) -> pd.DataFrame:
    """Each AU's effect curve: log-odds change vs neutral as the AU goes from 0 to its 99th
    training percentile (beyond it too few faces support a shape), every other AU at 0."""
    rows = []
    for column in intensities:
        top = max(float(train[column].quantile(0.99)), 0.5)
        grid = np.round(np.linspace(0, top, 21), 3)
        frame = pd.DataFrame(0.0, index=range(len(grid)), columns=_all_columns(model))
        frame[column] = grid
        curve = model.log_odds(frame) - model.log_odds(frame.iloc[[0]]).iloc[0]
        for i, value in enumerate(grid):
            for emotion in curve.columns:
                rows.append(
                    {"au": column, "intensity": value, "emotion": emotion, "log_odds": curve[emotion].iat[i]}
                )
    return pd.DataFrame(rows)


def _all_columns(model: GlassBox) -> list[str]:
    if hasattr(model, "features"):
        return list(model.features)
    return sorted({c for t in model.terms for c in t.columns})


def _example(model: GlassBox, rows: pd.DataFrame) -> pd.DataFrame:
    """The per-term breakdown of one face (the first happy one): sums to its log-odds."""
    row = rows[rows[LABEL] == "happy"].iloc[0]
    table = model.explain(row)
    table.index.name = "term"
    return table.reset_index().assign(image=row.get("image", ""), label=row[LABEL])
