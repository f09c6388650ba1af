"""Bad inputs through the whole runner (replay stand-in): every input is a row or a failure.

One table of real bad files, made in a temporary copy of the replay images, run once;
each case then checks its own row or reason. Before the hardening of discovery and
staging, a non-UTF-8 name crashed the run, FIFOs, hidden files, dangling links and
symlinked folders vanished without a trace, a 1x10000 PNG was staged 200x (3 GB) and an
image over OpenCV's pixel limit aborted the run.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import pandas as pd
import pytest

from analysis.au_table import read_au_table
from openface_runner.backends import NativeBackend
from openface_runner.inputs import BROKEN_LINK, CONTROL_CHARACTER, LINK_LOOP, NOT_UTF8, discover
from openface_runner.runner import NO_FACE, RunSummary, failures_path, run_openface
from openface_runner.staging import MAX_STAGED_SIDE
from tests.conftest import FIXTURES

OPENFACE = FIXTURES / "openface"
REPLAY = OPENFACE / "replay"
ROOT = Path(__file__).resolve().parent.parent
A_FACE = REPLAY / "input" / "happy" / "PrivateTest_29833448.jpg"  # recorded with a face


def write_stand_in(folder: Path, input_root: Path, before: str = "", delay: float = 0.0) -> Path:
    """An executable ``FaceLandmarkImg`` stand-in replaying the recorded real outputs.

    ``before`` is shell run first (e.g. ``echo $$ >> pids``); the environment the replay needs
    is written into the script, so no test has to change its own.
    """
    script = folder / "FaceLandmarkImg"
    script.write_text(
        "#!/bin/sh\n"
        f"{before}\n"
        f'REPLAY_INPUT_ROOT="{input_root}" REPLAY_RECORDED="{REPLAY / "output"}" '
        f'REPLAY_DELAY="{delay}" PYTHONPATH="{ROOT}" '
        f'exec "{sys.executable}" "{OPENFACE / "replay_openface.py"}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def png(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A grey 8-bit PNG; with ``rows=b""`` only its header and an empty image stream."""
    raw = b"".join(b"\0" + b"\x80" * width for _ in range(height)) if rows is None else rows

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it below the input folder and what the run must say."""

    name: str  # as it appears in the table or failures file
    make: object  # (input folder, scratch folder) -> None
    reason: str | None  # failure reason (prefix); None = a table row


def _write(relative: str, data: bytes):
    return lambda root, _: (root / relative).write_bytes(data)


def _bytes_name(folder: str, name: bytes, data: bytes):
    def make(root: Path, _) -> None:
        with open(os.fsencode(root / folder) + b"/" + name, "wb") as out:
            out.write(data)

    return make


def _symlinked_folder(root: Path, scratch: Path) -> None:
    elsewhere = scratch / "elsewhere"
    elsewhere.mkdir()
    shutil.move(root / "disgust", elsewhere / "disgust")
    (root / "disgust").symlink_to(elsewhere / "disgust", target_is_directory=True)


def _unreadable(root: Path, _) -> None:
    target = root / "sad" / "locked.jpg"
    shutil.copy(A_FACE, target)
    target.chmod(0)


CASES = [
    Case("sad/zero.jpg", _write("sad/zero.jpg", b""), "unreadable or corrupt image (.jpg: empty file)"),
    Case(
        "sad/text.png",
        _write("sad/text.png", b"a text file, renamed\n"),
        "unreadable or corrupt image (.png)",
    ),
    Case(
        "happy/truncated.jpg",
        _write("happy/truncated.jpg", A_FACE.read_bytes()[: A_FACE.stat().st_size // 2]),
        "unreadable or corrupt image (.jpg)",
    ),
    # 1x10000 px (89 bytes): staged at its own size, not 200x; OpenFace finds no face in it.
    Case("neutral/strip.png", _write("neutral/strip.png", png(10000, 1)), NO_FACE),
    # A header claiming 40000x40000 px: refused before it is decoded.
    Case(
        "neutral/bomb.png",
        _write("neutral/bomb.png", png(40000, 40000, rows=b"")),
        "image too large to stage",
    ),
    # Radiance HDR content (Pillow does not read it) over OpenCV's 2^30 px limit: OpenCV raises.
    Case(
        "neutral/opencv_limit.png",
        _write(
            "neutral/opencv_limit.png",
            b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 40000 +X 40000\n" + bytes(64),
        ),
        "unreadable or corrupt image (.png: OpenCV refused it, over OpenCV's pixel limit",
    ),
    Case("angry/bad\\xff.jpg", _bytes_name("angry", b"bad\xff.jpg", A_FACE.read_bytes()), NOT_UTF8),
    Case("angry/line\\r.jpg", _write("angry/line\r.jpg", A_FACE.read_bytes()), CONTROL_CHARACTER),
    # A hidden copy of a face is processed (the recording has nothing under its name: no face).
    Case("happy/.hidden.jpg", _write("happy/.hidden.jpg", A_FACE.read_bytes()), NO_FACE),
    Case(
        "sad/dangling.jpg",
        lambda root, _: (root / "sad" / "dangling.jpg").symlink_to(root / "absent.jpg"),
        BROKEN_LINK,
    ),
    Case(
        "surprise/pipe.jpg",
        lambda root, _: os.mkfifo(root / "surprise" / "pipe.jpg"),
        "not a regular file (FIFO)",
    ),
    Case("surprise/loop", lambda root, _: (root / "surprise" / "loop").symlink_to(root), LINK_LOOP),
    Case("happy/notes.txt", _write("happy/notes.txt", b"not a face\n"), "not an image file (.txt)"),
    # Its images are processed under the link's name: recorded faces come out as rows.
    Case("disgust/PrivateTest_53395751.jpg", _symlinked_folder, None),
    # Root reads any file: the case exists only where the tests do not run as root.
    *([Case("sad/locked.jpg", _unreadable, "unreadable file (Permission denied)")] if os.geteuid() else []),
]


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory) -> tuple[RunSummary, pd.DataFrame, pd.Series, Path]:
    """The replay images plus every bad case, through ``run_openface`` once."""
    scratch = tmp_path_factory.mktemp("bad_inputs")
    root = scratch / "faces"
    shutil.copytree(REPLAY / "input", root)
    for case in CASES:
        case.make(root, scratch)
    stand_in = write_stand_in(scratch, root)
    table_path = scratch / "out" / "aus.csv"
    summary = run_openface(root, table_path, NativeBackend(stand_in), workers=2, batch_size=7, progress=False)
    table = read_au_table(table_path)
    failures = pd.read_csv(failures_path(table_path), keep_default_na=False).set_index("image")["reason"]
    return summary, table, failures, root


def test_inputs_are_rows_plus_failures(bad_run):
    summary, table, failures, _ = bad_run
    assert summary.inputs == 30 + len(CASES) - 1  # the symlinked folder replaces a real one
    assert summary.inputs == summary.rows + summary.failures == len(table) + len(failures)
    assert len(table) == 24  # every recorded face still comes out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_bad_input_is_accounted_for(bad_run, case):
    _, table, failures, _ = bad_run
    if case.reason is None:
        assert case.name in set(table["image"]) and case.name not in failures
    else:
        assert case.name in failures, f"{case.name} neither a row nor a failure"
        assert failures[case.name].startswith(case.reason), failures[case.name]


def test_symlinked_folder_keeps_its_label_and_faces(bad_run):
    _, table, _, _ = bad_run
    assert (table["label"] == "disgust").sum() == 4


def test_long_strip_is_staged_within_the_cap(bad_run):
    summary, *_, root = bad_run
    strip = next(i for i in discover(root)[0] if i.relative == "neutral/strip.png")
    staged = cv2.imread(str(summary.run_dir / "staged" / f"{strip.key}.png"), cv2.IMREAD_UNCHANGED)
    assert staged.shape[:2] == (1, 10000) and max(staged.shape) <= max(10000, MAX_STAGED_SIDE)


def test_discovery_never_opens_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "a.jpg").write_bytes(A_FACE.read_bytes())
    images, rejected = discover(tmp_path)  # a blocking open() would hang here
    assert [i.relative for i in images] == ["a.jpg"]
    assert rejected == [("pipe.png", "", "not a regular file (FIFO)")]
