"""OpenFace inside the ``algebr/openface`` image, through the ``docker`` Python SDK.

One container per worker for the whole run (``sleep infinity``; each batch is one
``exec``), confined: no network, every capability dropped, ``no-new-privileges``, memory
and process limits, the caller's uid:gid, inputs mounted read-only. Each OpenFace call runs
under the image's ``timeout`` (coreutils), so a hung call ends with exit code 124.

Containers carry labels (``au-workbench.run`` = the run folder, ``au-workbench.owner`` =
host:pid of the runner); a new run removes containers of this workbench left by a killed
run: those of its own run folder (the folder's lock says no live run uses them) and those
whose owner process on this host is gone. Docker SDK: https://docker-py.readthedocs.io/.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from openface_runner.errors import BackendError
from openface_runner.flags import DOCKER_BIN_DIR, EXECUTABLE, face_landmark_img
from openface_runner.folders import RunFolders
from openface_runner.native import BATCH_TIMEOUT_S, TIMEOUT_EXIT, CommandBuilder, Process

DEFAULT_IMAGE = "algebr/openface:latest"
LABEL_RUN = "au-workbench.run"
LABEL_OWNER = "au-workbench.owner"
LABEL_WORKER = "au-workbench.worker"
MEMORY_LIMIT = "4g"  # per container; OpenFace needs well under 1 GB on a 4096 px staged image
PIDS_LIMIT = 256  # OpenBLAS/TBB start a thread per core
KILL_AFTER_S = 10  # SIGKILL this long after the time limit's SIGTERM


def image_reference(image: str) -> tuple[str, str]:
    """``(repository, tag or digest)`` of an image reference, as ``docker pull`` reads it.

    ``algebr/openface`` -> ``("algebr/openface", "latest")``;
    ``localhost:5000/openface:2.2`` -> ``("localhost:5000/openface", "2.2")`` (a registry port is
    not a tag); ``algebr/openface@sha256:<hex>`` -> ``("algebr/openface", "sha256:<hex>")``.

    Raises:
        BackendError: an empty reference or one that ends in ``:`` or ``@``.
    """
    from docker.utils import parse_repository_tag

    text = image.strip()
    if not text or text.endswith((":", "@")):
        raise BackendError(f"{image!r} is not a Docker image reference (e.g. {DEFAULT_IMAGE})")
    repository, tag = parse_repository_tag(text)
    return repository, tag or "latest"


def owner_label() -> str:
    """``host:pid`` of this runner process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_stale(labels: Mapping[str, str], run_root: str, host: str, alive: Callable[[int], bool]) -> bool:
    """Whether a labelled container was left behind by a run that no longer runs.

    Args:
        labels: the container's labels.
        run_root: this run's folder (its lock is held: no live run owns a container of it).
        host: this machine's name; an owner on another host is never judged.
        alive: whether a process id is running on this host.
    """
    if LABEL_RUN not in labels:
        return False
    if labels[LABEL_RUN] == run_root:
        return True
    owner_host, _, pid = labels.get(LABEL_OWNER, "").rpartition(":")
    return owner_host == host and pid.isdigit() and not alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DockerBackend:
    """OpenFace in a Docker image (default ``algebr/openface:latest``).

    Args:
        image: reference, tag (``repo:tag``), registry port (``host:5000/repo:tag``) or digest
            (``repo@sha256:...``).
        extra: arguments appended to every OpenFace call.
        progress: progress bars while pulling.
        timeout_s: time limit of one OpenFace call (one batch), seconds.
        mem_limit: memory limit of each container (Docker's format: ``"4g"``).
        pids_limit: process/thread limit of each container.
        executable: the OpenFace tool in the image's bin folder (``FeatureExtraction`` for videos).
        build: the command line of one call (``flags.face_landmark_img`` or ``flags.sequence_command``).
    """

    name = "docker"
    in_mount = "/workbench/in"
    out_mount = "/workbench/out"

    def __init__(
        self,
        image: str = DEFAULT_IMAGE,
        extra: Sequence[str] = (),
        progress: bool = True,
        timeout_s: float = BATCH_TIMEOUT_S,
        mem_limit: str = MEMORY_LIMIT,
        pids_limit: int = PIDS_LIMIT,
        executable: str = EXECUTABLE,
        build: CommandBuilder = face_landmark_img,
    ):
        self.image = image
        self.executable = executable
        self.build = build
        self.extra = list(extra)
        self.progress = progress
        self.timeout_s = timeout_s
        self.mem_limit = mem_limit
        self.pids_limit = pids_limit
        self._client = None
        self._containers: set[Any] = set()
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def __getstate__(self) -> dict:
        """Picklable (a Dask task carries its backend to a worker): no locks, no running calls."""
        state = dict(self.__dict__)
        for name in ("_lock", "_cancelled", "_containers", "_client"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._containers = set()
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._client = None

    def check(self, folders: RunFolders | None = None) -> None:
        """Engine reachable, image present (pulled with a progress bar if not); stale containers removed.

        Args:
            folders: this run's folders (locked); with them, containers left by killed runs go.

        Raises:
            BackendError: engine unreachable, or image absent and not pullable (offline).
        """
        import docker
        from docker.errors import DockerException, ImageNotFound

        repository, tag = image_reference(self.image)
        try:
            self._client = docker.from_env()
            self._client.ping()
        except DockerException as exc:
            raise BackendError(
                f"the Docker engine is unreachable ({exc}). Start it (Linux: `sudo systemctl start docker`; "
                "macOS/Windows: open Docker Desktop), or run a local OpenFace with "
                "--backend native --openface-bin /path/to/FaceLandmarkImg"
            ) from None
        if folders is not None:
            self.remove_stale(folders)
        try:
            self._client.images.get(self.image)
        except ImageNotFound:
            self._pull(repository, tag)
        except DockerException as exc:
            raise BackendError(f"cannot inspect the image {self.image} ({exc})") from None

    def remove_stale(self, folders: RunFolders) -> int:
        """Remove this workbench's containers left by killed runs (see ``is_stale``); returns how many."""
        from docker.errors import DockerException, NotFound

        host, removed = socket.gethostname(), 0
        try:
            labelled = self._client.containers.list(all=True, filters={"label": LABEL_RUN})
        except DockerException as exc:
            raise BackendError(f"cannot list containers ({exc})") from None
        for container in labelled:
            if is_stale(container.labels, str(folders.root), host, _alive):
                try:
                    container.remove(force=True)
                    removed += 1
                except NotFound:
                    pass
        return removed

    def _pull(self, repository: str, tag: str) -> None:
        from docker.errors import DockerException
        from tqdm.auto import tqdm

        bars: dict[str, tqdm] = {}
        try:
            for event in self._client.api.pull(repository, tag=tag, stream=True, decode=True):
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
        """The OpenFace command line of one batch, inside the container."""
        return self.build(
            f"./{self.executable}", f"{self.in_mount}/{batch}", f"{self.out_mount}/{batch}", self.extra
        )

    def exec_command(self, batch: str) -> list[str]:
        """``command(batch)`` under coreutils' ``timeout`` (exit 124 at the limit, SIGKILL later)."""
        limit = f"{self.timeout_s:g}"
        return ["timeout", f"--kill-after={KILL_AFTER_S}", limit, *self.command(batch)]

    def container_options(
        self, folders: RunFolders, worker: int | str = 0, cpus: Collection[int] | None = None
    ) -> dict[str, Any]:
        """Keyword arguments of ``containers.run`` for one worker's container.

        Inputs read-only, outputs writable, the caller's uid:gid; no network, no
        capabilities, no privilege gain, memory (no swap beyond it) and pids limits; labels
        naming the run folder and the owning process; with ``cpus``, confined to those CPUs
        (``cpuset_cpus``; see ``runner.cpu_shares``).
        """
        options: dict[str, Any] = {
            "image": self.image,
            "entrypoint": ["sleep", "infinity"],
            "detach": True,
            "user": f"{os.getuid()}:{os.getgid()}",
            "working_dir": DOCKER_BIN_DIR,
            "volumes": {
                str(folders.batches): {"bind": self.in_mount, "mode": "ro"},
                str(folders.outputs): {"bind": self.out_mount, "mode": "rw"},
            },
            "network_disabled": True,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": self.mem_limit,
            "memswap_limit": self.mem_limit,
            "pids_limit": self.pids_limit,
            "labels": {LABEL_RUN: str(folders.root), LABEL_OWNER: owner_label(), LABEL_WORKER: str(worker)},
        }
        if cpus:
            options["cpuset_cpus"] = ",".join(str(cpu) for cpu in sorted(cpus))
        return options

    def cancel(self) -> None:
        """Remove every container of this backend (ending their OpenFace calls); no new ones start."""
        from docker.errors import DockerException

        self._cancelled.set()
        with self._lock:
            containers = list(self._containers)
        for container in containers:
            try:
                container.remove(force=True)
            except DockerException:
                pass  # already gone

    @contextmanager
    def session(
        self, worker: int | str, folders: RunFolders, cpus: Collection[int] | None = None
    ) -> Iterator[Process]:
        """One container for the worker's run; yields ``process(batch) -> exit code``.

        ``cpus``: the CPUs the container may use (``cpuset_cpus``); None: not confined.

        The container's own log is kept in ``logs/container-<worker>.log``; it is removed on
        success, error, Ctrl-C and SIGTERM.

        Raises:
            BackendError: the container cannot be started, an exec fails, or the backend was cancelled.
        """
        from docker.errors import DockerException

        if self._client is None:
            self.check()
        log = folders.log(worker)  # type: ignore[arg-type]
        with self._lock:
            if self._cancelled.is_set():
                raise BackendError("cancelled")
            try:
                container = self._client.containers.run(**self.container_options(folders, worker, cpus))
            except DockerException as exc:
                raise BackendError(f"cannot start a container of {self.image} ({exc})") from None
            self._containers.add(container)

        def process(batch: str) -> int:
            with log.open("a", encoding="utf-8") as out:
                out.write(f"$ {' '.join(self.exec_command(batch))}\n")
                try:
                    code, output = container.exec_run(self.exec_command(batch), workdir=DOCKER_BIN_DIR)
                except DockerException as exc:
                    out.write(f"docker exec failed: {exc}\n")
                    raise BackendError(f"docker exec failed ({exc})") from None
                out.write(output.decode("utf-8", errors="replace"))
                if code is None:
                    raise BackendError("docker exec returned no exit code")
                if code == TIMEOUT_EXIT:
                    out.write(f"stopped at the time limit of {self.timeout_s:g} s\n")
                out.write(f"exit code {code}\n")
            return int(code)

        try:
            yield process
        finally:
            with self._lock:
                self._containers.discard(container)
            try:
                (folders.logs / f"container-{worker}.log").write_bytes(container.logs())
            except DockerException:
                pass  # removed by cancel()
            try:
                container.remove(force=True)
            except DockerException:
                pass
