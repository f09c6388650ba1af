"""``make openface`` and ``make explain`` on odd real inputs (issue 25): each input ends as rows or
as a recorded failure, never a traceback, and ``explain`` classifies every face it explains.

Built from the vendored webcam clip and frames (``tests/fixtures/openface/video``): a folder with a
photo beside a video, a one-frame video, a folder of frames without a video, and one face saved
greyscale, as a 16-bit PNG and as a phone photo stored turned with an EXIF orientation tag (6:
rotate 90° to view). A real native OpenFace runs (``$OPENFACE_BIN``); skipped without it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import FIXTURES

VIDEO = FIXTURES / "openface" / "video"
FACE = VIDEO / "frames" / "001.jpg"
OPENFACE_BIN = os.environ.get("OPENFACE_BIN", "")
OPENFACE_ARGS = "-mloc model/main_clnf_general.txt"

pytestmark = [
    pytest.mark.openface,
    pytest.mark.skipif(
        not (OPENFACE_BIN and os.access(Path(OPENFACE_BIN).with_name("FeatureExtraction"), os.X_OK)),
        reason="needs $OPENFACE_BIN (a native OpenFace 2.2.0 FaceLandmarkImg), FeatureExtraction beside it",
    ),
    pytest.mark.skipif(
        not __import__("importlib").util.find_spec("tensorflow"), reason="explain's CNN needs TensorFlow"
    ),
]


def _first_frame() -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(VIDEO / "default_30.avi"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


def mixed(root: Path) -> Path:
    folder = root / "mixed"
    folder.mkdir()
    shutil.copy(FACE, folder / "photo.jpg")
    shutil.copy(VIDEO / "default_30.avi", folder / "clip.avi")
    return folder


def one_frame_video(root: Path) -> Path:
    import cv2

    frame = _first_frame()
    path = root / "one_frame.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (frame.shape[1], frame.shape[0]))
    writer.write(frame)
    writer.release()
    return path


def frames_without_video(root: Path) -> Path:
    return Path(shutil.copytree(VIDEO / "frames", root / "frames"))


def odd_images(root: Path) -> Path:
    import cv2
    from PIL import Image

    folder = root / "odd"
    folder.mkdir()
    image = cv2.imread(str(FACE))
    cv2.imwrite(str(folder / "grey.png"), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "sixteen_bit.png"), image.astype(np.uint16) * 257)  # 0-65535
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": the pixels are stored turned
    Image.open(FACE).transpose(Image.Transpose.ROTATE_90).save(
        folder / "exif_rotated.jpg", exif=exif.tobytes()
    )
    return folder


# build, kind of table, rows per video or image
CASES = {
    "mixed images and videos": (mixed, "sequences", {"clip.avi": 30, "mixed": 1}),
    "one-frame video": (one_frame_video, "sequences", {"one_frame.avi": 1}),
    "frames without a video": (frames_without_video, "images", {f"00{i}.jpg": 1 for i in range(1, 6)}),
    "greyscale, 16-bit, EXIF-rotated": (
        odd_images, "images", {"grey.png": 1, "sixteen_bit.png": 1, "exif_rotated.jpg": 1}
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_make_openface_gives_a_row_or_a_failure(case, tmp_path):
    from openface_runner.cli import main

    build, kind, rows = CASES[case]
    source = build(tmp_path)
    table = tmp_path / "au_table.csv"
    options = ["--openface-bin", OPENFACE_BIN, "--openface-args", OPENFACE_ARGS, "--workers", "1", "--quiet"]
    code = main(["run", "--in", str(source), "--out", str(table), "--backend", "native", *options])
    assert code == 0
    au = pd.read_csv(table)
    key = "video" if kind == "sequences" else "image"
    assert au[key].value_counts().to_dict() == rows
    assert pd.read_csv(tmp_path / "au_table.failures.csv").empty
    if case.startswith("greyscale"):  # every variant is read upright: the same face box
        boxes = au[["face_x", "face_y", "face_w", "face_h"]].to_numpy()
        assert np.abs(boxes - boxes[0]).max() < 1.0


@pytest.mark.parametrize("case", list(CASES))
def test_make_explain_explains_every_face_with_both_models(case, tmp_path, seed_run):
    """Explained and classified: every face or used frame has the AU model's and the CNN's
    probabilities (a photo beside a video, a sequence of frames, had no CNN crop before)."""
    from explain.cli import main

    build, kind, rows = CASES[case]
    source = build(tmp_path)
    out = tmp_path / "reports"
    code = main(["run", "--in", str(source), "--model", str(seed_run.results_dir / "model.json"),
                 "--backend", "native", "--openface-bin", OPENFACE_BIN, "--openface-args", OPENFACE_ARGS,
                 "--workers", "1", "--out", str(out), "--cache", str(tmp_path / "cache")])  # fmt: skip
    assert code == 0
    results = out / "explain"
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["kind"] == kind and metrics["n_unexplained"] == 0 and metrics["cnn"]["available"]
    if kind == "images":
        faces = pd.read_csv(results / "faces.csv")
        assert faces["image"].value_counts().to_dict() == rows
        assert faces["crop"].all() and faces["cnn_predicted"].notna().all()
    else:
        frames = pd.read_csv(results / "frames.csv")
        assert frames["video"].value_counts().to_dict() == rows
        used = frames[frames["success"] == 1]
        assert used["cnn_happy"].notna().all(), used.groupby("video")["cnn_happy"].count()
