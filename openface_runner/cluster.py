"""The runner on a Dask cluster: each image batch or each video is one Dask task.

``--scheduler local:N`` starts a ``distributed.LocalCluster`` of N worker processes (one
thread each) for the run; ``--scheduler tcp://host:8786`` uses a running scheduler and its
workers (started by hand, by ``dask-jobqueue`` on SLURM, on Kubernetes...).

Tasks carry paths, never pixels: a task stages its batch of images into the run folder, runs
OpenFace on the staged files, moves its outputs into the run folder's ``done/`` and parses
them, exactly as a local worker does (``runner.process_batch``), and returns each image's
face row or failure reason (a few hundred numbers an image). The client and every worker
therefore need the inputs and the run folder on a shared file system; a worker that cannot
see them returns a clear failure for the batch (recorded per input, the next run retries
it). The run folder's ``done/`` stays the single record of what is done: a client killed
mid-run resumes on the next call, with or without a cluster, and the table is assembled by
the client as in a local run (same rows, values and order).

On ``local:N`` with no more workers than CPUs, worker ``i``'s OpenFace is confined to its own
CPUs (``runner.cpu_shares``: OpenFace's own threads spread one process over ~1.3 CPUs, and
unconfined workers contend); the task looks its worker's share up by the worker's name
(LocalCluster names its workers 0..N-1, a restarted one keeps its name). On a remote scheduler
nothing is confined: start one ``dask worker --nthreads 1`` per CPU (``taskset -c`` to pin it).

A task whose worker dies is rescheduled by Dask on another worker (the scheduler's
``allowed-failures``); a task that raises is retried ``RETRIES`` times. Each attempt uses its
own batch folders, so an OpenFace process orphaned by a killed worker cannot mix its outputs
with the retry's.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from openface_runner.errors import BackendError
from openface_runner.folders import RUN_MARKER, RunFolders

LOCAL = re.compile(r"^local:(\d+)$")
CONNECT_TIMEOUT_S = 5
WORKER_WAIT_S = 30
RETRIES = 2
STARTED: dict[str, int] = {}  # scheduler address -> N of each local:N cluster this process runs now


def scheduler_arg(text: str) -> str:
    """``--scheduler``: ``local:N`` (N >= 1) or a scheduler address such as ``tcp://host:8786``."""
    match = LOCAL.match(text)
    if (match and int(match.group(1)) >= 1) or re.match(r"^[a-z][a-z0-9+]*://\S+$", text):
        return text
    raise argparse.ArgumentTypeError(
        f"expected local:N (N >= 1) or an address like tcp://host:8786, got {text!r}"
    )


