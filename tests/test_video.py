"""Videos and image sequences through the runner, with a stand-in replaying real OpenFace outputs.

The stand-in (tests/fixtures/openface/video/replay_sequence.py) writes what the real OpenFace
2.2.0 FeatureExtraction / FaceLandmarkVidMulti wrote for the same fixture inputs; these tests
check the runner's side: discovery, the calls, the sequence table, failures, resume, the CLI.
"""

from __future__ import annotations

import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis.au_table import (
    AU_C_COLUMNS,
    AU_R_COLUMNS,
    BOX_COLUMNS,
    SEQUENCE_META,
    AUTableError,
    read_sequence_table,
    write_sequence_table,
)
from openface_runner.backends import DockerBackend, NativeBackend, RunFolders
from openface_runner.flags import sequence_command
from openface_runner.parse import OutputError
from openface_runner.runner import failures_path
from openface_runner.video import (
    EMPTY_FILE,
    NO_FACE,
    discover_sequences,
    is_sequence_input,
    parse_sequence_csv,
    progress_share,
    run_sequences,
    sequence_backend,
)
from tests.conftest import FIXTURES

VIDEO = FIXTURES / "openface" / "video"
RECORDED = VIDEO / "recorded"
ROOT = Path(__file__).resolve().parent.parent
TRUNCATED_BYTES = 120_000  # as replay_sequence.py


def recorded(tool: str, stem: str) -> pd.DataFrame:
    return pd.read_csv(RECORDED / tool / f"{stem}.csv", skipinitialspace=True)


