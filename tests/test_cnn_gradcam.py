"""Grad-CAM against references computed by hand: the gradient of the class score (pre-softmax).

For a network whose class scores are linear in the last block's maps A (global average
pooling, then a dense layer or a 'same' convolution), the gradient of score c with respect
to A is a constant known in closed form, so the Grad-CAM weights can be written down from the
layer weights without any automatic differentiation.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnn_baseline  # noqa: F401  (sets TensorFlow's oneDNN limits before it loads)

pytest.importorskip("tensorflow")

from cnn_baseline.data import arrays, load_fer2013  # noqa: E402
from cnn_baseline.gradcam import gradcam  # noqa: E402
from cnn_baseline.model import DEFAULT_MODEL, load_model  # noqa: E402
from cnn_baseline.preprocess import model_inputs  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402


def _faces(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` real PrivateTest faces of the committed sample: (n, 48, 48, 1) 0-255, labels."""
    x, y = arrays(load_fer2013(FIXTURES / "fer2013_privatetest_sample.csv.gz"), "PrivateTest")
    return x[:n], y[:n]


def _cam(maps: np.ndarray, weights: np.ndarray, side: int) -> np.ndarray:
    """Grad-CAM from feature maps (n, h, w, k) and per-face channel weights (n, k)."""
    import tensorflow as tf

    cam = np.maximum((maps * weights[:, None, None, :]).sum(axis=-1), 0)[..., None]
    cam = tf.image.resize(cam, (side, side), method="bilinear")[..., 0].numpy()
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def tiny():
    """conv (4 filters, 4x4, stride 4) -> 1x1 conv -> Add -> average pool -> Dense(3) -> softmax,
    weights drawn from a fixed generator: 48x48 faces give 12x12x4 maps."""
    import keras
    from keras import layers

    inputs = keras.Input((48, 48, 1))
    a = layers.Conv2D(4, 4, strides=4, activation="relu")(inputs)
    block = layers.add([a, layers.Conv2D(4, 1)(a)])
    dense = layers.Dense(3)
    outputs = layers.Activation("softmax")(dense(layers.GlobalAveragePooling2D()(block)))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(0, 1.0, w.shape).astype("float32") for w in model.get_weights()])
    maps_of = keras.Model(inputs, block)
    return model, maps_of, dense


def test_gradcam_weights_are_the_class_score_gradient_not_the_probability_gradient(tiny):
    model, maps_of, dense = tiny
    faces, _ = _faces(12)
    maps = np.asarray(maps_of.predict_on_batch(model_inputs(faces)), dtype=float)
    kernel, bias = (np.asarray(w, dtype=float) for w in dense.get_weights())  # (4, 3), (3,)
    logits = maps.mean(axis=(1, 2)) @ kernel + bias
    chosen = logits.argmax(axis=1)
    hw = maps.shape[1] * maps.shape[2]
    # d score_c / dA_ijk = kernel[k, c] / (h w) everywhere; its spatial mean is the same
    pre = kernel[:, chosen].T / hw
    # d p_c / dA_ijk = p_c (kernel[k, c] - sum_j p_j kernel[k, j]) / (h w)
    p = _softmax(logits)
    post = p[np.arange(len(p)), chosen][:, None] * (kernel[:, chosen].T - p @ kernel.T) / hw
    expected, wrong = _cam(maps, pre, 48), _cam(maps, post, 48)
    assert np.abs(expected - wrong).max() > 0.3  # the two definitions differ on these faces

    cams = gradcam(model, faces)
    assert cams.shape == (12, 48, 48) and cams.dtype == np.float32
    assert np.allclose(cams, expected, atol=1e-4)

    # an explicitly chosen class: the second most likely one
    second = np.argsort(logits, axis=1)[:, -2]
    assert np.allclose(gradcam(model, faces, second), _cam(maps, kernel[:, second].T / hw, 48), atol=1e-4)


def test_gradcam_of_the_committed_model_matches_its_class_map_weights():
    """mini-XCEPTION's scores are a 3x3 'same' convolution of the last block, averaged: the
    gradient of score c with respect to block channel k, averaged over the h x w grid, is
    sum_uv K[u, v, k, c] (h - |u - 1|)(w - |v - 1|) / (h w)^2 (positions the zero padding cuts off
    do not count)."""
    import keras

    model = load_model(DEFAULT_MODEL)
    faces, _ = _faces(10)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    inputs = model_inputs(faces, model.input_shape[1])
    maps = np.asarray(keras.Model(model.inputs, adds[-1].output).predict_on_batch(inputs), dtype=float)
    h, w = maps.shape[1:3]
    kernel = np.asarray(model.get_layer("class_maps").get_weights()[0], dtype=float)  # (3, 3, 128, 7)
    count = np.outer([h - abs(u - 1) for u in range(3)], [w - abs(v - 1) for v in range(3)])
    per_class = np.einsum("uvkc,uv->kc", kernel, count) / (h * w) ** 2  # (128, 7)
    probabilities = model.predict_on_batch(model_inputs(faces, model.input_shape[1]))
    chosen = np.asarray(probabilities).argmax(axis=1)
    assert np.allclose(gradcam(model, faces), _cam(maps, per_class[:, chosen].T, 48), atol=1e-3)


def test_gradcam_refuses_a_model_without_a_softmax_layer(tiny):
    import keras

    model, _, _ = tiny
    headless = keras.Model(model.inputs, model.layers[-2].output)  # ends in the Dense scores
    with pytest.raises(ValueError, match="before the softmax"):
        gradcam(headless, _faces(1)[0])
