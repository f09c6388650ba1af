"""``make fit-glassbox``: select a glass-box AU model on two real datasets and write its results.

1. ``seed``: the seed AU data (4,473 faces, 17 AU intensities), 5-fold CV on all rows.
2. ``fer2013``: the FER2013 OpenFace AUs (17 intensities + 18 presences): selection by CV
   on the Training faces, then one score on the paired PrivateTest faces (a face found), and
   on the "unseen" ones (whose AUs repeat no Training face).
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
    LABEL,
    au_code,
    one_face_per_image,
    read_au_table,
    six_class_rows,
)
from analysis.facs import PROTOTYPES, facs_agreement
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
from analysis.run_logit import DEFAULT_INPUT

ROOT = Path(__file__).resolve().parent.parent
FER2013_AUS = ROOT / "data" / "fer2013_openface" / "fer2013_openface.csv.gz"


@dataclass
class GlassboxSettings:
    out_dir: Path = Path("reports/glassbox")
    seed_input: Path = DEFAULT_INPUT
    fer2013_input: Path = FER2013_AUS
    folds: int = 5
    n_resamples: int = 200
    seed: int = 0
    fast: bool = False  # a short candidate list (tests)
    n_jobs: int = -1


def load_datasets(settings: GlassboxSettings) -> dict[str, dict]:
    """Both datasets as ``{name: {train, test (or None), intensities, presences, source}}``."""
    seed = six_class_rows(read_au_table(settings.seed_input, label_coding="seed"))
    seed, _ = apply_quality_policy(seed, list(AU_R_COLUMNS), "drop")
    fer = one_face_per_image(six_class_rows(read_au_table(settings.fer2013_input, "emotion", "name")))
    return {
        "seed": {
            "train": seed.reset_index(drop=True),
            "test": None,
            "intensities": list(AU_R_COLUMNS),
            "presences": [],
            "source": f"{Path(settings.seed_input).name}, quality policy drop, 5-fold CV",
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
    ``facs.csv`` (EMFACS agreement of every model), ``effects.csv`` (each AU's effect on each
    emotion, every model), ``stability.csv`` (bootstrap of the selected model),
    ``importance.csv``, ``shapes.csv`` and ``example.csv`` (the selected model); and
    ``metrics.json`` (per dataset: per model ``cv_accuracy``, ``cv_macro_f1``, ``n_terms``,
    test scores where there is a test set; ``selected``).
    """
    settings = settings or GlassboxSettings()
    out = Path(settings.out_dir)
    metrics: dict = {"selected": {}}
    for name, ds in load_datasets(settings).items():
        start = time.perf_counter()
        if progress:
            print(f"{name}: cross-validating candidates on {len(ds['train']):,} faces ...", flush=True)
        specs = candidates(bool(ds["presences"]), settings.fast)
        selection = select(
            ds["train"],
            ds["intensities"],
            ds["presences"],
            specs,
            settings.folds,
            settings.seed,
            settings.n_jobs,
        )
        table = selection.table.copy()
        if ds["test"] is not None:
            table = _score_test(table, selection.models, ds, settings.seed)
        chosen = selection.selected
        model = selection.models[chosen]
        aus = sorted({au_code(c) for c in ds["intensities"]})
        probe = ds["train"].sample(min(1000, len(ds["train"])), random_state=settings.seed)
        effects = pd.concat(
            [au_effects(m, probe, aus).assign(model=key) for key, m in selection.models.items()],
            ignore_index=True,
        )
        if progress:
            print(f"{name}: selected {chosen}; bootstrap x{settings.n_resamples} ...", flush=True)
        spec = next(s for s in specs if s.key == chosen)
        stability = bootstrap_stability(
            spec, model, ds["train"], ds["intensities"], ds["presences"], settings.n_resamples, settings.seed,
            settings.n_jobs,
        )  # fmt: skip
        facs = pd.concat(
            [
                _facs(effects[effects["model"] == k], stability if k == chosen else None).assign(model=k)
                for k in selection.models
            ],
            ignore_index=True,
        )
        write_csv(out / f"{name}_selection.csv", table)
        write_csv(out / f"{name}_effects.csv", effects)
        write_csv(out / f"{name}_stability.csv", stability)
        write_csv(out / f"{name}_facs.csv", facs)
        importance = model.importance(probe).rename("importance").rename_axis("term").reset_index()
        write_csv(out / f"{name}_importance.csv", importance)
        write_csv(out / f"{name}_shapes.csv", _shapes(model, ds["intensities"], ds["train"]))
        write_csv(
            out / f"{name}_example.csv",
            _example(model, ds["test"] if ds["test"] is not None else ds["train"]),
        )
        metrics[name] = {
            "source": ds["source"],
            "n_train": len(ds["train"]),
            "models": {row.pop("key"): row for row in table.to_dict("records")},
            "selected": chosen,
            "selection_rule": "highest mean of CV accuracy and CV macro-F1 among the glass-box candidates",
            "n_resamples": settings.n_resamples,
            "seconds": time.perf_counter() - start,
        }
        metrics["selected"][name] = chosen
        if progress:
            row = metrics[name]["models"][chosen]
            box = metrics[name]["models"]["black_box"]
            print(f"{name}: {chosen} CV {row['cv_accuracy']:.3f} / {row['cv_macro_f1']:.3f} "
                  f"(black box {box['cv_accuracy']:.3f} / {box['cv_macro_f1']:.3f}) "
                  f"in {metrics[name]['seconds']:.0f} s", flush=True)  # fmt: skip
    write_json(out / "metrics.json", metrics)
    return metrics


def _score_test(table: pd.DataFrame, models: dict[str, GlassBox], ds: dict, seed: int) -> pd.DataFrame:
    test, columns = ds["test"], ds["intensities"] + ds["presences"]
    unseen = ~repeats_training_face(ds["train"], test, columns)
    preds = {key: m.predict(test) for key, m in models.items()}
    preds["black_box"] = black_box(ds["train"], columns, seed).predict(test[columns].to_numpy(dtype=float))
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
    """EMFACS agreement from AU effects; with a bootstrap, p = 2 x the share of opposite signs."""
    table = effects.rename(columns={"effect": "coef"}).copy()
    table["odds_ratio"] = np.exp(table["coef"])
    if stability is None:
        table["p"] = np.nan
    else:
        share = stability.set_index(["emotion", "au"])["same_sign"]
        table["p"] = [
            min(1.0, 2 * (1 - share.get((e, a), 0.0)))
            for e, a in zip(table["emotion"], table["au"], strict=True)
        ]
    return facs_agreement(table[table["emotion"].isin(PROTOTYPES)])


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
