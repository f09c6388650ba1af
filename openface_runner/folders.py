"""A run's work folder (default ``<table>.run/``), its marker and its lock."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from analysis.files import write_json
from openface_runner.errors import InputError

RUN_MARKER = ".openface-runner-run"
"""File that marks a run folder; discovery never takes a folder holding it as input."""


class RunFolders:
    """A run's folders: ``batches/<name>/`` (inputs), ``outputs/<name>/``, ``logs/``.

    The root is made absolute, so that a backend running OpenFace from another working
    directory (the native one runs it from its own folder) finds the same folders.

    Raises:
        InputError: a folder cannot be created (a file in the way, no permission).
    """

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.root = Path(os.path.abspath(run_dir))
        self.batches = self.root / "batches"
        self.outputs = self.root / "outputs"
        self.logs = self.root / "logs"
        try:
            for folder in (self.batches, self.outputs, self.logs):
                folder.mkdir(parents=True, exist_ok=True)
            marker = self.root / RUN_MARKER
            if not marker.exists():
                marker.write_text("work folder of openface_runner: not an input\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{self.root}: cannot create the run folder ({exc.strerror})") from None

    def log(self, worker: int) -> Path:
        """The log of one worker: OpenFace's command lines, output and exit codes."""
        return self.logs / f"worker-{worker}.log"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder for one run (an advisory lock, released when the process ends).

        Raises:
            InputError: another run is using this folder now.
        """
        with open(self.root / ".lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(
                    f"{self.root} is in use by another run (wait for it, or choose another OUT or --run-dir)"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def check_settings(run_dir: Path, settings: dict) -> None:
    """Resuming reuses a run folder's staged inputs and outputs, so only with the settings
    (staging, OpenFace tool, output flags and arguments) that made them; the first run records
    them in ``settings.json``.

    Raises:
        InputError: the run folder was made with other settings; the message names each
            setting that differs (a folder made before the runner passed ``-2Dfp`` has no
            face landmarks, hence no face boxes, in its outputs).
    """
    path = run_dir / "settings.json"
    if path.exists():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{path}: unreadable ({exc}); choose another OUT (or --run-dir) or delete that folder"
            ) from None
        if before != settings:
            raise InputError(
                f"{run_dir} was made with other settings ({_differences(before, settings)}): its staged "
                "inputs and outputs do not apply; choose another OUT (or --run-dir) or delete that folder"
            )
    else:
        write_json(path, settings)


def _differences(before: object, now: dict) -> str:
    """The settings that differ, as ``name: then X, now Y``; ``-2Dfp`` missing is said in words."""
    if not isinstance(before, dict):
        return f"{before!r}, now {now}"
    parts = []
    for name in [*now, *(k for k in before if k not in now)]:
        then, wanted = before.get(name), now.get(name)
        if then == wanted:
            continue
        if name == "openface_flags" and "-2Dfp" in (wanted or []) and "-2Dfp" not in (then or []):
            parts.append(
                f"OpenFace output flags: then {' '.join(then or ['-aus'])} (made by an earlier runner, "
                f"without -2Dfp: no 2D landmarks, so no face boxes), now {' '.join(wanted)}"
            )
        else:
            parts.append(f"{name}: then {then!r}, now {wanted!r}")
    return "; ".join(parts)


def link(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (a copy across file systems); mounts see no symlink."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
