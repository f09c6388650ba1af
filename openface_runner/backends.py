"""Where OpenFace runs: a Docker container (default) or a local ``FaceLandmarkImg``.

The tool and its command line are the backend's ``build`` (``flags.face_landmark_img`` for
images; ``video.sequence_backend`` makes the ``FeatureExtraction`` / ``FaceLandmarkVidMulti`` twin).

Both backends expose ``check(folders)`` (fail early with a message that says what to do),
``session(worker, folders)``: a context that yields ``process(batch) -> exit code``, running
OpenFace on one batch folder under a time limit, and ``cancel()``, which stops every running
OpenFace call (the runner calls it on Ctrl-C and SIGTERM). A Docker session is one container
for the worker's whole run, removed on success, error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

from openface_runner.docker_backend import DEFAULT_IMAGE, DockerBackend
from openface_runner.errors import BackendError
from openface_runner.folders import RunFolders
from openface_runner.native import BATCH_TIMEOUT_S, BIN_ENV, TIMEOUT_EXIT, NativeBackend, Process

__all__ = [
    "BATCH_TIMEOUT_S",
    "BIN_ENV",
    "DEFAULT_IMAGE",
    "BackendError",
    "DockerBackend",
    "NativeBackend",
    "Process",
    "RunFolders",
    "exit_reason",
    "make_backend",
]


def exit_reason(code: int, timeout_s: float, log: Path) -> str:
    """The failure reason of a batch whose OpenFace call ended with ``code`` (non-zero).

    Negative codes (``subprocess``) and 129-192 (a shell's or ``docker exec``'s 128 + n) are
    signals; ``TIMEOUT_EXIT`` (124) is the time limit.
    """
    if code == TIMEOUT_EXIT:
        return f"OpenFace timed out after {timeout_s:g} s; see {log}"
    number = -code if code < 0 else code - 128 if 128 < code <= 128 + 64 else 0
    if number:
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        return f"OpenFace was killed by signal {number} ({name}); see {log}"
    return f"OpenFace exited with code {code}; see {log}"


def make_backend(
    kind: str,
    binary: str | None = None,
    image: str = DEFAULT_IMAGE,
    extra: Sequence[str] = (),
    progress: bool = True,
    timeout_s: float = BATCH_TIMEOUT_S,
) -> NativeBackend | DockerBackend:
    """``"docker"`` or ``"native"``.

    Raises:
        BackendError: another name.
    """
    if kind == "docker":
        return DockerBackend(image, extra, progress, timeout_s=timeout_s)
    if kind == "native":
        return NativeBackend(binary, extra, timeout_s=timeout_s)
    raise BackendError(f"unknown backend {kind!r}; use docker or native")
