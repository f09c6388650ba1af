"""mini-XCEPTION (Arriaga, Plöger & Valdenegro 2017, "Real-time Convolutional Neural Networks
for Emotion and Gender Classification", arXiv 1710.07557; reference implementation
``oarriaga/face_classification``, ``mini_XCEPTION``).
"""

from __future__ import annotations


def mini_xception(input_shape=(48, 48, 1), num_classes: int = 7, l2: float = 0.01):
    """The published mini-XCEPTION as a Keras model.

    Two 3x3 convolutions of 8 filters, four residual blocks of depthwise-separable 3x3
    convolutions (16, 32, 64, 128 filters; 1x1 strided convolution on the shortcut, 3x3
    max-pooling with stride 2), a 3x3 convolution to ``num_classes`` maps, global average
    pooling and softmax. 58,423 parameters for 7 classes. L2 ``l2`` acts on the two 8-filter
    convolutions only, as it did in the published model: the reference code hands
    ``kernel_regularizer`` to ``SeparableConv2D``, which Keras 2 accepted and never applied
    (tensorflow/tensorflow#41093; Keras 3 rejects the argument). Regularising the separable
    kernels too held training accuracy near 0.59 here. Input: grey faces (48x48x1 by
    default; 64x64x1 as in the original) scaled to [-1, 1]. Output: (batch, num_classes)
    probabilities.
    """
    import keras
    from keras import layers, regularizers

    reg = regularizers.L2(l2)
    inputs = keras.Input(shape=input_shape, name="face")
    x = inputs
    for _ in range(2):
        x = layers.Conv2D(8, 3, use_bias=False, kernel_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    for filters in (16, 32, 64, 128):
        shortcut = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x)
        shortcut = layers.BatchNormalization()(shortcut)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.add([x, shortcut])
    x = layers.Conv2D(num_classes, 3, padding="same", name="class_maps")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("softmax", name="predictions", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="mini_xception")


def as_float32(model):
    """A float32 copy of ``model`` with the same weights: a model trained under mixed
    precision computes in float16, and TensorFlow's CPU kernels refuse float16 convolutions."""
    import keras

    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy
