"""``IN=`` -> an AU table, by the OpenFace runner (``python -m openface_runner run``), cached.

The runner tells images and videos apart itself (``--mode auto``: a video file, or a folder
holding one, is run with ``FeatureExtraction``; ``MULTI=1``: ``FaceLandmarkVidMulti``; a folder
of images with ``FaceLandmarkImg``) and always asks OpenFace for the 2D landmarks (``-2Dfp``),
whose bounding box it writes as ``face_x, face_y, face_w, face_h`` in the input's pixels.

The table is written in a run folder below ``CACHE`` named after the input and a hash of its
absolute path and the OpenFace settings; the runner's own resume (``<table>.run/done/``, keyed
by each input's path and content) makes a rerun on the same input quick. A single image file
is copied into the run folder first (the runner takes image folders).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from analysis.arguments import Interrupted, signal_number
from explain.errors import OPENFACE_HELP, ExplainError
from openface_runner.runner import NO_FACE, failures_path

CACHE = Path("data/openface/explain")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class OpenFaceSettings:
    """How the runner calls OpenFace (the ``make openface`` options)."""

    backend: str = "docker"
    openface_bin: str | None = None
    openface_args: str = ""
    multi: bool = False
    workers: int | None = None
    image: str | None = None


def check_openface(settings: OpenFaceSettings) -> None:
    """Fail early, in one line that says how to get OpenFace, when the native binary is missing.

    (A Docker engine that cannot be reached is reported by the runner; its message is passed on
    with the same advice.)
    """
    if settings.backend != "native":
        return
    binary = settings.openface_bin or os.environ.get("OPENFACE_BIN")
    if not binary:
        raise ExplainError(f"no OpenFace: BACKEND=native needs OPENFACE_BIN; {OPENFACE_HELP}")
    path = Path(binary)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ExplainError(f"no OpenFace at {path} (not an executable file); {OPENFACE_HELP}")


def run_folder(source: Path, settings: OpenFaceSettings, cache: Path = CACHE) -> Path:
    """The run folder of ``source`` with ``settings`` (below ``cache``)."""
    key = "\0".join(
        [
            str(source.resolve()),
            settings.backend,
            settings.openface_args,
            str(settings.multi),
            settings.image or "",
        ]
    )
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in source.name)[:40] or "input"
    return cache / f"{safe}-{digest}"


def extract(
    source: str | os.PathLike[str],
    settings: OpenFaceSettings,
    cache: Path = CACHE,
    allow_no_faces: bool = False,
) -> tuple[Path, Path]:
    """Run OpenFace (through the runner) over ``source``: an image, a folder of images, a video
    or a folder of videos. Returns ``(AU table, media root)``: the table's ``image``/``video``
    paths are below (or, for one video, are) the media root. With ``allow_no_faces`` (the
    faces OpenFace misses are estimated) a run that found no face at all returns the table's
    path though none was written, its failures file beside it.

    Raises:
        ExplainError: ``source`` is missing; no OpenFace (how to get it); the runner failed
            (its last message, and how to get OpenFace).
    """
    source = Path(source)
    if not source.exists():
        raise ExplainError(f"{source}: no such file or folder")
    check_openface(settings)
    folder = run_folder(source, settings, cache)
    folder.mkdir(parents=True, exist_ok=True)
    media = source
    if source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        media = folder / "input"
        media.mkdir(exist_ok=True)
        target = media / source.name
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)
    table = folder / "au_table.csv"
    command = [sys.executable, "-m", "openface_runner", "run", "--in", str(media), "--out", str(table)]
    command += ["--backend", settings.backend, "--mode", "auto"]
    if settings.openface_bin:
        command += ["--openface-bin", settings.openface_bin]
    if settings.openface_args:
        command += ["--openface-args", settings.openface_args]
    if settings.multi:
        command.append("--multi")
    if settings.workers:
        command += ["--workers", str(settings.workers)]
    if settings.image:
        command += ["--image", settings.image]
    last = _run_forwarding(command)
    failures = failures_path(table)
    if not table.is_file() and not (allow_no_faces and failures.is_file()):
        hint = ""
        if failures.is_file() and NO_FACE in failures.read_text(errors="replace"):
            hint = "; AU_CNN=1 (--estimate-missed) would estimate the AUs of images OpenFace found no face in"
        raise ExplainError(
            f"OpenFace wrote no AU table for {source} ({last or 'no message'}){hint}; {OPENFACE_HELP}"
        )
    return table, media


def _run_forwarding(command: list[str]) -> str:
    """Run ``command``, its output shown as it comes; returns its last non-empty stderr line.

    Raises:
        ExplainError: it exited with an error (its last message and how to get OpenFace).
        KeyboardInterrupt: SIGINT or SIGTERM here (passed on to the runner, which stops OpenFace
            before this returns) or to the runner alone (:class:`Interrupted`).
    """
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace")
    tail = ""
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if not line.startswith("error: "):  # the runner's own error comes back once, in ours
                sys.stderr.write(line)
            text = line.replace("\r", "\n").strip().splitlines()
            if text and text[-1].strip():
                tail = text[-1].strip()
        code = process.wait()
    except KeyboardInterrupt as exc:  # pass the signal on: the runner stops its OpenFace calls
        _stop(process, signal_number(exc))
        raise
    if code - 128 in (signal.SIGINT, signal.SIGTERM):  # the runner alone was signalled
        raise Interrupted(code - 128)
    if code not in (0, 1):
        message = tail.removeprefix("error: ")
        raise ExplainError(f"the OpenFace runner stopped ({message}); {OPENFACE_HELP}")
    return tail


def _stop(process: subprocess.Popen, signum: int, wait_s: float = 30.0) -> None:
    """Send ``signum`` to the runner (it stops OpenFace, then exits); SIGKILL after ``wait_s``."""
    if process.poll() is None:
        process.send_signal(signum)
    try:
        process.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
