"""The AU estimator (concept bottleneck): real FER2013 faces, the vendored OpenFace AUs, the
committed model and its vendored AU table (needs the ``cnn`` extra)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import cnn_baseline  # noqa: F401  (sets TensorFlow's oneDNN limits before it loads)

pytest.importorskip("tensorflow")

from analysis.au_table import AU_R_COLUMNS, FER2013_AU_TABLE, read_au_table  # noqa: E402
from cnn_baseline.au_estimator import (  # noqa: E402
    DEFAULT_AU_MODEL,
    ESTIMATED_TABLE,
    SOURCE,
    au_faces,
    estimate_aus,
    load_au_estimator,
    train_au_estimator,
)
from cnn_baseline.data import load_fer2013  # noqa: E402
from cnn_baseline.errors import ModelFileError  # noqa: E402
from cnn_baseline.model import DEFAULT_MODEL, load_model  # noqa: E402
from compare.data import PRIVATETEST  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402


@pytest.fixture(scope="module")
def estimator():
    return load_au_estimator(DEFAULT_AU_MODEL)


def test_estimates_are_mirror_averaged_and_on_openface_scale(estimator):
    faces = np.stack(load_fer2013(FIXTURES / "fer2013_privatetest_sample.csv.gz")["pixels"].to_list())[
        :64, ..., None
    ]
    aus = estimate_aus(estimator, faces)
    mirrored = estimate_aus(estimator, faces[:, :, ::-1])
    assert aus.shape == (64, len(AU_R_COLUMNS))
    np.testing.assert_allclose(aus, mirrored, atol=1e-5)  # a face and its mirror: the same AUs
    assert aus.min() >= 0.0 and aus.max() <= 5.0 and aus.std() > 0.1


def test_vendored_table_is_what_the_committed_estimator_gives(estimator):
    """Every FER2013 face has estimated AUs, and the PrivateTest rows are reproduced from the
    vendored pixels by the committed model (to the table's 2 decimals)."""
    table = read_au_table(ESTIMATED_TABLE)
    assert len(table) == 35_887 and table["source"].str.startswith(SOURCE).all()
    assert table["source"].iloc[0].endswith(")") and DEFAULT_AU_MODEL.name in table["source"].iloc[0]
    pixels = load_fer2013(PRIVATETEST)
    pixels = pixels[pixels["Usage"] == "PrivateTest"].iloc[::10]
    again = np.round(estimate_aus(estimator, np.stack(pixels["pixels"].to_list())[..., None]), 2)
    rows = table[table["Usage"] == "PrivateTest"].drop_duplicates("image", keep=False).set_index("image")
    kept = pixels["image"].isin(rows.index).to_numpy()
    vendored = rows.loc[pixels["image"][kept], list(AU_R_COLUMNS)].to_numpy()
    assert kept.sum() > 300
    np.testing.assert_allclose(again[kept], vendored, atol=0.011)  # float noise across BLAS kernels


def test_the_estimator_and_the_emotion_model_refuse_each_other():
    with pytest.raises(ModelFileError, match="not an AU estimator"):
        load_au_estimator(DEFAULT_MODEL)
    with pytest.raises(ModelFileError, match="not a FER2013 emotion model"):
        load_model(DEFAULT_AU_MODEL)


def _training_sample(tmp_path):
    """350 real faces as a tiny FER2013 (every 4th PublicTest, the rest Training) and their
    OpenFace AU rows: ``(data, au_table)`` paths."""
    sample = pd.read_csv(FIXTURES / "fer2013_privatetest_sample.csv.gz")
    sample["Usage"] = ["PublicTest" if i % 4 == 0 else "Training" for i in range(len(sample))]
    data = tmp_path / "sample.csv"
    sample.to_csv(data, index=False)
    aus = pd.read_csv(FER2013_AU_TABLE)
    aus = aus[aus["image"].isin(sample["image"])].merge(
        sample[["image", "Usage"]], on="image", suffixes=("_", "")
    )
    au_table = tmp_path / "aus.csv"
    aus.drop(columns="Usage_").to_csv(au_table, index=False)
    return data, au_table


def test_short_training_learns_openface_aus_and_resumes(tmp_path):
    """One epoch on 350 real faces, then one more resumed: the AU loss falls, the record
    counts two epochs, and the kept model gives the 17 AU estimates."""
    data, au_table = _training_sample(tmp_path)
    assert len(au_faces(data, au_table)) > 250

    run, model = tmp_path / "run", tmp_path / "au.keras"
    train_au_estimator(data, run, model, au_table, epochs=1, verbose=0)
    record = train_au_estimator(data, run, model, au_table, epochs=2, verbose=0, resume=True)
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1] and record["epochs"] == 2
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert json.loads((run / "training.json").read_text())["publictest_loss"] == pytest.approx(
        history["val_loss"].min()
    )
    assert load_au_estimator(model).output_shape == (None, len(AU_R_COLUMNS))


