"""Where OpenFace runs: a Docker container (default) or a local ``FaceLandmarkImg``.

Both expose ``check()`` (fail early with a message that says what to do) and
``session(worker)``: a context that yields ``process(batch)``, running OpenFace on one
batch folder. A session is one container (Docker) for the worker's whole run, stopped
and removed on success, error or Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from openface_runner.flags import DOCKER_BIN_DIR, EXECUTABLE, face_landmark_img

DEFAULT_IMAGE = "algebr/openface:latest"
BIN_ENV = "OPENFACE_BIN"
BATCH_TIMEOUT_S = 3600

Process = Callable[[str], int]  # batch name -> exit code


class BackendError(RuntimeError):
    """OpenFace cannot be run with this backend; the message says why and what to do."""


class RunFolders:
    """A run's folders: ``batches/<name>/`` (inputs), ``outputs/<name>/``, ``logs/``."""

    def __init__(self, run_dir: Path):
        self.root = run_dir
        self.batches = run_dir / "batches"
        self.outputs = run_dir / "outputs"
        self.logs = run_dir / "logs"
        for folder in (self.batches, self.outputs, self.logs):
            folder.mkdir(parents=True, exist_ok=True)


class NativeBackend:
    """A locally built ``FaceLandmarkImg`` run through ``subprocess``."""

    name = "native"

    def __init__(self, binary: str | os.PathLike[str] | None, extra: Sequence[str] = ()):
        self.binary = str(binary or os.environ.get(BIN_ENV, "") or shutil.which(EXECUTABLE) or "")
        self.extra = list(extra)

    def check(self) -> None:
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
        return face_landmark_img(
            self.binary, str(folders.batches / batch), str(folders.outputs / batch), self.extra
        )

    @contextmanager
    def session(self, worker: int, folders: RunFolders) -> Iterator[Process]:
        log = folders.logs / f"worker-{worker}.log"

        def process(batch: str) -> int:
            # OpenFace resolves its model files relative to the binary's folder.
            with log.open("a", encoding="utf-8") as out:
                out.write(f"$ {' '.join(self.command(folders, batch))}\n")
                out.flush()
                done = subprocess.run(
                    self.command(folders, batch),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=Path(self.binary).parent,
                    timeout=BATCH_TIMEOUT_S,
                    check=False,
                )
                out.write(f"exit code {done.returncode}\n")
            return done.returncode

        yield process


class DockerBackend:
    """OpenFace inside the ``algebr/openface`` image, through the ``docker`` Python SDK."""

    name = "docker"
    in_mount = "/workbench/in"
    out_mount = "/workbench/out"

    def __init__(self, image: str = DEFAULT_IMAGE, extra: Sequence[str] = (), progress: bool = True):
        self.image = image
        self.extra = list(extra)
        self.progress = progress
        self._client = None

    def check(self) -> None:
        """Engine reachable, image present (pulled with a progress bar if not).

        Raises:
            BackendError: engine unreachable, or image absent and not pullable (offline).
        """
        import docker
        from docker.errors import DockerException, ImageNotFound

        try:
            self._client = docker.from_env()
            self._client.ping()
        except DockerException as exc:
            raise BackendError(
                f"the Docker engine is unreachable ({exc}). Start it (Linux: `sudo systemctl start docker`; "
                "macOS/Windows: open Docker Desktop), or run a local OpenFace with "
                "--backend native --openface-bin /path/to/FaceLandmarkImg"
            ) from None
        try:
            self._client.images.get(self.image)
        except ImageNotFound:
            self._pull()

    def _pull(self) -> None:
        from docker.errors import DockerException
        from tqdm.auto import tqdm

        repository, _, tag = self.image.partition(":")
        bars: dict[str, tqdm] = {}
        try:
            for event in self._client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                detail = event.get("progressDetail") or {}
                layer = event.get("id")
                if self.progress and layer and detail.get("total"):
                    bar = bars.setdefault(
                        layer, tqdm(total=detail["total"], desc=f"pull {layer}", unit="B", unit_scale=True)
                    )
                    bar.update(detail.get("current", 0) - bar.n)
                if "error" in event:
                    raise BackendError(f"pulling {self.image} failed: {event['error']}")
        except DockerException as exc:
            raise BackendError(f"cannot pull {self.image} (offline?): {exc}") from None
        finally:
            for bar in bars.values():
                bar.close()

    def command(self, batch: str) -> list[str]:
        return face_landmark_img(
            f"./{EXECUTABLE}", f"{self.in_mount}/{batch}", f"{self.out_mount}/{batch}", self.extra
        )

    def container_options(self, folders: RunFolders) -> dict:
        """Arguments of ``containers.run``: inputs read-only, outputs writable, caller's uid:gid."""
        return {
            "image": self.image,
            "entrypoint": ["sleep", "infinity"],
            "detach": True,
            "user": f"{os.getuid()}:{os.getgid()}",
            "working_dir": DOCKER_BIN_DIR,
            "volumes": {
                str(folders.batches.resolve()): {"bind": self.in_mount, "mode": "ro"},
                str(folders.outputs.resolve()): {"bind": self.out_mount, "mode": "rw"},
            },
        }

    @contextmanager
    def session(self, worker: int, folders: RunFolders) -> Iterator[Process]:
        if self._client is None:
            self.check()
        container = self._client.containers.run(**self.container_options(folders))
        log = folders.logs / f"worker-{worker}.log"

        def process(batch: str) -> int:
            code, output = container.exec_run(self.command(batch), workdir=DOCKER_BIN_DIR)
            with log.open("a", encoding="utf-8") as out:
                out.write(f"$ {' '.join(self.command(batch))}\n")
                out.write(output.decode("utf-8", errors="replace"))
                out.write(f"exit code {code}\n")
            return int(code)

        try:
            yield process
        finally:
            try:
                (folders.logs / f"container-{worker}.log").write_bytes(container.logs())
                container.stop(timeout=5)
            finally:
                container.remove(force=True)


def make_backend(
    kind: str, binary: str | None = None, image: str = DEFAULT_IMAGE, extra: Sequence[str] = (), progress=True
) -> NativeBackend | DockerBackend:
    """``"docker"`` or ``"native"``; raises ValueError for another name."""
    if kind == "docker":
        return DockerBackend(image, extra, progress)
    if kind == "native":
        return NativeBackend(binary, extra)
    raise ValueError(f"unknown backend {kind!r}; use docker or native")
