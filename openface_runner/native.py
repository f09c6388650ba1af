"""A locally built ``FaceLandmarkImg`` run through ``subprocess``.

Each OpenFace call runs in its own process group, from the binary's folder (OpenFace
resolves its model files relative to it), with a time limit; ``cancel()`` stops every
running call (SIGTERM, then SIGKILL after ``KILL_GRACE_S``), so that a runner stopped by
Ctrl-C or SIGTERM leaves no OpenFace process behind; on Linux a call also dies with the
runner when the runner is killed outright (SIGKILL, a signal to its whole process group). A
session given ``cpus`` confines each of its calls to those CPUs (the child's CPU affinity,
inherited by OpenFace's threads; see ``runner.cpu_shares`` for why).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from openface_runner.errors import BackendError
from openface_runner.flags import EXECUTABLE, face_landmark_img
from openface_runner.folders import RunFolders

BIN_ENV = "OPENFACE_BIN"
BATCH_TIMEOUT_S = 3600.0
TIMEOUT_EXIT = 124  # exit code of a call stopped at its time limit (as coreutils' timeout)
KILL_GRACE_S = 5.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

Process = Callable[[str], int]  # batch name -> exit code
CommandBuilder = Callable[[str, str, str, Sequence[str]], list[str]]  # executable, in, out, extra


def stop_group(process: subprocess.Popen, grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM to the process group of ``process``, SIGKILL after ``grace_s``; reaps it."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


def _preexec(cpus: frozenset[int] | None) -> Callable[[], None]:
    """A ``preexec_fn``: the child dies with the runner, and is confined to ``cpus`` (if any).

    Each call runs in its own session (so that a terminal's Ctrl-C reaches the runner, which
    stops its calls, rather than OpenFace mid-batch), so a signal to the runner's process
    group (a job killed by its shell or scheduler, a closed terminal, SIGKILL) would not reach
    it, and it would run on as an orphan. Linux's parent-death signal (``prctl(2)``,
    ``PR_SET_PDEATHSIG``) kills it when the thread that started it ends, however the runner
    ended; that thread waits for the child, so it outlives it in any orderly run.
    """
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

    def before_exec() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the runner died before the prctl took effect
                os._exit(1)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return before_exec


class NativeBackend:
    """A locally built ``FaceLandmarkImg`` (``binary``, ``$OPENFACE_BIN`` or on ``PATH``).

    Args:
        binary: the executable; a relative path is taken from the current directory.
        extra: arguments appended to every OpenFace call.
        timeout_s: time limit of one OpenFace call (one batch), seconds.
        build: the command line of one call (``flags.face_landmark_img``; the video runner
            passes ``flags.sequence_command`` with ``FeatureExtraction`` as ``binary``).
    """

    name = "native"

    def __init__(
        self,
        binary: str | os.PathLike[str] | None,
        extra: Sequence[str] = (),
        timeout_s: float = BATCH_TIMEOUT_S,
        build: CommandBuilder = face_landmark_img,
    ):
        found = str(binary or os.environ.get(BIN_ENV, "") or shutil.which(EXECUTABLE) or "")
        self.binary = os.path.abspath(found) if found else ""
        self.extra = list(extra)
        self.build = build
        self.timeout_s = timeout_s
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def __getstate__(self) -> dict:
        """Picklable (a Dask task carries its backend to a worker): no locks, no running calls."""
        state = dict(self.__dict__)
        for name in ("_lock", "_cancelled", "_running"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._running = set()
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def check(self, folders: RunFolders | None = None) -> None:
        """Raises BackendError when the binary is missing or not executable."""
        if not self.binary:
            raise BackendError(
                f"no {EXECUTABLE} binary: pass --openface-bin (make OPENFACE_BIN=...) or set ${BIN_ENV}, "
                "or use the Docker backend"
            )
        path = Path(self.binary)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise BackendError(f"{self.binary}: not an executable file")

    def command(self, folders: RunFolders, batch: str) -> list[str]:
        """The OpenFace command line of one batch (absolute paths)."""
        return self.build(self.binary, str(folders.batches / batch), str(folders.outputs / batch), self.extra)

    def cancel(self) -> None:
        """Stop every running OpenFace call of this backend; later calls do not start."""
        self._cancelled.set()
        with self._lock:
            running = list(self._running)
        for process in running:
            stop_group(process)

    @contextmanager
    def session(
        self, worker: int | str, folders: RunFolders, cpus: Collection[int] | None = None
    ) -> Iterator[Process]:
        """Yields ``process(batch) -> exit code`` (``TIMEOUT_EXIT`` at the time limit).

        ``cpus``: the CPUs each call may use (its CPU affinity, set in the child before OpenFace
        starts, so every thread OpenFace starts inherits it); None: not confined.

        Raises (from ``process``):
            BackendError: the binary cannot be started, or the backend was cancelled.
        """
        log = folders.log(worker)  # type: ignore[arg-type]
        before_exec = _preexec(frozenset(cpus) if cpus else None)

        def process(batch: str) -> int:
            command = self.command(folders, batch)
            with log.open("a", encoding="utf-8") as out:
                out.write(f"$ {' '.join(command)}\n")
                out.flush()
                with self._lock:
                    if self._cancelled.is_set():
                        raise BackendError("cancelled")
                    try:
                        child = subprocess.Popen(
                            command,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            cwd=Path(self.binary).parent,
                            start_new_session=True,  # its own group: cancel() stops it and its children
                            preexec_fn=before_exec,
                        )
                    except OSError as exc:
                        raise BackendError(f"cannot start {self.binary} ({exc.strerror})") from None
                    except subprocess.SubprocessError as exc:  # the CPU confinement failed in the child
                        raise BackendError(
                            f"cannot start {self.binary} on CPUs {sorted(cpus or ())} ({exc})"
                        ) from None
                    self._running.add(child)
                try:
                    code = child.wait(timeout=self.timeout_s)
                except subprocess.TimeoutExpired:
                    stop_group(child)
                    code = TIMEOUT_EXIT
                    out.write(f"stopped at the time limit of {self.timeout_s:g} s\n")
                finally:
                    with self._lock:
                        self._running.discard(child)
                out.write(f"exit code {code}\n")
            return code

        yield process
