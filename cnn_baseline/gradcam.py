"""Grad-CAM heatmaps of mini-XCEPTION (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations
from Deep Networks via Gradient-based Localization", ICCV; arXiv 1610.02391).
"""

from __future__ import annotations

import numpy as np

LAST_BLOCK = -1  # the output of the last residual block (the last ``Add`` layer)


def gradcam(model, faces: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """Class-activation maps on the last convolutional block.

    Args:
        model: a Keras mini-XCEPTION (any input side; the faces are resized to it).
        faces: (n, h, w, 1) pixels 0-255.
        classes: (n,) class index explained per face; default: the predicted class.

    Returns:
        (n, h, w) maps in [0, 1]: ReLU of the feature maps weighted by the spatially
        averaged gradients of the class score, upsampled (bilinear) to the faces' size.
    """
    import keras
    import tensorflow as tf

    from cnn_baseline.train import model_inputs

    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    probe = keras.Model(model.inputs, [adds[LAST_BLOCK].output, model.output])
    inputs = tf.convert_to_tensor(model_inputs(faces, model.input_shape[1]), dtype=tf.float32)
    with tf.GradientTape() as tape:
        maps, prob = probe(inputs, training=False)
        chosen = tf.argmax(prob, axis=1) if classes is None else tf.convert_to_tensor(classes)
        score = tf.gather(prob, chosen, axis=1, batch_dims=1)
    grads = tape.gradient(score, maps)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1, keepdims=True))
    cam = tf.image.resize(cam, faces.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
