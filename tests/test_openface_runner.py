"""The OpenFace stage on real recorded outputs: parsing, staging, orchestration, resume, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS, BOX_COLUMNS, read_au_table
from openface_runner.backends import BackendError, DockerBackend, NativeBackend, RunFolders
from openface_runner.flags import face_landmark_img, split_extra
from openface_runner.inputs import InputError, discover, stage, upscale_factor
from openface_runner.parse import OutputError, parse_face_csv, to_original
from openface_runner.runner import NO_FACE, failures_path, run_openface
from openface_runner.staging import Geometry, geometry_path
from tests.conftest import FIXTURES

OPENFACE = FIXTURES / "openface"
SAMPLES = OPENFACE / "samples"
REPLAY = OPENFACE / "replay"
ROOT = Path(__file__).resolve().parent.parent


# --- parsing real OpenFace CSVs ---------------------------------------------------------


def test_parse_good_detection():
    row = parse_face_csv(SAMPLES / "fer2013_good_PrivateTest_10077120.csv")
    assert row["face_count"] == 1 and row["success"] == 1
    assert set(AU_R_COLUMNS) | set(AU_C_COLUMNS) <= set(row)
    assert all(0 <= row[c] <= 5 for c in AU_R_COLUMNS)


def test_low_confidence_fit_is_marked_unsuccessful_but_keeps_aus():
    row = parse_face_csv(SAMPLES / "fer2013_lowconf_failed_fit_PrivateTest_10131363.csv")
    assert row["confidence"] == pytest.approx(0.017) and row["success"] == 0
    assert sum(row[c] for c in AU_R_COLUMNS) > 0  # OpenFace issue #425: AUs are still written


def test_multiface_keeps_the_most_confident_face():
    frame = pd.read_csv(SAMPLES / "openface_sample2_multiface.csv", skipinitialspace=True)
    row = parse_face_csv(SAMPLES / "openface_sample2_multiface.csv")
    assert row["face_count"] == len(frame) == 3
    assert row["confidence"] == pytest.approx(frame["confidence"].max())
    fer = parse_face_csv(SAMPLES / "fer2013_train_multiface_Training_38245386.csv")
    assert fer["face_count"] == 2 and fer["face"] == 0 and fer["confidence"] == pytest.approx(0.883)


def test_sequence_mode_success_column_is_used():
    frame = pd.read_csv(
        SAMPLES / "featureextraction_sequence_3fer_images_with_success_col.csv", skipinitialspace=True
    )
    frame.columns = [c.strip() for c in frame.columns]
    row = parse_face_csv(SAMPLES / "featureextraction_sequence_3fer_images_with_success_col.csv")
    best = frame.loc[frame["confidence"].idxmax()]
    assert row["success"] == int(best["success"])


def test_header_with_leading_spaces(tmp_path):
    # Other OpenFace builds write ", AU01_r" headers: the same values must come out.
    source = SAMPLES / "fer2013_good_PrivateTest_10077120.csv"
    lines = source.read_text().splitlines()
    spaced = tmp_path / "spaced.csv"
    spaced.write_text(", ".join(lines[0].split(",")) + "\r\n" + "\r\n".join(lines[1:]) + "\r\n")
    assert parse_face_csv(spaced) == parse_face_csv(source)


def test_unusable_outputs(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(OutputError, match="unreadable"):
        parse_face_csv(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text((SAMPLES / "fer2013_good_PrivateTest_10077120.csv").read_text().splitlines()[0])
    with pytest.raises(OutputError, match="no face rows"):
        parse_face_csv(header_only)


# --- discovery and staging ----------------------------------------------------------------


@pytest.fixture
def replay_input(tmp_path) -> Path:
    root = tmp_path / "faces"
    shutil.copytree(REPLAY / "input", root)
    return root


def test_discover_labels_and_keys(replay_input):
    images, skipped = discover(replay_input)
    assert len(images) == 30 and skipped == []
    assert {i.label for i in images} == {"angry", "disgust", "happy", "neutral", "sad", "surprise"}
    assert len({i.key for i in images}) == 30 and all(i.key.isascii() for i in images)


def test_discover_bad_folders(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        discover(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no files"):
        discover(tmp_path / "empty")
    (tmp_path / "file.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="not a folder"):
        discover(tmp_path / "file.jpg")


def test_upscaling_reaches_about_200_px(replay_input, tmp_path):
    image = discover(replay_input)[0][0]
    assert cv2.imread(str(image.path)).shape[:2] == (48, 48)
    assert upscale_factor(48, None) == 4
    staged = cv2.imread(str(stage(image, tmp_path / "auto")))
    assert staged.shape[:2] == (192 + 2 * 48, 192 + 2 * 48)
    plain = cv2.imread(str(stage(image, tmp_path / "plain", upscale=1)))
    assert plain.shape[:2] == (48, 48)
    bordered = cv2.imread(str(stage(image, tmp_path / "b", upscale=2, border=10)))
    assert bordered.shape[:2] == (116, 116)
    with pytest.raises(ValueError, match=">= 1"):
        stage(image, tmp_path / "x", upscale=0.5)


# --- commands -------------------------------------------------------------------------------


def test_openface_command_lines(tmp_path):
    extra = split_extra("-mloc model/main_clnf_general.txt")
    assert face_landmark_img("FaceLandmarkImg", "in", "out", extra) == [
        "FaceLandmarkImg",
        "-fdir",
        "in",
        "-out_dir",
        "out",
        "-aus",
        "-2Dfp",
        "-mloc",
        "model/main_clnf_general.txt",
    ]
    folders = RunFolders(tmp_path / "run")
    native = NativeBackend("/opt/openface/bin/FaceLandmarkImg", extra)
    assert native.command(folders, "w0-b0")[:3] == [
        "/opt/openface/bin/FaceLandmarkImg",
        "-fdir",
        str(folders.batches / "w0-b0"),
    ]
    docker = DockerBackend("algebr/openface:latest", extra)
    assert docker.command("w1-b2") == [
        "./FaceLandmarkImg",
        "-fdir",
        "/workbench/in/w1-b2",
        "-out_dir",
        "/workbench/out/w1-b2",
        "-aus",
        "-2Dfp",
        "-mloc",
        "model/main_clnf_general.txt",
    ]
    options = docker.container_options(folders)
    assert options["user"] == f"{os.getuid()}:{os.getgid()}"
    modes = {v["bind"]: v["mode"] for v in options["volumes"].values()}
    assert modes == {"/workbench/in": "ro", "/workbench/out": "rw"}


def test_docker_engine_unreachable_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(BackendError, match="Docker engine is unreachable.*--backend native"):
        DockerBackend().check()


def test_native_binary_missing(tmp_path):
    with pytest.raises(BackendError, match="not an executable file"):
        NativeBackend(tmp_path / "FaceLandmarkImg").check()


# --- orchestration with the replay stand-in ---------------------------------------------------


@pytest.fixture
def stand_in(tmp_path, replay_input, monkeypatch) -> Path:
    """An executable that replays recorded real OpenFace outputs (see its docstring)."""
    script = tmp_path / "FaceLandmarkImg"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{OPENFACE / "replay_openface.py"}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("REPLAY_INPUT_ROOT", str(replay_input))
    monkeypatch.setenv("REPLAY_RECORDED", str(REPLAY / "output"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return script


def test_run_builds_the_au_table_from_real_outputs(stand_in, replay_input, tmp_path):
    table_path = tmp_path / "out" / "aus.csv"
    summary = run_openface(
        replay_input, table_path, NativeBackend(stand_in), workers=2, batch_size=4, progress=False
    )
    assert (summary.inputs, summary.rows, summary.failures) == (30, 24, 6)
    assert summary.reasons == {NO_FACE: 6} and summary.detection_rate == pytest.approx(0.8)
    table = read_au_table(table_path)  # fit-logit's reader accepts it unchanged
    assert list(table.columns[:11]) == [
        "image",
        "label",
        "face",
        "face_count",
        "confidence",
        "success",
        *BOX_COLUMNS,
        "AU01_r",
    ]
    assert table.groupby("label").size().to_dict() == dict.fromkeys(
        ["angry", "disgust", "happy", "neutral", "sad", "surprise"], 4
    )
    one = table.set_index("image").loc["angry/PrivateTest_14565821.jpg"]
    recorded = pd.read_csv(REPLAY / "output" / "angry" / "PrivateTest_14565821.csv").iloc[0]
    assert one["AU06_r"] == recorded["AU06_r"] and one["confidence"] == recorded["confidence"]
    failures = pd.read_csv(failures_path(table_path))
    assert "angry/PrivateTest_61911448.jpg" in set(failures["image"])  # recorded without a face
    logs = "".join(p.read_text() for p in (summary.run_dir / "logs").glob("worker-*.log"))
    assert "-aus -2Dfp" in logs and "exit code 0" in logs


def test_face_box_maps_back_to_the_original_image(stand_in, replay_input, tmp_path):
    """The box of a real recording (OpenFace on the 4x + 48 px staged copy) in the 48x48 image."""
    table_path = tmp_path / "aus.csv"
    run_openface(replay_input, table_path, NativeBackend(stand_in), workers=1, progress=False)
    table = read_au_table(table_path).set_index("image")
    boxes = table[list(BOX_COLUMNS)]
    assert boxes.notna().all().all()  # every face found has a box
    assert (boxes["face_x"] >= 0).all() and (boxes["face_y"] >= 0).all()
    assert (boxes["face_x"] + boxes["face_w"] <= 48).all() and (boxes["face_y"] + boxes["face_h"] <= 48).all()
    centre = (boxes["face_x"] < 24) & (boxes["face_x"] + boxes["face_w"] > 24)
    centre &= (boxes["face_y"] < 24) & (boxes["face_y"] + boxes["face_h"] > 24)
    assert centre.all()  # FER2013 faces are centred
    assert (boxes["face_w"] > 20).all() and (boxes["face_h"] > 20).all()  # a face, not a speck

    # exactly: the recorded landmarks' min/max, mapped through the staging (factor 4, border 48)
    recorded = pd.read_csv(REPLAY / "output" / "angry" / "PrivateTest_14565821.csv").iloc[0]
    xs = recorded[[f"x_{i}" for i in range(68)]].to_numpy(float)
    ys = recorded[[f"y_{i}" for i in range(68)]].to_numpy(float)

    def back(v):
        return min(max((v - 48 + 0.5) / 4 - 0.5, 0.0), 48.0)

    one = boxes.loc["angry/PrivateTest_14565821.jpg"]
    assert one["face_x"] == pytest.approx(back(xs.min()))
    assert one["face_y"] == pytest.approx(back(ys.min()))
    assert one["face_w"] == pytest.approx(back(xs.max()) - back(xs.min()))
    assert one["face_h"] == pytest.approx(back(ys.max()) - back(ys.min()))
    assert not any(c.startswith(("x_", "y_")) for c in table.columns)  # only the box is kept


def test_face_box_without_staging_and_clipped():
    geometry = Geometry(width=48, height=40, factor=4.0, border=48)
    assert geometry.to_original(51.5, 47.5) == (0.5, 0.0)  # (51.5 - 48 + 0.5) / 4 - 0.5
    assert geometry.to_original(0, 1000) == (0.0, 40.0)  # in the border: clipped to the image
    assert Geometry(100, 80, 1.0, 0).to_original(12.5, 7.25) == (12.5, 7.25)
    # a box wholly in the border has nothing in the image: no box
    box = to_original({"face_x": 0.0, "face_y": 0.0, "face_w": 10.0, "face_h": 10.0}, geometry)
    assert all(np.isnan(v) for v in box.values())


def test_staging_records_its_geometry(replay_input, tmp_path):
    images, _ = discover(replay_input)
    staged = stage(images[0], tmp_path / "staged", upscale=4, border=48)
    assert Geometry.read(geometry_path(staged)) == Geometry(48, 48, 4.0, 48)
    assert Geometry.read(tmp_path / "missing.json") is None


def test_old_outputs_without_landmarks_give_no_box(tmp_path):
    """A CSV without 2D landmarks (OpenFace without -2Dfp): a row without box columns."""
    row = parse_face_csv(SAMPLES / "fer2013_good_PrivateTest_10077120.csv")
    assert not set(BOX_COLUMNS) & set(row)
    partial = tmp_path / "partial.csv"
    recorded = pd.read_csv(REPLAY / "output" / "angry" / "PrivateTest_14565821.csv")
    recorded.drop(columns=["y_67"]).to_csv(partial, index=False)
    with pytest.raises(OutputError, match="2D landmarks without y_67"):
        parse_face_csv(partial)
    recorded.assign(x_3="oops").to_csv(partial, index=False)
    with pytest.raises(OutputError, match="non-numeric 2D landmarks"):
        parse_face_csv(partial)


def test_bad_files_become_recorded_failures(stand_in, replay_input, tmp_path):
    (replay_input / "happy" / "notes.txt").write_text("not a face")
    (replay_input / "sad" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    shutil.copy(replay_input / "happy" / "PrivateTest_29833448.jpg", replay_input / "happy" / "얼굴 사진.jpg")
    shutil.copy(
        replay_input / "happy" / "PrivateTest_29833448.jpg", replay_input / "sad" / "PrivateTest_29833448.jpg"
    )
    summary = run_openface(
        replay_input, tmp_path / "aus.csv", NativeBackend(stand_in), workers=1, progress=False
    )
    assert summary.inputs == 34 == summary.rows + summary.failures
    failures = pd.read_csv(failures_path(tmp_path / "aus.csv")).set_index("image")["reason"]
    assert failures["happy/notes.txt"].startswith("not an image file")
    assert failures["sad/broken.jpg"].startswith("unreadable or corrupt image")
    # Copies the recording does not cover are reported as OpenFace would: no face.
    assert failures["happy/얼굴 사진.jpg"] == NO_FACE and failures["sad/PrivateTest_29833448.jpg"] == NO_FACE
    assert (
        read_au_table(tmp_path / "aus.csv")
        .loc[lambda t: t["image"] == "happy/PrivateTest_29833448.jpg"]
        .shape[0]
        == 1
    )


def test_killed_run_resumes_to_the_same_table(stand_in, replay_input, tmp_path):
    reference = tmp_path / "reference.csv"
    run_openface(replay_input, reference, NativeBackend(stand_in), workers=1, batch_size=3, progress=False)

    table = tmp_path / "resumed.csv"
    command = [
        sys.executable,
        "-m",
        "openface_runner",
        "run",
        "--in",
        str(replay_input),
        "--out",
        str(table),
        "--backend",
        "native",
        "--openface-bin",
        str(stand_in),
        "--workers",
        "1",
        "--batch-size",
        "3",
        "--quiet",
    ]
    env = {**os.environ, "REPLAY_DELAY": "0.1"}
    child = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
    done = Path(str(table) + ".run") / "done"
    deadline = time.monotonic() + 60
    while len(list(done.glob("*_of_details.txt"))) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    finished = len(list(done.glob("*_of_details.txt")))
    assert 6 <= finished < 30 and not table.exists()

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    assert f"processed now {30 - finished}" in again.stdout
    assert table.read_bytes() == reference.read_bytes()
    assert failures_path(table).read_bytes() == failures_path(reference).read_bytes()


def test_resume_refuses_other_settings(stand_in, replay_input, tmp_path):
    run_openface(replay_input, tmp_path / "aus.csv", NativeBackend(stand_in), workers=1, progress=False)
    with pytest.raises(InputError, match="was made with other settings .upscale: then None, now 2"):
        run_openface(replay_input, tmp_path / "aus.csv", NativeBackend(stand_in), upscale=2, progress=False)


def test_resume_refuses_a_run_folder_made_without_landmarks(stand_in, replay_input, tmp_path):
    """A run folder of the runner before -2Dfp: its outputs have no landmarks, so it is refused."""
    run_openface(replay_input, tmp_path / "aus.csv", NativeBackend(stand_in), workers=1, progress=False)
    settings = tmp_path / "aus.csv.run" / "settings.json"
    old = json.loads(settings.read_text())
    del old["openface_flags"]  # what the earlier runner recorded
    settings.write_text(json.dumps(old))
    with pytest.raises(InputError) as refused:
        run_openface(replay_input, tmp_path / "aus.csv", NativeBackend(stand_in), progress=False)
    message = str(refused.value)
    assert "OpenFace output flags: then -aus (made by an earlier runner, without -2Dfp" in message
    assert "no face boxes), now -aus -2Dfp" in message and "delete that folder" in message
    assert "upscale" not in message  # only what differs


def test_cli_errors_are_clear(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "openface_runner",
            "run",
            "--in",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "t.csv"),
            "--backend",
            "native",
            "--openface-bin",
            "/bin/false",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "error:" in done.stderr and "no such folder" in done.stderr


# --- the real engine, where one runs ------------------------------------------------------------


def _docker_reachable() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.mark.docker
@pytest.mark.skipif(not _docker_reachable(), reason="needs a reachable Docker engine (none on this machine)")
def test_docker_backend_on_real_openface(replay_input, tmp_path):
    """Real algebr/openface over the replay images, with the landmark model the recordings used."""
    backend = DockerBackend(extra=["-mloc", "model/main_clnf_general.txt"], progress=False)
    summary = run_openface(replay_input, tmp_path / "aus.csv", backend, workers=2, progress=False)
    assert summary.inputs == 30 and summary.rows >= 20
    table = read_au_table(tmp_path / "aus.csv").set_index("image")
    recorded = pd.read_csv(REPLAY / "output" / "happy" / "PrivateTest_29833448.csv").iloc[0]
    assert abs(table.loc["happy/PrivateTest_29833448.jpg", "AU12_r"] - recorded["AU12_r"]) < 0.5