def _handshake(address: str) -> None:
    """Open one Dask comm to ``address`` and finish its handshake within ``CONNECT_TIMEOUT_S``.

    ``Client(timeout=...)`` bounds the TCP connect but not the handshake that follows
    (``distributed.comm.core.connect`` awaits the peer's first message with no deadline), so a
    peer that accepts and stays silent (an HTTP server, the dashboard's port 8787) would hang
    the client for good, and one that answers other bytes fails deep in Dask's deserialiser
    (a ``MemoryError`` for a frame "length" read from text).

    Raises:
        TimeoutError: no handshake within ``CONNECT_TIMEOUT_S``.
        OSError: the connection is refused or the host unknown.
        BackendError: the peer answered, but not as a Dask server.
    """
    import asyncio

    from distributed.comm import connect as open_comm

    async def once() -> None:
        comm = await open_comm(address, timeout=CONNECT_TIMEOUT_S)
        await comm.close()

    try:
        asyncio.run(asyncio.wait_for(once(), CONNECT_TIMEOUT_S))
    except (OSError, TimeoutError, ValueError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever non-Dask bytes make Dask's reader raise
        raise BackendError(
            f"{address} answered, but not as a Dask scheduler ({type(exc).__name__} in the handshake); "
            "check the address and port (dask scheduler listens on 8786, its dashboard on 8787)"
        ) from None


@contextmanager
def connect(scheduler: str, progress: bool = True) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler`` (a ``LocalCluster`` for ``local:N``), closed after.

    Raises:
        BackendError: the scheduler does not answer (connect and handshake) within
            ``CONNECT_TIMEOUT_S``, the peer is not a Dask scheduler, or no worker joined it
            within ``WORKER_WAIT_S``.
    """
    import logging

    from distributed import Client, LocalCluster

    match = LOCAL.match(scheduler)
    cluster = None
    started: set[str] = set()
    try:
        if match:
            cluster = LocalCluster(
                n_workers=int(match.group(1)),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
            started = {cluster.scheduler_address, client.scheduler.address}
            STARTED.update(dict.fromkeys(started, int(match.group(1))))  # its workers: here, named 0..N-1
        else:
            _handshake(scheduler)
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: an unknown address scheme
        if cluster is not None:
            cluster.close()
        raise BackendError(
            f"Dask scheduler {scheduler} does not answer within {CONNECT_TIMEOUT_S} s "
            f"({type(exc).__name__}); start it (dask scheduler) and its workers (dask worker {scheduler}), "
            "or check the address"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (OSError, TimeoutError):
            raise BackendError(
                f"no Dask worker joined {scheduler} within {WORKER_WAIT_S} s; start some with "
                f"dask worker {client.scheduler.address}"
            ) from None
        if progress and "dashboard" in client.scheduler_info().get("services", {}):
            try:
                import bokeh  # noqa: F401 - the dashboard's pages need it on the scheduler

                hint = ""
            except ImportError:
                hint = " (its pages need bokeh where the scheduler runs)"
            print(f"Dask dashboard: {client.dashboard_link}{hint}", flush=True)
        yield client
    finally:
        client.close()
        if cluster is not None:
            for address in started:
                STARTED.pop(address, None)
            cluster.close()


def worker_slots(client: Any) -> int:
    """Tasks the cluster runs at once: the workers' threads."""
    return max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))


def cpu_plan(scheduler: str) -> dict[Any, frozenset[int]] | None:
    """The CPUs of each ``local:N`` worker by its name (0..N-1; ``runner.cpu_shares``), also for
    the address of a ``local:N`` cluster this process runs (``connect``; the benchmark passes
    that); None (nothing confined) for another scheduler or more workers than CPUs."""
    from openface_runner.runner import cpu_shares

    match = LOCAL.match(scheduler)
    workers = int(match.group(1)) if match else STARTED.get(scheduler)
    shares = cpu_shares(workers) if workers else None
    return dict(enumerate(shares)) if shares else None


def _my_cpus(plan: dict[Any, frozenset[int]] | None) -> frozenset[int] | None:
    """This worker's CPUs in ``plan`` (None: not confined, or not in a worker)."""
    if not plan:
        return None
    try:
        from distributed import get_worker

        return plan.get(get_worker().name)
    except ValueError:  # not in a worker (a direct call)
        return None


def _worker_name() -> str:
    """``dask-<host>-<port>`` of the worker running this task (its log's name)."""
    try:
        from distributed import get_worker

        address = get_worker().address
    except ValueError:  # not in a worker (a direct call)
        address = f"{socket.gethostname()}-{os.getpid()}"
    return "dask-" + re.sub(r"[^A-Za-z0-9.]+", "-", address.split("://")[-1]).strip("-")


def _unseen(paths: list[Path]) -> str | None:
    """The failure reason when this worker cannot see one of ``paths``; None when it sees them all."""
    for path in paths:
        if not path.exists():
            return (
                f"Dask worker {_worker_name()} on {socket.gethostname()} cannot see {path}: the run folder "
                "and the inputs must be on a file system shared by the client and every worker"
            )
    return None


def _on_this_worker(backend: Any) -> Any:
    """The backend as this worker runs it: a native binary that is not here (OpenFace installed
    at another path on this machine) is replaced by the tool of the same name beside this
    worker's ``$OPENFACE_BIN``; anything else as it came."""
    from openface_runner.native import BIN_ENV, NativeBackend

    here = os.environ.get(BIN_ENV, "")
    if not isinstance(backend, NativeBackend) or os.access(backend.binary or "-", os.X_OK) or not here:
        return backend
    backend = copy.copy(backend)
    name = Path(backend.binary).name if backend.binary else Path(here).name
    backend.binary = os.path.abspath(Path(here).with_name(name))
    return backend


