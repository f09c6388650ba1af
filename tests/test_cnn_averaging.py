"""``cnn_baseline.averaging``: weight averaging and BatchNorm statistics recomputed on faces."""

from __future__ import annotations

import numpy as np
import pytest

import cnn_baseline  # noqa: F401  (sets TensorFlow's oneDNN limits before it loads)

pytest.importorskip("tensorflow")

from cnn_baseline.averaging import average_models, recalibrate_batchnorm  # noqa: E402
from cnn_baseline.data import arrays, load_fer2013  # noqa: E402
from cnn_baseline.errors import CNNError  # noqa: E402
from cnn_baseline.model import DEFAULT_MODEL, load_model  # noqa: E402
from cnn_baseline.preprocess import model_inputs  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    x, _ = arrays(load_fer2013(FIXTURES / "fer2013_privatetest_sample.csv.gz"), "PrivateTest")
    return x


def test_batchnorm_statistics_are_the_mean_over_batches_and_weights_stay(faces):
    import keras

    model = load_model(DEFAULT_MODEL)
    trainable = [w.numpy().copy() for w in model.trainable_weights]
    first_bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    # the first BatchNorm's input is the first convolution's output: no BatchNorm before it
    probe = keras.Model(model.inputs, first_bn.input)
    x = model_inputs(faces, model.input_shape[1])
    batches = [probe.predict_on_batch(x[i : i + 64]) for i in range(0, len(x) // 64 * 64, 64)]
    expected_mean = np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0)
    expected_var = np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0)
    before = first_bn.moving_mean.numpy().copy()

    recalibrate_batchnorm(model, faces, batch_size=64)
    assert len(batches) == len(faces) // 64 >= 4
    np.testing.assert_allclose(first_bn.moving_mean.numpy(), expected_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first_bn.moving_variance.numpy(), expected_var, rtol=1e-3, atol=1e-5)
    assert not np.allclose(before, expected_mean, atol=1e-3)  # the check can fail: they moved
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(trainable, model.trainable_weights, strict=True))
    assert first_bn.momentum == pytest.approx(0.99)  # the layers' own momentum is put back


def test_averaging_weighs_each_model(tmp_path):
    import keras

    from cnn_baseline.model import mini_xception

    keras.utils.set_random_seed(0)
    other = tmp_path / "other.keras"
    mini_xception(input_shape=(64, 64, 1)).save(other)
    a, b = load_model(DEFAULT_MODEL).get_weights(), load_model(other).get_weights()
    mixed = average_models([DEFAULT_MODEL, other], [0.25, 0.75]).get_weights()
    for x, y, z in zip(a, b, mixed, strict=True):
        np.testing.assert_allclose(z, 0.25 * x + 0.75 * y, rtol=1e-6, atol=1e-7)
    with pytest.raises(CNNError, match="summing to 1"):
        average_models([DEFAULT_MODEL, other], [0.5, 0.6])
    # another 7-class network of grey faces, not a mini-XCEPTION
    inputs = keras.Input((48, 48, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    small = tmp_path / "small.keras"
    keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(pooled)).save(small)
    with pytest.raises(CNNError, match="different shapes"):
        average_models([DEFAULT_MODEL, small])