def test_concept_head_cosine_run_with_weight_averaging(tmp_path):
    """Two cosine epochs with the concept head on 350 real faces, started from the committed
    estimator, the weights of both epochs averaged and BatchNorm recomputed: the kept model gives
    17 AUs and 6 concepts in inter-ocular distances (the standardisation folded into its head)."""
    from analysis.au_table import FER2013_CONCEPTS
    from analysis.concepts import CONCEPT_COLUMNS
    from cnn_baseline.au_estimator import estimate, estimated_au_table

    data, au_table = _training_sample(tmp_path)
    faces = au_faces(data, au_table, FER2013_CONCEPTS)
    assert set(CONCEPT_COLUMNS) <= set(faces) and len(faces) > 250

    run, model_path = tmp_path / "run", tmp_path / "au.keras"
    record = train_au_estimator(
        data, run, model_path, au_table, epochs=2, verbose=0, concepts=FER2013_CONCEPTS,
        init_from=DEFAULT_AU_MODEL, schedule="cosine", learning_rate=1e-4, augment="travel", average_last=2,
    )  # fmt: skip
    assert record["epochs"] == 2 and "mean of the weights of epochs 0-1" in record["kept_model"]
    model = load_au_estimator(model_path)
    assert model.output_shape == (None, len(AU_R_COLUMNS) + len(CONCEPT_COLUMNS))
    pixels = np.stack(faces["pixels"].to_list())[..., None]
    estimated_aus, concepts, presences = estimate(model, pixels)
    assert presences is None  # no presence head asked for
    assert estimated_aus.shape == (len(faces), 17) and concepts.shape == (len(faces), 6)
    # in the concepts' own units: near OpenFace's values of these faces, not standardised
    truth = faces[list(CONCEPT_COLUMNS)].to_numpy()
    assert np.abs(concepts.mean(0) - truth.mean(0)).max() < truth.std(0).max()
    standardisation = record["concept_standardisation"]
    assert all(standardisation[c]["std"] > 0 for c in CONCEPT_COLUMNS)
    table = estimated_au_table(model, faces.head(20), model_path.name)
    assert list(table.columns[-7:]) == [*CONCEPT_COLUMNS, "source"]


def test_the_head_folds_the_standardisation_exactly():
    """``_unstandardise``: the convolution and the global average are linear, so scaling the head's
    kernel and bias turns each output z into mean + std * z exactly."""
    from cnn_baseline.au_estimator import _unstandardise, au_estimator_model

    model = au_estimator_model(concepts=True)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 48, 48, 1)).astype("float32")
    before = model.predict_on_batch(x)
    mean, std = np.r_[np.zeros(17), np.arange(6) * 0.1], np.r_[np.ones(17), np.arange(1, 7) * 0.05]
    _unstandardise(model, mean, std)
    np.testing.assert_allclose(model.predict_on_batch(x), mean + std * before, rtol=1e-4, atol=1e-5)


def test_presence_head_gives_openface_style_presences_and_resumes(tmp_path):
    """One cosine epoch with the concept and presence heads on 350 real faces, then one more
    resumed (the saved state names the registered loss): the loss falls, 41 outputs, presences
    0/1, and an AU table with the 18 ``AU*_c``."""
    from analysis.au_table import AU_C_COLUMNS, FER2013_CONCEPTS
    from cnn_baseline.au_estimator import estimate, estimated_au_table

    data, au_table = _training_sample(tmp_path)
    run, model_path = tmp_path / "run", tmp_path / "au.keras"
    options = {"concepts": FER2013_CONCEPTS, "presences": True, "init_from": DEFAULT_AU_MODEL,
               "schedule": "cosine", "learning_rate": 1e-4, "average_last": 1, "verbose": 0}  # fmt: skip
    train_au_estimator(data, run, model_path, au_table, epochs=1, **options)
    record = train_au_estimator(data, run, model_path, au_table, epochs=2, resume=True, **options)
    assert record["epochs"] == 2
    model = load_au_estimator(model_path)
    assert model.output_shape == (None, 17 + 6 + 18)
    faces = au_faces(data, au_table, presences=True)
    presences = estimate(model, np.stack(faces["pixels"].to_list())[..., None]).presences
    assert set(np.unique(presences)) <= {0.0, 1.0}
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1] and history["loss"].iloc[1] < history["loss"].iloc[0]
    table = estimated_au_table(model, faces.head(10), model_path.name)
    assert set(AU_C_COLUMNS) <= set(table) and table[list(AU_C_COLUMNS)].isin([0, 1]).all().all()