@pytest.fixture
def stand_in(tmp_path, monkeypatch) -> Path:
    """A bin folder like OpenFace's: FaceLandmarkImg and the two sequence tools, replaying recordings."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("FaceLandmarkImg", "FeatureExtraction", "FaceLandmarkVidMulti"):
        script = bin_dir / tool
        script.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{VIDEO / "replay_sequence.py"}" {tool} "$@"\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return bin_dir / "FaceLandmarkImg"


@pytest.fixture
def videos(tmp_path) -> Path:
    """A folder with a video, an image sequence, and every kind of bad input."""
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(VIDEO / "default_30.avi", folder)
    shutil.copytree(VIDEO / "frames", folder / "session1" / "frames")
    (folder / "truncated.avi").write_bytes((VIDEO / "default_30.avi").read_bytes()[:TRUNCATED_BYTES])
    shutil.copy(VIDEO / "no_face_10.avi", folder)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "garbage.avi").write_bytes(b"not a video at all" * 100)
    (folder / "notes.txt").write_text("not an input\n")
    return folder


def test_commands_of_both_backends(tmp_path):
    assert sequence_command("FE", "/in/vid_1.avi", "/out/vid_1.avi", ["-mloc", "m.txt"]) == [
        "FE", "-f", "/in/vid_1.avi/vid_1.avi", "-out_dir", "/out/vid_1.avi",
        "-aus", "-2Dfp", "-mloc", "m.txt",
    ]  # fmt: skip
    assert sequence_command("FE", "/in/seq_1", "/out/seq_1") == [
        "FE",
        "-fdir",
        "/in/seq_1",
        "-out_dir",
        "/out/seq_1",
        "-aus",
        "-2Dfp",
    ]
    docker = sequence_backend(DockerBackend(extra=["-mloc", "m.txt"]), multi=True)
    assert docker.command("vid_1.mp4")[:3] == [
        "./FaceLandmarkVidMulti",
        "-f",
        "/workbench/in/vid_1.mp4/vid_1.mp4",
    ]
    native = sequence_backend(NativeBackend(tmp_path / "bin" / "FaceLandmarkImg"), multi=False)
    assert native.binary == str(tmp_path / "bin" / "FeatureExtraction")


def test_discovery_and_mode(videos):
    inputs, rejected = discover_sequences(videos)
    assert [s.relative for s in inputs] == [
        "default_30.avi", "garbage.avi", "no_face_10.avi", "session1/frames", "truncated.avi",
    ]  # fmt: skip
    by_name = {s.relative: s for s in inputs}
    assert by_name["default_30.avi"].frames == 30  # the header's count, for progress in frames
    assert by_name["session1/frames"].frames == 5 and not by_name["session1/frames"].is_video
    assert {r.relative: r.reason for r in rejected} == {
        "empty.mp4": EMPTY_FILE,
        "notes.txt": "not a video or image file (.txt)",
    }
    assert is_sequence_input(videos) and is_sequence_input(videos / "default_30.avi")
    assert not is_sequence_input(videos / "session1")  # frames only: images unless --mode sequences


def test_table_holds_the_recorded_frames_and_every_failure(stand_in, videos, tmp_path):
    out = tmp_path / "out" / "seq.csv"
    summary = run_sequences(videos, out, NativeBackend(stand_in), workers=2, progress=False)

    table = read_sequence_table(out)
    assert list(table.columns[: len(SEQUENCE_META)]) == list(SEQUENCE_META)
    # default_30.avi: every value as OpenFace wrote it
    got = table[table["video"] == "default_30.avi"].reset_index(drop=True)
    expected = recorded("FeatureExtraction", "default_30")
    columns = ["frame", "face_id", "timestamp", "confidence", "success", *AU_R_COLUMNS, *AU_C_COLUMNS]
    pd.testing.assert_frame_equal(got[columns], expected[columns], check_dtype=False)
    assert got["timestamp"].iloc[-1] == pytest.approx(29 / 15, abs=0.001)  # 15 frames/s, ms
    # the image sequence and the 14 frames OpenFace could read of the truncated file
    assert (table["video"] == "session1/frames").sum() == 5
    assert (table["video"] == "truncated.avi").sum() == 14

    failures = pd.read_csv(failures_path(out)).set_index("video")["reason"]
    assert failures["empty.mp4"] == EMPTY_FILE
    assert failures["no_face_10.avi"] == NO_FACE
    assert failures["garbage.avi"].startswith("OpenFace could not open it")
    assert failures["truncated.avi"].startswith(
        "truncated or damaged video: OpenFace read 14 of the 30 frames"
    )
    assert "notes.txt" in failures
    assert "default_30.avi" not in failures and "session1/frames" not in failures
    assert (summary.inputs, summary.with_rows, summary.frames) == (7, 3, 49)
    assert summary.frames_now == 49 and summary.calls == 5 and summary.failed_calls == 0


def test_multi_face_video_keeps_every_tracked_face(stand_in, tmp_path):
    out = tmp_path / "multi.csv"
    run_sequences(VIDEO / "multi_face_20.avi", out, NativeBackend(stand_in), multi=True, progress=False)
    table = read_sequence_table(out)
    expected = recorded("FaceLandmarkVidMulti", "multi_face_20")
    assert len(table) == len(expected) == 60
    assert sorted(table["face_id"].unique()) == [0, 1, 2]
    assert table["AU12_r"].to_numpy() == pytest.approx(expected["AU12_r"].to_numpy())


def landmark_extent(rows: pd.DataFrame) -> pd.DataFrame:
    """min x, min y, width, height of the recorded 2D landmarks of each row."""
    xs = rows[[f"x_{i}" for i in range(68)]]
    ys = rows[[f"y_{i}" for i in range(68)]]
    return pd.DataFrame(
        {
            "face_x": xs.min(axis=1),
            "face_y": ys.min(axis=1),
            "face_w": xs.max(axis=1) - xs.min(axis=1),
            "face_h": ys.max(axis=1) - ys.min(axis=1),
        }
    )


def test_sequence_table_holds_each_frames_face_box(stand_in, videos, tmp_path):
    """The box of every frame is its recorded landmarks' min/max, exactly, in frame pixels."""
    out = tmp_path / "seq.csv"
    run_sequences(videos, out, NativeBackend(stand_in), workers=2, progress=False)
    table = read_sequence_table(out)
    assert list(table.columns[len(SEQUENCE_META) : len(SEQUENCE_META) + 4]) == list(BOX_COLUMNS)
    assert not any(c.startswith(("x_", "y_")) for c in table.columns)  # only the box is kept
    got = table[table["video"] == "default_30.avi"].reset_index(drop=True)
    expected = landmark_extent(recorded("FeatureExtraction", "default_30"))
    pd.testing.assert_frame_equal(got[list(BOX_COLUMNS)], expected, check_dtype=False)
    frame_10 = got.loc[got["frame"] == 10, list(BOX_COLUMNS)].iloc[0]
    assert 0 <= frame_10["face_x"] < frame_10["face_x"] + frame_10["face_w"] <= 640  # within 640x480
    assert 0 <= frame_10["face_y"] < frame_10["face_y"] + frame_10["face_h"] <= 480
    assert 100 < frame_10["face_w"] < 400 and 100 < frame_10["face_h"] < 400  # one face, close up