def _ready(backend: Any, folders: RunFolders, paths: list[Path]) -> tuple[Any, str | None]:
    """The backend as this worker runs it, and why a task cannot run here (None: it can):
    a path the worker cannot see (no shared file system) or an OpenFace it cannot start."""
    reason = _unseen(paths)
    if reason is None:
        backend = _on_this_worker(backend)
        try:
            backend.check(folders)
        except BackendError as exc:
            reason = f"OpenFace cannot run on Dask worker {_worker_name()} ({exc})"
    return backend, reason


def image_task(
    backend: Any,
    folders: RunFolders,
    staged_dir: Path,
    done_dir: Path,
    batch: list,
    name: str,
    upscale: float | None = None,
    border: int | None = None,
    plan: dict[Any, frozenset[int]] | None = None,
) -> dict:
    """One batch of images staged, through OpenFace and parsed on a Dask worker
    (``runner.process_batch``), OpenFace confined to this worker's CPUs in ``plan``.

    Returns ``{"outcomes": {key: face row or reason}, "staged": images staged, "calls": OpenFace
    calls (0 or 1), "failed_calls": 0 or 1, "seconds": s}``; outputs are in ``done_dir``.
    """
    from openface_runner.runner import process_batch

    inputs = [i.path for i in batch]
    # one vanished input fails only itself (staging says why); none visible: no shared file system
    unseen = [] if any(path.exists() for path in inputs) else inputs[:1]
    backend, reason = _ready(backend, folders, [folders.root / RUN_MARKER, staged_dir, done_dir, *unseen])
    if reason:
        outcomes = {i.key: reason for i in batch}
        return {"outcomes": outcomes, "staged": len(batch), "calls": 1, "failed_calls": 1, "seconds": 0.0}
    worker = _worker_name()
    seconds = [0.0]
    with backend.session(worker, folders, cpus=_my_cpus(plan)) as process:

        def timed(call: str) -> int:
            called = time.perf_counter()
            try:
                return process(call)
            finally:
                seconds[0] += time.perf_counter() - called

        attempt = f"{name}-{uuid.uuid4().hex[:8]}"  # own folders: an orphaned call cannot mix in
        result = process_batch(
            backend, timed, folders, worker, staged_dir, done_dir, batch, attempt, upscale, border
        )
    return {
        "outcomes": result.outcomes,
        "staged": result.staged,
        "calls": result.calls,
        "failed_calls": result.failed_calls,
        "seconds": seconds[0],
    }


def sequence_task(
    backend: Any,
    folders: RunFolders,
    done_dir: Path,
    sequence: Any,
    plan: dict[Any, frozenset[int]] | None = None,
) -> dict:
    """One video or image sequence through OpenFace on a Dask worker (``video.run_sequence``),
    confined to this worker's CPUs in ``plan``.

    Returns ``{"outcomes": {key: reason} (empty on success), "calls": 1, "failed_calls": 0 or 1,
    "seconds": s}``; outputs and the ``.done`` mark are in ``done_dir``.
    """
    from openface_runner.video import run_sequence

    files = list(sequence.files) or [sequence.path]
    backend, reason = _ready(backend, folders, [folders.root / RUN_MARKER, done_dir, *files])
    if reason:
        return {"outcomes": {sequence.key: reason}, "calls": 1, "failed_calls": 1, "seconds": 0.0}
    worker = _worker_name()
    with backend.session(worker, folders, cpus=_my_cpus(plan)) as process:
        called = time.perf_counter()
        reason = run_sequence(backend, process, folders, worker, done_dir, sequence, uuid.uuid4().hex[:8])
        seconds = time.perf_counter() - called
    outcomes = {sequence.key: reason} if reason else {}
    return {"outcomes": outcomes, "calls": 1, "failed_calls": int(bool(reason)), "seconds": seconds}


