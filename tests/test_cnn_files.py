"""Bad ``--model`` files and missing FER2013 through ``python -m cnn_baseline``: one line
("error: <file>: <what is wrong>"), exit 2, never a traceback."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

import cnn_baseline  # noqa: F401  (sets TensorFlow's oneDNN limits before it loads)

pytest.importorskip("tensorflow")

from cnn_baseline.cli import main  # noqa: E402
from cnn_baseline.model import DEFAULT_MODEL  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402

FACE = next((FIXTURES / "openface" / "replay" / "input" / "happy").glob("*.jpg"))


def _retouched(path: Path, edit) -> Path:
    """A copy of the committed model whose ``config.json`` went through ``edit`` (a function
    of the parsed JSON returning text)."""
    with zipfile.ZipFile(DEFAULT_MODEL) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                data = edit(json.loads(data)).encode()
            target.writestr(item, data)
    return path


def _set_filters(config: dict, value) -> str:
    """The first convolution's ``filters`` replaced by ``value``."""
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "Conv2D":
            layer["config"]["filters"] = value
            break
    return json.dumps(config)


def _keras(path: Path, build) -> Path:
    import keras

    build(keras).save(path)
    return path


def _lambda_model(keras):
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Lambda(lambda t: t * 2)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(x))


def _three_classes(keras):
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


# name -> (how to make the file in a folder, what the error line says after "<file>: ")
CASES = {
    "missing": (lambda d: d / "missing.keras", "no such model file (train one with `make train-cnn`)"),
    "folder": (lambda d: _folder(d / "model.keras"), "a folder, not a model file (.keras)"),
    "text": (lambda d: _write(d / "model.txt", b"weights\n"), "not a .keras file (the Keras 3 model format)"),
    "text renamed .keras": (
        lambda d: _write(d / "model.keras", b"just text\n"),
        "not a Keras model (a .keras file is a zip archive)",
    ),
    "truncated .keras": (
        lambda d: _write(d / "model.keras", DEFAULT_MODEL.read_bytes()[:5000]),
        "not a Keras model (a .keras file is a zip archive)",
    ),
    "zip of junk": (
        lambda d: _zip(d / "model.keras", {"junk.txt": b"junk"}),
        "not a Keras model (the zip archive has no config.json, model.weights.h5)",
    ),
    "malformed config.json": (
        lambda d: _retouched(d / "model.keras", lambda c: json.dumps(c)[:-40]),
        "cannot be loaded as a Keras model (",
    ),
    "200k-deep config.json": (
        lambda d: _retouched(d / "model.keras", lambda c: "[" * 200_000 + "]" * 200_000),
        "cannot be loaded: its config.json is nested too deeply",
    ),
    "null parameter": (
        lambda d: _retouched(d / "model.keras", lambda c: _set_filters(c, None)),
        "cannot be loaded as a Keras model (",
    ),
    "non-numeric parameter": (
        lambda d: _retouched(d / "model.keras", lambda c: _set_filters(c, "eight")),
        "cannot be loaded as a Keras model (",
    ),
    "lambda layer": (
        lambda d: _keras(d / "model.keras", _lambda_model),
        "cannot be loaded as a Keras model (",
    ),
    "three classes": (
        lambda d: _keras(d / "model.keras", _three_classes),
        "not a FER2013 emotion model: input (None, 48, 48, 1), output (None, 3)",
    ),
    "hdf5": (
        lambda d: _keras(d / "model.h5", _three_classes),
        "a legacy HDF5 model; only the Keras 3 .keras format is accepted",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_model_file_is_one_line_naming_it(tmp_path, capsys, case):
    make, reason = CASES[case]
    path = make(tmp_path)
    code = main(["predict", "--model", str(path), str(FACE)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: {path}: {reason}")
    assert "Traceback" not in captured.err


def test_unsafe_lambda_model_is_refused_for_safe_mode(tmp_path, capsys):
    path = _keras(tmp_path / "model.keras", _lambda_model)
    assert main(["predict", "--model", str(path), str(FACE)]) == 2
    assert "safe_mode" in capsys.readouterr().err


def test_evaluate_with_a_missing_model_is_one_line(tmp_path, capsys):
    data = FIXTURES / "fer2013_privatetest_sample.csv.gz"
    model = tmp_path / "m.keras"
    code = main(["evaluate", "--data", str(data), "--model", str(model), "--out", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()
    expected = f"error: {model}: no such model file (train one with `make train-cnn`)\n"
    assert capsys.readouterr().err == expected


@pytest.mark.parametrize("command", ["train", "evaluate", "benchmark"])
def test_missing_fer2013_says_where_to_get_it(tmp_path, capsys, command):
    data = tmp_path / "fer2013.csv.gz"
    extra = ["--out", str(tmp_path / "out")] if command == "evaluate" else []
    if command == "train":
        extra += ["--run-dir", str(tmp_path / "run"), "--model", str(tmp_path / "m.keras")]
    assert main([command, "--data", str(data), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {data}: no such file or folder; ")
    assert "Challenges in Representation Learning: Facial Expression Recognition Challenge" in err
    assert "fer2013.csv" in err and "data/fer2013/fer2013.csv.gz" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.keras").exists()