def test_failed_frames_have_no_box(stand_in, tmp_path):
    out = tmp_path / "multi.csv"
    run_sequences(VIDEO / "multi_face_20.avi", out, NativeBackend(stand_in), multi=True, progress=False)
    table = read_sequence_table(out)
    expected = recorded("FaceLandmarkVidMulti", "multi_face_20")
    failed = table["success"] == 0
    assert failed.any() and table.loc[failed, list(BOX_COLUMNS)].isna().all().all()
    boxes = table.loc[~failed, list(BOX_COLUMNS)].reset_index(drop=True)
    extent = landmark_extent(expected[expected["success"] == 1]).reset_index(drop=True)
    pd.testing.assert_frame_equal(boxes, extent, check_dtype=False)
    # no face at all: OpenFace writes zero landmarks, which span no box
    zeros = parse_sequence_csv(RECORDED / "FeatureExtraction" / "no_face_10.csv")
    assert len(zeros) == 10 and zeros[list(BOX_COLUMNS)].isna().all().all()


def test_sequence_tables_without_boxes_still_read(tmp_path):
    rows = recorded("FeatureExtraction", "default_30").assign(video="a.avi")
    old = rows[[*SEQUENCE_META, *AU_R_COLUMNS]]  # a table written before boxes were recorded
    path = tmp_path / "old.csv"
    write_sequence_table(old, path)
    assert not set(BOX_COLUMNS) & set(read_sequence_table(path).columns)
    boxed = pd.concat([old, landmark_extent(rows)], axis=1)
    boxed.loc[4, "face_h"] = -1.0
    with pytest.raises(AUTableError, match=r"column face_h, data row 5 .*-1 is not > 0"):
        write_sequence_table(boxed, path)
    boxed.loc[4, "face_h"] = 3.0
    write_sequence_table(boxed, path)
    text = path.read_text().replace(",3.0,", ",x3,", 1)
    path.write_text(text)
    with pytest.raises(AUTableError, match=r"column face_h, data row 5 .*'x3' is not a number"):
        read_sequence_table(path)


def test_rerun_resumes_and_replaced_video_is_redone(stand_in, videos, tmp_path):
    out = tmp_path / "seq.csv"
    backend = NativeBackend(stand_in)
    run_sequences(videos, out, backend, workers=2, progress=False)
    first = out.read_bytes()
    again = run_sequences(videos, out, backend, workers=2, progress=False)
    assert again.processed_now == 0  # OpenFace's verdicts on unreadable files stand: same content, same key
    assert out.read_bytes() == first
    shutil.copy(VIDEO / "no_face_10.avi", videos / "default_30.avi")  # same name, new content
    replaced = run_sequences(videos, out, backend, workers=2, progress=False)
    assert replaced.processed_now == 1
    assert "default_30.avi" not in set(read_sequence_table(out)["video"])


