"""Grad-CAM heatmaps of mini-XCEPTION (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations
from Deep Networks via Gradient-based Localization", ICCV; arXiv 1610.02391).

The gradient is taken of the class *score* ``y^c``, the input of the softmax, as in the
paper (Sec. 3) and the keras-io example (``make_gradcam_heatmap``, which removes the last
layer's softmax): the gradient of the softmax probability ``p^c`` is
``p^c (dy^c - sum_j p^j dy^j)``, which mixes in every other class and shrinks to nothing
where the model is confident.
"""

from __future__ import annotations

import numpy as np

LAST_BLOCK = -1  # the output of the last residual block (the last ``Add`` layer)


def gradcam(model, faces: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """Class-activation maps on the last residual block.

    Args:
        model: a Keras mini-XCEPTION (any input side; the faces are resized to it) whose last
            layer is the softmax ``Activation`` (its input is the class scores); at least
            one ``Add`` layer.
        faces: (n, h, w, 1) pixels 0-255.
        classes: (n,) class index explained per face; default: the predicted class.

    Returns:
        (n, h, w) maps in [0, 1]: ReLU of the last block's feature maps weighted by the
        spatially averaged gradients of the class score (pre-softmax), upsampled (bilinear)
        to the faces' size and divided by each map's maximum (all zeros when it is 0).

    Raises:
        ValueError: the model has no ``Add`` layer or does not end in a softmax ``Activation``.
    """
    import keras
    import tensorflow as tf

    from cnn_baseline.preprocess import model_inputs

    probe = keras.Model(model.inputs, [_last_block(model).output, class_scores(model)])
    inputs = tf.convert_to_tensor(model_inputs(faces, model.input_shape[1]), dtype=tf.float32)
    with tf.GradientTape() as tape:
        maps, logits = probe(inputs, training=False)
        chosen = tf.argmax(logits, axis=1) if classes is None else tf.convert_to_tensor(classes)
        score = tf.gather(logits, chosen, axis=1, batch_dims=1)
    grads = tape.gradient(score, maps)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1, keepdims=True))
    cam = tf.image.resize(cam, faces.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


def class_scores(model):
    """The Keras tensor of the class scores (logits): the input of the final softmax layer.

    Raises:
        ValueError: the last layer is not a softmax ``Activation``.
    """
    import keras

    last = model.layers[-1]
    if not (isinstance(last, keras.layers.Activation) and last.get_config()["activation"] == "softmax"):
        raise ValueError(
            f"Grad-CAM needs the class scores before the softmax: {model.name}'s last layer "
            f"{last.name!r} is not a softmax Activation"
        )
    return last.input


def _last_block(model):
    import keras

    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    if not adds:
        raise ValueError(f"Grad-CAM looks at the last residual block: {model.name} has no Add layer")
    return adds[LAST_BLOCK]
