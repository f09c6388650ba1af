"""``python -m cnn_baseline predict`` on real faces and on real bad files.

The 30 replay inputs (``tests/fixtures/openface/replay/input/<emotion>/PrivateTest_*.jpg``)
are FER2013 PrivateTest faces as the image-folder distribution ships them: 48x48 grey JPEGs
whose pixels equal the rows of ``data/fer2013/fer2013_privatetest.csv.gz``.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import cnn_baseline  # noqa: F401  (sets TensorFlow's oneDNN limits before it loads)

pytest.importorskip("tensorflow")

from cnn_baseline.cli import main  # noqa: E402
from cnn_baseline.data import CLASS_NAMES  # noqa: E402
from cnn_baseline.model import DEFAULT_MODEL  # noqa: E402
from cnn_baseline.predict import predict_files  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402

REPLAY = sorted((FIXTURES / "openface" / "replay" / "input").glob("*/*.jpg"))
PRIVATETEST = Path(__file__).parent.parent / "data" / "fer2013" / "fer2013_privatetest.csv.gz"


def _png(width: int, height: int, rows: bytes) -> bytes:
    """A PNG file (8-bit grey) whose header says ``width`` x ``height``, with ``rows`` as its data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_replay_crops_are_taken_whole_and_scored_as_the_csv_faces():
    from cnn_baseline.evaluate import predict_own

    assert len(REPLAY) == 30
    table = predict_files(REPLAY, DEFAULT_MODEL)
    assert (table["error"] == "").all() and (table["face"] == "crop").all()
    assert table["file"].tolist() == [str(p) for p in REPLAY]
    rows = pd.read_csv(PRIVATETEST).set_index("image").loc[[p.stem for p in REPLAY], "pixels"]
    pixels = np.stack([np.array(text.split(), np.uint8).reshape(48, 48) for text in rows])[..., None]
    expected = predict_own(DEFAULT_MODEL, pixels)
    assert np.allclose(table[CLASS_NAMES].to_numpy(float), expected, atol=1e-5)
    assert table["predicted"].tolist() == [CLASS_NAMES[i] for i in expected.argmax(axis=1)]
    # --cropped takes them the same way
    cropped = predict_files(REPLAY[:4], DEFAULT_MODEL, "cropped")
    assert np.allclose(cropped[CLASS_NAMES].to_numpy(float), expected[:4], atol=1e-5)


def test_the_cascade_misses_some_crops_and_says_so(capsys):
    code = main(["predict", "--detect", *map(str, REPLAY)])
    err = capsys.readouterr().err.splitlines()
    missed = [line for line in err if "no face found by the Haar cascade" in line]
    assert code == 0  # some faces were found: not a failed run
    assert 0 < len(missed) < 30 and all(line.startswith(str(FIXTURES)) for line in missed)
    assert "pass --cropped" in missed[0]
    assert err[-1] == f"{len(missed)} of 30 files not classified"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """Real files that are not classifiable faces, one per case, and two good ones."""
    from matplotlib import cbook

    root = tmp_path_factory.mktemp("images")
    files = {
        "missing": root / "missing.jpg",
        "empty": root / "empty.png",
        "text": root / "notes.png",
        "folder": root / "folder.jpg",
        "header_only": root / "header_only.jpg",
        "over_limit": root / "over_limit.png",
        "thin": root / "thin.png",
        "no_face": root / "gift_box.png",
        "fifo": root / "pipe.jpg",
        "photo": root / "grace_hopper.jpg",
        "odd_name": root / os.fsdecode(b"\xff\xfe face.jpg"),
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("not an image, just text renamed .png\n")
    files["folder"].mkdir()
    files["header_only"].write_bytes(REPLAY[0].read_bytes()[:20])
    files["over_limit"].write_bytes(_png(40_000, 40_000, b"\x00" * 40_001))  # 1.6e9 > 2^30 pixels
    assert cv2.imwrite(str(files["thin"]), np.full((1, 10_000), 128, np.uint8))  # 1 x 10,000, 92-ish bytes
    shutil.copy(cbook.get_sample_data("Minduka_Present_Blue_Pack.png", asfileobj=False), files["no_face"])
    os.mkfifo(files["fifo"])
    shutil.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), files["photo"])
    shutil.copy(REPLAY[0], files["odd_name"])
    return files


REASONS = {
    "missing": "no such file",
    "empty": "empty file (0 bytes)",
    "text": "not an image OpenCV can read (37 bytes)",
    "folder": "a folder, not an image file",
    "header_only": "not an image OpenCV can read (20 bytes)",
    "over_limit": "larger than OpenCV's image size limit (2^30 pixels)",
    "thin": "10000x1 pixels: too small to hold a face the detector can find (its window is 24 px)",
    "no_face": "no face found by the Haar cascade (pass --cropped if the file is a face crop)",
    "fifo": "not a regular file (a device, socket or pipe)",
}


@pytest.fixture(scope="module")
def run_all(bad_files):
    """One CLI run over every file: (exit code, stdout, stderr lines)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["predict", *map(str, bad_files.values())])
    return code, out.getvalue(), err.getvalue().splitlines()


@pytest.mark.parametrize("case", sorted(REASONS))
def test_a_bad_file_is_a_row_with_its_reason_and_the_others_go_on(run_all, bad_files, case):
    code, out, err = run_all
    assert code == 0  # the photograph and the crop were classified
    assert f"{bad_files[case]}: {REASONS[case]}" in err
    assert str(bad_files[case]) in out


def test_good_files_beside_bad_ones_are_classified(bad_files):
    table = predict_files(list(bad_files.values()), DEFAULT_MODEL).set_index("file")
    assert len(table) == len(bad_files)
    assert table.loc[str(bad_files["photo"]), "face"] == "detected"  # a real photograph of a face
    odd = os.fsencode(bad_files["odd_name"]).decode("utf-8", "backslashreplace")
    assert odd.endswith("\\xff\\xfe face.jpg") and table.loc[odd, "face"] == "crop"
    good = table[table["error"] == ""]
    assert len(good) == 2 and np.allclose(good[CLASS_NAMES].sum(axis=1), 1, atol=1e-4)
    assert table.loc[table["error"] != "", CLASS_NAMES].isna().all().all()


def test_cropped_refuses_a_strip_and_every_file_failing_exits_1(bad_files, capsys):
    code = main(["predict", "--cropped", str(bad_files["thin"]), str(bad_files["empty"])])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err == [
        f"{bad_files['thin']}: 10000x1 pixels: not a face crop (sides differ by more than 2:1)",
        f"{bad_files['empty']}: empty file (0 bytes)",
        "2 of 2 files not classified",
    ]
