"""One mini-XCEPTION from several: weight averaging and BatchNorm statistics recomputed on the
Training faces as the model sees them at test time.

- **BatchNorm recalibration.** The moving means and variances a model keeps were gathered on
  augmented faces (rotated, shifted, zoomed with nearest-pixel fill), which are not the faces it
  is tested on; recomputed on the un-augmented Training faces they raised the committed model's
  PublicTest accuracy from 0.648 to 0.660 (mirror-averaged). The statistics are the average over
  all faces of each batch's (not a decaying average), as ``torch.optim.swa_utils.update_bn``
  computes them (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better
  Generalization", arXiv 1803.05407, Sec. 3.2).
- **Weight averaging** ("model soup", Wortsman et al. 2022, arXiv 2203.05482): the weighted mean
  of the weights of models fine-tuned from one another, which lie in one basin, then
  recalibrated as above (averaged weights do not match any member's statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnn_baseline.data import CLASS_NAMES, arrays, load_fer2013
from cnn_baseline.errors import CNNError
from cnn_baseline.model import load_model
from cnn_baseline.preprocess import model_inputs

BATCH = 64  # the batch the models were trained with; batch statistics depend on it


def recalibrate_batchnorm(model, pixels: np.ndarray, batch_size: int = BATCH):
    """Replace every BatchNormalization layer's moving mean and variance by their average over
    the batches of ``pixels`` in training mode; the weights stay as they are.

    Args:
        model: a Keras mini-XCEPTION (float32); changed in place and returned.
        pixels: (n, h, w, 1) faces 0-255 in a fixed order (resized to the model's side); the
            last partial batch is left out so that every batch has ``batch_size`` faces.

    Raises:
        CNNError: fewer faces than one batch.
    """
    import keras

    x = model_inputs(pixels, model.input_shape[1])
    batches = len(x) // batch_size
    if batches < 1:
        raise CNNError(f"{len(x)} faces: BatchNorm statistics need at least one batch of {batch_size}")
    layers = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    kept = [layer.momentum for layer in layers]
    try:
        for step in range(batches):
            # moving = moving * m + batch * (1 - m) with m = t / (t + 1): the running mean of batches
            for layer in layers:
                layer.momentum = step / (step + 1)
            model(x[step * batch_size : (step + 1) * batch_size], training=True)
    finally:
        for layer, momentum in zip(layers, kept, strict=True):
            layer.momentum = momentum
    return model


def average_models(paths: Sequence[str | Path], weights: Sequence[float] | None = None):
    """The weighted mean of the weights of same-shaped mini-XCEPTION models (``.keras``).

    Args:
        paths: model files, loaded with ``model.load_model`` (safe mode); all of one shape.
        weights: one non-negative weight per model, summing to 1 (default: equal).

    Returns:
        A new Keras model with the first model's architecture and the averaged weights
        (BatchNorm statistics averaged too: recalibrate them).

    Raises:
        ModelFileError: a file that cannot be used; CNNError: models of different shapes or
            weights that are not one per model, non-negative and summing to 1.
    """
    models = [load_model(path, num_classes=len(CLASS_NAMES)) for path in paths]
    weights = list(weights) if weights is not None else [1 / len(models)] * len(models)
    if len(weights) != len(models) or min(weights) < 0 or not np.isclose(sum(weights), 1):
        raise CNNError(f"weights {weights}: one per model, each at least 0, summing to 1")
    shapes = [[w.shape for w in m.get_weights()] for m in models]
    if any(s != shapes[0] for s in shapes):
        raise CNNError(f"{', '.join(map(str, paths))}: models of different shapes cannot be averaged")
    tensors = zip(*(m.get_weights() for m in models), strict=True)
    averaged = models[0]
    averaged.set_weights([sum(w * t for w, t in zip(weights, group, strict=True)) for group in tensors])
    return averaged


def average_and_recalibrate(
    paths: Sequence[str | Path],
    out: str | Path,
    data_path: str | Path,
    weights: Sequence[float] | None = None,
    batch_size: int = BATCH,
) -> dict:
    """Average ``paths`` (one path: the model as it is), recalibrate its BatchNorm statistics on
    all FER2013 Training faces in file order, save it to ``out`` and return PublicTest accuracy
    (one pass and mirror-averaged) of the result, with the members' SHA-256 and weights.

    Raises:
        FER2013Error: unusable data; CNNError / ModelFileError as ``average_models``.
    """
    from analysis.results import file_sha256
    from cnn_baseline.evaluate import mirrored_and_one_pass

    table = load_fer2013(data_path)
    x_train, _ = arrays(table, "Training")
    x_val, y_val = arrays(table, "PublicTest")
    model = recalibrate_batchnorm(average_models(paths, weights), x_train, batch_size)
    mirrored, one_pass = mirrored_and_one_pass(model, model_inputs(x_val, model.input_shape[1]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial.keras")
    model.save(staging)
    staging.replace(out)
    weights = list(weights) if weights is not None else [1 / len(paths)] * len(paths)
    return {
        "members": [
            {"model": Path(p).name, "sha256": file_sha256(p), "weight": float(w)}
            for p, w in zip(paths, weights, strict=True)
        ],
        "batchnorm": f"recalibrated on {len(x_train) // batch_size * batch_size} Training faces, "
        f"batches of {batch_size}, in file order, un-augmented",
        "publictest_accuracy": float((one_pass.argmax(1) == y_val).mean()),
        "publictest_mirror_accuracy": float((mirrored.argmax(1) == y_val).mean()),
        "sha256": file_sha256(out),
    }


def _all_layers(model):
    """The model's layers, nested models' layers included."""
    for layer in model.layers:
        yield from _all_layers(layer) if hasattr(layer, "layers") else (layer,)
