"""A run's work folder (default ``<table>.run/``), its marker and its lock."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
