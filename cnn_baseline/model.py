"""mini-XCEPTION (Arriaga, Plöger & Valdenegro 2017, "Real-time Convolutional Neural Networks
for Emotion and Gender Classification", arXiv 1710.07557; reference implementation
``oarriaga/face_classification``, ``mini_XCEPTION``).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from cnn_baseline.errors import ModelFileError

MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS / "mini_xception.keras"
# Training state (history, last epoch's model with its optimiser) is committed beside the
# model so that a CPU training longer than one session continues with --resume.
DEFAULT_RUN = MODELS / "run"
NUM_CLASSES = 7


def mini_xception(
    input_shape=(48, 48, 1),
    num_classes: int = 7,
    l2: float = 0.01,
    head: str = "softmax",
    name: str = "mini_xception",
):
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
    probabilities; with ``head="linear"`` (the AU estimator, ``cnn_baseline.au_estimator``)
    the pooled class maps as they are, one real number per output.
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
    if head == "linear":
        outputs = layers.Activation("linear", name="estimates", dtype="float32")(x)
    else:
        outputs = layers.Activation("softmax", name="predictions", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def as_float32(model):
    """A float32 copy of ``model`` with the same weights: a model trained under mixed
    precision computes in float16, and TensorFlow's CPU kernels refuse float16 convolutions."""
    import keras

    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def load_model(path: str | os.PathLike[str], num_classes: int | None = NUM_CLASSES, compile: bool = False):
    """A Keras 3 ``.keras`` model from a file a user may have received from someone else.

    Loaded with ``safe_mode=True`` (no deserialised Python code, e.g. ``Lambda`` layers;
    Keras >= 3.11.3 also applies it to HDF5, CVE-2025-9905); legacy HDF5 (``.h5``,
    ``.hdf5``) is refused outright. ``num_classes``: when given, the model must take grey
    square faces, (None, side, side, 1), and give (None, num_classes) probabilities.
    ``compile``: restore the training configuration (optimiser state), as ``--resume`` needs.

    Raises:
        ModelFileError: missing path, a folder, another format, an HDF5 file, a file that
            is not a Keras zip archive, one Keras cannot load (its reason, one line), or a
            model of another shape. The message is one line that starts with the path.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file (train one with `make train-cnn`)")
    if path.is_dir():
        raise ModelFileError(f"{path}: a folder, not a model file (.keras)")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise ModelFileError(
            f"{path}: a legacy HDF5 model; only the Keras 3 .keras format is accepted "
            "(load it in a trusted session and save it as name.keras)"
        )
    if suffix != ".keras":
        raise ModelFileError(f"{path}: not a .keras file (the Keras 3 model format)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path}: not a Keras model (a .keras file is a zip archive)") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    missing = sorted({"config.json", "model.weights.h5"} - names)
    if missing:
        raise ModelFileError(f"{path}: not a Keras model (the zip archive has no {', '.join(missing)})")
    import keras

    try:
        model = keras.models.load_model(path, compile=compile, safe_mode=True)
    except RecursionError:
        raise ModelFileError(f"{path}: cannot be loaded: its config.json is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001  (any reason Keras gives becomes one line naming the file)
        raise ModelFileError(f"{path}: cannot be loaded as a Keras model ({_one_line(exc)})") from None
    if num_classes is not None:
        shapes = (_shape(model, "input_shape"), _shape(model, "output_shape"))
        side = shapes[0][1] if len(shapes[0]) == 4 else None
        if shapes != ((None, side, side, 1), (None, num_classes)) or not isinstance(side, int):
            raise ModelFileError(
                f"{path}: not a FER2013 emotion model: input {shapes[0]}, output {shapes[1]}; expected "
                f"(None, side, side, 1) grey faces and (None, {num_classes}) class probabilities"
            )
    return model


def _shape(model, attribute: str) -> tuple:
    shape = getattr(model, attribute)
    return tuple(shape) if isinstance(shape, tuple | list) and not isinstance(shape[0], tuple | list) else ()


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message as one line of at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