def test_failed_openface_call_is_a_failure_and_is_retried(tmp_path, videos):
    bin_dir = tmp_path / "crash"
    bin_dir.mkdir()
    for tool in ("FaceLandmarkImg", "FeatureExtraction"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 3\n")
        (bin_dir / tool).chmod(0o755)
    out = tmp_path / "seq.csv"
    summary = run_sequences(
        videos / "default_30.avi", out, NativeBackend(bin_dir / "FaceLandmarkImg"), progress=False
    )
    assert summary.every_call_failed and not out.exists()
    assert pd.read_csv(failures_path(out))["reason"].iloc[0].startswith("OpenFace exited with code 3")
    assert (
        run_sequences(
            videos / "default_30.avi", out, NativeBackend(bin_dir / "FaceLandmarkImg"), progress=False
        ).processed_now
        == 1
    )


def test_cli_runs_videos_and_rejects_misused_flags(stand_in, videos, tmp_path):
    command = [sys.executable, "-m", "openface_runner", "run", "--backend", "native", "--quiet"]
    command += ["--openface-bin", str(stand_in)]
    done = subprocess.run(
        [*command, "--in", str(videos / "default_30.avi"), "--out", str(tmp_path / "t.csv")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 inputs: 1 with rows (30 frame rows)" in done.stdout and "frames/s" in done.stdout
    misuse = subprocess.run(
        [*command, "--multi", "--in", str(videos / "session1"), "--out", str(tmp_path / "u.csv")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert misuse.returncode == 2 and "--multi applies to videos" in misuse.stderr
    not_video = tmp_path / "x.txt"
    not_video.write_text("x")
    wrong = subprocess.run(
        [*command, "--mode", "sequences", "--in", str(not_video), "--out", str(tmp_path / "v.csv")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert wrong.returncode == 2 and "not a video file" in wrong.stderr


def test_out_of_range_output_is_refused(tmp_path):
    bad = recorded("FeatureExtraction", "default_30")
    bad.loc[3, "AU12_r"] = 7.5
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(OutputError, match="AU12_r = 7.5 in face row 4"):
        parse_sequence_csv(path)
    assert len(parse_sequence_csv(RECORDED / "FeatureExtraction" / "default_30.csv")) == 30


def test_sequence_table_contract(tmp_path):
    rows = recorded("FeatureExtraction", "default_30").assign(video="a.avi")
    path = tmp_path / "t.csv"
    write_sequence_table(rows, path)
    table = read_sequence_table(path)
    assert table["frame"].tolist() == list(range(1, 31)) and table["video"].eq("a.avi").all()
    rows.loc[2, "frame"] = 0
    write_sequence_table(rows, path)
    with pytest.raises(AUTableError, match="column frame, data row 3 .*not a whole number >= 1"):
        read_sequence_table(path)
    with pytest.raises(AUTableError, match="lacks column"):
        write_sequence_table(rows.drop(columns="timestamp"), path)


def test_benchmark_reports_frames_per_second_for_both(stand_in, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "openface_runner", "benchmark", "--backend", "native", "--quiet",
         "--workers", "1", "--openface-bin", str(stand_in), "--in", str(VIDEO / "default_30.avi")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("runner: 30 frame rows in ") and lines[0].count("frames/s") == 1
    assert lines[1].startswith("bare OpenFace, 1 process: 30 frame rows in ")
    assert lines[2].startswith("runner time / bare time: ")
    assert lines[3].startswith("runner time outside its OpenFace calls: ")


def test_sigterm_stops_openface_and_the_rerun_resumes(stand_in, videos, tmp_path, monkeypatch):
    """SIGTERM mid-run: exit 143, no stand-in left running, no table; the rerun finishes it."""
    slow = tmp_path / "slow"
    slow.mkdir()
    for tool in ("FaceLandmarkImg", "FeatureExtraction"):
        script = slow / tool
        script.write_text(
            f'#!/bin/sh\necho $$ >> "{tmp_path}/pids"\n'
            f'exec "{sys.executable}" "{VIDEO / "replay_sequence.py"}" {tool} "$@"\n'
        )
        script.chmod(0o755)
    monkeypatch.setenv("REPLAY_DELAY", "30")
    out = tmp_path / "seq.csv"
    command = [sys.executable, "-m", "openface_runner", "run", "--backend", "native", "--quiet"]
    command += ["--openface-bin", str(slow / "FaceLandmarkImg"), "--in", str(videos), "--out", str(out)]
    child = subprocess.Popen([*command, "--workers", "2"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    pids = tmp_path / "pids"
    deadline = time.monotonic() + 60
    while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 143 and "stopped by SIGTERM" in stderr
    time.sleep(0.5)
    for pid in map(int, pids.read_text().split()):
        state = Path(f"/proc/{pid}/stat")
        assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert not out.exists()
    monkeypatch.setenv("REPLAY_DELAY", "0")
    summary = run_sequences(videos, out, NativeBackend(stand_in), workers=2, progress=False)
    assert summary.processed_now == 5 and summary.frames == 49


def test_progress_is_read_from_openfaces_own_output(tmp_path):
    """OpenFace prints ``0% 10% … 100%`` on stdout; the bar follows the log from the call's start."""
    log = tmp_path / "worker-0.log"
    earlier = "$ FeatureExtraction -f a.avi\n0% 10% 20% 30% 40% 50% 60% 70% 80% 90% 100% \nexit code 0\n"
    now = "$ FeatureExtraction -f b.avi\nAttempting to read from file: b.avi\nStarting tracking\n"
    now += "0% 10% 20% 30% "
    log.write_text(earlier + now)
    assert progress_share(log, len(earlier)) == pytest.approx(0.3)
    assert progress_share(log, len(log.read_bytes())) == 0.0
    assert progress_share(tmp_path / "missing.log", 0) == 0.0


def test_native_sequence_calls_are_unbuffered_where_stdbuf_exists(tmp_path):
    native = sequence_backend(NativeBackend(tmp_path / "FaceLandmarkImg"), multi=False)
    command = native.command(RunFolders(tmp_path / "run"), "vid_1.avi")
    tool = [str(tmp_path / "FeatureExtraction"), "-f", str(tmp_path / "run/batches/vid_1.avi/vid_1.avi")]
    assert command[:5] == (["stdbuf", "-o0", *tool] if shutil.which("stdbuf") else [*tool, "-out_dir"])