def _run_tasks(
    client: Any,
    tasks: list[tuple[Callable[..., dict], tuple, list[str], int]],
    bar: Any,
) -> tuple[dict[str, Any], int, int, float, int]:
    """Submit ``(function, args, input keys, bar units)`` tasks; collect them as they finish.

    A task that fails for good (its worker died ``allowed-failures`` times, or it raised
    ``RETRIES`` + 1 times) fails each of its inputs with the reason; the next run retries them.
    On Ctrl-C or SIGTERM the tasks not yet finished are cancelled and the interrupt propagates.

    Returns:
        ``(outcome per input key, OpenFace calls, calls failed, seconds in OpenFace calls,
        inputs processed)``.
    """
    from distributed import as_completed

    futures = {}
    for function, args, keys, units in tasks:
        future = client.submit(function, *args, retries=RETRIES, pure=False)
        futures[future] = (keys, units)
    outcomes: dict[str, Any] = {}
    calls = failed_calls = processed = 0
    seconds = 0.0
    try:
        for future in as_completed(futures):
            keys, units = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - any task error becomes the inputs' failure
                reason = f"Dask task failed after retries ({type(exc).__name__}: {exc})"
                result = {
                    "outcomes": dict.fromkeys(keys, reason),
                    "calls": 1,
                    "failed_calls": 1,
                    "seconds": 0.0,
                }
            calls += result["calls"]
            failed_calls += result["failed_calls"]
            processed += result.get("staged", len(keys))
            outcomes.update(result["outcomes"])
            seconds += result["seconds"]
            bar.update(units)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        bar.close()
    return outcomes, calls, failed_calls, seconds, processed


def process_images(
    scheduler: str,
    pending: list,
    backend: Any,
    folders: RunFolders,
    staged_dir: Path,
    done_dir: Path,
    batch_size: int,
    progress: bool,
    upscale: float | None = None,
    border: int | None = None,
) -> tuple[dict[str, Any], int, int, int, float, int]:
    """``runner._process`` on a Dask cluster: each batch of images one task (stage, OpenFace, parse).

    Batches hold ``min(batch_size, ceil(images / worker threads))`` images, so that every
    worker gets work, as the local runner's shards do.

    Returns:
        ``(face row or failure reason per image key, images staged, tasks that called OpenFace,
        those none of whose OpenFace images succeeded, seconds in OpenFace calls summed over
        workers, worker threads)``.
    """
    from tqdm.auto import tqdm

    with connect(scheduler, progress) as client:
        slots = worker_slots(client)
        size = max(1, min(batch_size, -(-len(pending) // slots)))
        batches = [pending[start : start + size] for start in range(0, len(pending), size)]
        bar = tqdm(
            total=len(pending),
            desc=f"OpenFace ({backend.name}, Dask {scheduler})",
            unit="img",
            disable=not progress,
        )
        plan = cpu_plan(scheduler)
        tasks = [
            (
                image_task,
                (backend, folders, staged_dir, done_dir, batch, f"d{number}", upscale, border, plan),
                [i.key for i in batch],
                len(batch),
            )
            for number, batch in enumerate(batches)
        ]
        outcomes, calls, failed_calls, seconds, processed = _run_tasks(client, tasks, bar)
        return outcomes, processed, calls, failed_calls, seconds, slots


def process_sequences(
    scheduler: str,
    pending: list,
    backend: Any,
    tool: str,
    folders: RunFolders,
    done_dir: Path,
    progress: bool,
) -> tuple[dict[str, str], int, int, float, int]:
    """``video._process`` on a Dask cluster: each video or image sequence one task.

    Returns:
        as ``process_images``.
    """
    from tqdm.auto import tqdm

    with connect(scheduler, progress) as client:
        slots = worker_slots(client)
        bar = tqdm(
            total=sum(s.frames for s in pending),
            desc=f"OpenFace {tool} ({backend.name}, Dask {scheduler})",
            unit="frame",
            disable=not progress,
        )
        plan = cpu_plan(scheduler)
        tasks = [(sequence_task, (backend, folders, done_dir, s, plan), [s.key], s.frames) for s in pending]
        failures, calls, failed_calls, seconds, _ = _run_tasks(client, tasks, bar)
        return failures, calls, failed_calls, seconds, slots
