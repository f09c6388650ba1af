"""Run OpenFace over a folder of face images and write the AU table and its failures file.

Flow: discover inputs -> batches sharded over workers; in each batch (``process_batch``):
stage (upscale) -> OpenFace -> outputs moved to ``done/`` -> parse and range-check; then the
client assembles the AU table (atomic) + ``<table>.failures.csv``. Every input ends as a table
row or a failure with its reason: a file that is not an image, cannot be read or decoded, a
batch whose OpenFace call failed (exit code, signal, time limit: every image of the batch, with
the worker's log), no face, an output out of the AU table's ranges.

Resumable: an image whose outputs are in ``done/`` is not processed again (its key holds
its content's hash, so a replaced image is), and a killed run restarted ends with the same
table as an uninterrupted run. Failed batches are retried by the next run. The run folder
(default ``<table>.run/``) keeps staged images, OpenFace's raw outputs and logs; it is
locked while a run uses it.

With ``scheduler`` the batches run as Dask tasks instead of local workers
(``openface_runner.cluster``); everything else, the run folder and the table included, is the same.

Staging and parsing happen inside the work unit (a worker thread's batch or a Dask task), not
serially on the client: at ~2 ms and ~3 ms an image, a client doing them for every image of a
300-image run kept a second worker from doing much (1 -> 2 Dask workers gave 1.35x).

One CPU per worker: one OpenFace process spreads itself over about 1.3 CPUs (the TBB threads
inside OpenFace; ``OMP_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` do not limit them), so
unconfined workers contend for the CPUs (bare OpenFace on 300 images: 41.5 img/s for one
process, 35.8 confined to one CPU, 64.6 for two processes each confined to its own CPU).
When there are no more workers than CPUs this process may use (``os.sched_getaffinity``),
worker ``i``'s OpenFace gets its own CPUs (``cpu_shares``): natively through the child's
CPU affinity, in Docker through the container's ``cpuset_cpus``. With more workers than
CPUs nothing is confined. On a remote Dask scheduler nothing is confined either: start one
``dask worker --nthreads 1`` per CPU there (under ``taskset`` to pin them).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.au_table import BOX_COLUMNS, write_au_table
from analysis.files import write_csv
from openface_runner.backends import DockerBackend, NativeBackend, RunFolders, exit_reason
from openface_runner.errors import BackendError, InputError, InvariantError, OutputError, StageError
from openface_runner.flags import AU_FLAGS
from openface_runner.folders import check_settings, link
from openface_runner.inputs import InputImage, discover
from openface_runner.parse import parse_face_csv
from openface_runner.staging import Geometry, geometry_path, stage

FAILURE_COLUMNS = ["image", "label", "reason"]
NO_FACE = "no face found"
NO_OUTPUT = "no output written by OpenFace"


@dataclass
class RunSummary:
    """Counts of one run; ``inputs == rows + failures`` always holds.

    ``batches`` and ``failed_batches`` count this run's OpenFace calls and those that failed
    (non-zero exit, signal, time limit, backend error).
    """

    inputs: int
    rows: int
    failures: int
    reasons: dict[str, int]
    processed_now: int
    seconds: float
    table: Path
    failures_file: Path
    run_dir: Path
    workers: int = 1
    batches: int = 0
    failed_batches: int = 0
    notes: list[str] = field(default_factory=list)
    openface_seconds: float = 0.0
    scheduler: str | None = None

    @property
    def detection_rate(self) -> float:
        """Share of images OpenFace processed in which it found a face."""
        readable = self.rows + self.reasons.get(NO_FACE, 0) + self.reasons.get(NO_OUTPUT, 0)
        return self.rows / readable if readable else 0.0

    @property
    def every_batch_failed(self) -> bool:
        """This run called OpenFace and every call failed."""
        return self.batches > 0 and self.failed_batches == self.batches


def failures_path(table: Path) -> Path:
    """The failures file beside a table: ``x.csv`` -> ``x.failures.csv``."""
    return table.with_name(table.name.removesuffix(".gz").removesuffix(".csv") + ".failures.csv")


def cpu_shares(workers: int) -> list[frozenset[int]] | None:
    """Disjoint CPU sets, one per worker: worker ``i`` gets CPUs ``[i*k, (i+1)*k)`` of those this
    process may use (``os.sched_getaffinity``), ``k = max(1, CPUs // workers)``; None (no
    confinement) when there are more workers than CPUs or the system cannot tell."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None
    if workers < 1 or workers > len(cpus):
        return None
    k = max(1, len(cpus) // workers)
    return [frozenset(cpus[i * k : (i + 1) * k]) for i in range(workers)]


def read_outcome(done_dir: Path, key: str) -> dict[str, float | int] | str:
    """What ``done/`` records of one image OpenFace processed: its face row (``parse_face_csv``,
    without ``image`` and ``label``) or its failure reason (``NO_FACE``, ``NO_OUTPUT``,
    ``unusable OpenFace output: ...``).

    Used by the work unit right after OpenFace (``process_batch``) and by the client for the
    images done by an earlier run: ``done/`` stays the single record of what is done.
    """
    csv, details = done_dir / f"{key}.csv", done_dir / f"{key}_of_details.txt"
    if not csv.exists():
        return NO_FACE if details.exists() else NO_OUTPUT
    try:
        geometry = Geometry.read(done_dir / f"{key}.geometry.json")
        face = parse_face_csv(csv, geometry)
    except OutputError as exc:
        return f"unusable OpenFace output: {exc.problem}"
    if geometry is None:  # no staging record: a box in staged pixels would mislead
        face = {k: v for k, v in face.items() if k not in BOX_COLUMNS}
    return face


def check_output_location(table: Path) -> None:
    """The table can be written where asked: not a folder, its folder creatable and writable.

    Raises:
        InputError: the path is a folder, a file is in the way of its folder, or the folder
            is not writable.
    """
    if table.is_dir():
        raise InputError(f"{table}: is a folder; --out names the AU table file to write (e.g. aus.csv)")
    folder = table.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{table}: cannot write in {folder} ({exc.strerror})") from None


def run_openface(
    in_dir: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    backend: NativeBackend | DockerBackend,
    workers: int | None = None,
    upscale: float | None = None,
    border: int | None = None,
    batch_size: int = 200,
    run_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    scheduler: str | None = None,
) -> RunSummary:
    """OpenFace over every image below ``in_dir``; the AU table to ``out_csv``.

    Args:
        in_dir: images, one subfolder per emotion (``happy/``...) or flat.
        out_csv: the AU table to write (``image, label, face, face_count, confidence,
            success``, the face box ``face_x, face_y, face_w, face_h`` in pixels of the
            original image, 17 ``AU*_r``, 18 ``AU*_c``); failures go to ``<name>.failures.csv``
            (``image, label, reason``).
        backend: ``DockerBackend`` or ``NativeBackend``.
        workers: parallel OpenFace processes/containers (>= 1; default: CPU count).
        upscale, border: staging (see ``openface_runner.staging.stage``); None = automatic.
        batch_size: images per OpenFace call (>= 1); a killed run redoes at most one batch per worker.
        run_dir: work folder (default ``<out_csv>.run/`` beside the table).
        progress: progress bars.
        scheduler: None (default): local worker threads, each running OpenFace processes;
            ``local:N`` (a Dask ``LocalCluster`` of N worker processes) or a Dask scheduler
            address (``tcp://host:8786``): each batch is a Dask task (``openface_runner.cluster``;
            ``workers`` is then ignored).

    Raises:
        InputError: missing or empty input folder, unusable output location, a run folder
            made with other settings or in use by another run.
        BackendError: OpenFace cannot be started (engine unreachable, binary missing), or
            the Dask scheduler does not answer.
        ValueError: ``workers`` or ``batch_size`` below 1.
    """
    if batch_size < 1 or (workers is not None and workers < 1):
        raise ValueError(f"batch_size and workers must be >= 1, got {batch_size} and {workers}")
    started = time.perf_counter()
    out_csv = Path(os.path.abspath(out_csv))
    check_output_location(out_csv)
    folders = RunFolders(Path(run_dir) if run_dir else out_csv.with_name(out_csv.name + ".run"))
    with folders.lock():
        return _run_locked(
            Path(in_dir),
            out_csv,
            backend,
            folders,
            workers,
            upscale,
            border,
            batch_size,
            progress,
            started,
            scheduler,
        )


def _run_locked(
    in_dir: Path,
    out_csv: Path,
    backend: NativeBackend | DockerBackend,
    folders: RunFolders,
    workers: int | None,
    upscale: float | None,
    border: int | None,
    batch_size: int,
    progress: bool,
    started: float,
    scheduler: str | None = None,
) -> RunSummary:
    own = (folders.root, out_csv, failures_path(out_csv))
    images, rejected = discover(in_dir, exclude=own)
    notes = [
        f"{path} lies inside the input folder and is not an input"
        for path in own
        if path.exists() and Path(os.path.realpath(path)).is_relative_to(os.path.realpath(in_dir))
    ]
    staged_dir, done_dir = folders.root / "staged", folders.root / "done"
    done_dir.mkdir(parents=True, exist_ok=True)
    check_settings(
        folders.root,
        {
            "upscale": upscale,
            "border": border,
            "openface_flags": list(AU_FLAGS),
            "openface_args": backend.extra,
        },
    )
    not_done = [i for i in images if not (done_dir / f"{i.key}_of_details.txt").exists()]
    if not_done and (scheduler is None or scheduler.startswith("local:")):
        backend.check(folders)  # fail before any work (on a remote cluster each worker checks its own)
    staged_dir.mkdir(parents=True, exist_ok=True)

    workers = max(1, min(workers or os.cpu_count() or 1, len(not_done) or 1))
    outcomes: dict[str, dict[str, float | int] | str] = {}  # image key -> face row or reason, this run
    processed = batches = failed_batches = 0
    openface_s = 0.0
    if not_done and scheduler is not None:
        from openface_runner.cluster import process_images

        outcomes, processed, batches, failed_batches, openface_s, workers = process_images(
            scheduler, not_done, backend, folders, staged_dir, done_dir, batch_size, progress, upscale, border
        )
    elif not_done:
        outcomes, processed, batches, failed_batches, openface_s = _process(
            not_done, backend, folders, staged_dir, done_dir, workers, batch_size, progress, upscale, border
        )

    failed: dict[str, str] = {}  # image.relative -> reason
    faces = []
    for image in images:  # processed now, or done by an earlier run: its outcome read from done/
        outcome = outcomes[image.key] if image.key in outcomes else read_outcome(done_dir, image.key)
        if isinstance(outcome, str):
            failed[image.relative] = outcome
        else:
            faces.append((image, outcome))
    rows = [{"image": image.relative, "label": image.label, **face} for image, face in faces]

    table = pd.DataFrame(rows)
    by_name = {image.relative: image for image in images}
    records = [
        {"image": relative, "label": by_name[relative].label, "reason": reason}
        for relative, reason in failed.items()
    ] + [{"image": r.relative, "label": r.label, "reason": r.reason} for r in rejected]
    failure_rows = pd.DataFrame(sorted(records, key=lambda r: r["image"]), columns=FAILURE_COLUMNS)
    inputs = len(images) + len(rejected)
    if inputs != len(table) + len(failure_rows):  # checked before anything is written
        raise InvariantError(
            f"{inputs} inputs but {len(table)} rows + {len(failure_rows)} failures: "
            "an input was lost or counted twice"
        )
    if not table.empty:
        write_au_table(table, out_csv)
    write_csv(failures_path(out_csv), failure_rows)
    summary = RunSummary(
        inputs=inputs,
        rows=len(table),
        failures=len(failure_rows),
        reasons=failure_rows["reason"].value_counts().to_dict(),
        processed_now=processed,
        seconds=time.perf_counter() - started,
        table=out_csv,
        failures_file=failures_path(out_csv),
        run_dir=folders.root,
        workers=workers,
        batches=batches,
        failed_batches=failed_batches,
        notes=notes,
        openface_seconds=openface_s,
        scheduler=scheduler,
    )
    if table.empty:
        summary.notes.append("no image gave a usable face: no AU table was written")
    return summary


def _process(
    pending: list[InputImage],
    backend: NativeBackend | DockerBackend,
    folders: RunFolders,
    staged_dir: Path,
    done_dir: Path,
    workers: int,
    batch_size: int,
    progress: bool,
    upscale: float | None = None,
    border: int | None = None,
) -> tuple[dict[str, dict[str, float | int] | str], int, int, int, float]:
    """Shard ``pending`` over workers; each runs its batches (``process_batch``: stage, OpenFace,
    parse) in one backend session, its OpenFace confined to its own CPUs (``cpu_shares``).

    A batch whose OpenFace call fails (non-zero exit, signal, time limit, backend error) is
    halved until the image(s) that made it fail are found (``run_batch``); each failed image
    gets the reason of its last failed call, and its outputs are not kept, so the next run
    retries it. On Ctrl-C or SIGTERM (KeyboardInterrupt here) the backend's running calls are
    stopped (``cancel()``), the sessions clean up, and the interrupt propagates.

    Returns:
        ``(face row or failure reason per image key, images staged, batches that called
        OpenFace, those none of whose OpenFace images succeeded, seconds in OpenFace calls
        summed over workers)``.
    """
    from tqdm.auto import tqdm

    shards = [pending[w::workers] for w in range(workers)]
    shares = cpu_shares(workers)
    bar = tqdm(
        total=len(pending),
        desc=f"OpenFace ({backend.name}, {workers} workers)",
        unit="img",
        disable=not progress,
    )
    stop = threading.Event()
    lock = threading.Lock()
    outcomes: dict[str, dict[str, float | int] | str] = {}
    counts = {"staged": 0, "batches": 0, "failed": 0, "seconds": 0.0}

    def work(worker: int) -> None:
        shard = shards[worker]
        with backend.session(worker, folders, cpus=shares[worker] if shares else None) as process:

            def timed(name: str) -> int:
                called = time.perf_counter()
                try:
                    return process(name)
                finally:
                    with lock:
                        counts["seconds"] += time.perf_counter() - called

            for start in range(0, len(shard), batch_size):
                if stop.is_set():
                    return
                batch = shard[start : start + batch_size]
                name = f"w{worker}-b{start // batch_size}"
                try:
                    result = process_batch(
                        backend,
                        timed,
                        folders,
                        worker,
                        staged_dir,
                        done_dir,
                        batch,
                        name,
                        upscale,
                        border,
                        stop,
                    )
                except Cancelled:
                    return
                with lock:
                    outcomes.update(result.outcomes)
                    counts["staged"] += result.staged
                    counts["batches"] += result.calls
                    counts["failed"] += result.failed_calls
                    bar.update(len(batch))

    pool = ThreadPoolExecutor(workers)
    try:
        for future in [pool.submit(work, w) for w in range(workers)]:
            future.result()
    except BaseException:
        stop.set()  # Ctrl-C, SIGTERM or a worker's error: stop OpenFace now, sessions clean up
        backend.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
    return outcomes, counts["staged"], counts["batches"], counts["failed"], counts["seconds"]


@dataclass
class BatchResult:
    """What one work unit (``process_batch``) did: each image's face row or failure reason
    (by key), how many images it staged, and whether it called OpenFace and that call failed
    for every image (``RunSummary.batches``, ``failed_batches``)."""

    outcomes: dict[str, dict[str, float | int] | str]
    staged: int
    calls: int
    failed_calls: int


def process_batch(
    backend: NativeBackend | DockerBackend,
    process: Callable[[str], int],
    folders: RunFolders,
    worker: int | str,
    staged_dir: Path,
    done_dir: Path,
    batch: list[InputImage],
    name: str,
    upscale: float | None = None,
    border: int | None = None,
    stop: threading.Event | None = None,
) -> BatchResult:
    """The work unit of the local runner's workers and of a Dask task (``cluster.image_task``):
    stage each image (``staging.stage``; a ``StageError`` is that image's failure), run OpenFace
    on those staged (``run_batch``), then read each succeeded image's outcome from ``done/``
    (``read_outcome``).

    Raises:
        Cancelled: ``stop`` was set during an OpenFace call.
    """
    outcomes: dict[str, dict[str, float | int] | str] = {}
    staged: list[InputImage] = []
    for image in batch:
        try:
            stage(image, staged_dir, upscale, border)
            staged.append(image)
        except StageError as exc:
            outcomes[image.key] = str(exc)
    if not staged:
        return BatchResult(outcomes, 0, 0, 0)
    calls = run_batch(backend, process, folders, worker, staged_dir, done_dir, staged, name, stop)
    failed = {image.key: why for image, why in calls}
    for image in staged:
        outcomes[image.key] = failed[image.key] if image.key in failed else read_outcome(done_dir, image.key)
    return BatchResult(outcomes, len(staged), 1, int(len(failed) == len(staged)))


class Cancelled(Exception):
    """The run was stopped during an OpenFace call: its outputs are not trusted."""


def run_batch(
    backend: NativeBackend | DockerBackend,
    process: Callable[[str], int],
    folders: RunFolders,
    worker: int | str,
    staged_dir: Path,
    done_dir: Path,
    batch: list[InputImage],
    name: str,
    stop: threading.Event | None = None,
) -> list[tuple[InputImage, str]]:
    """One batch of staged images through OpenFace (``process``); outputs moved to ``done/``.

    Used by the local runner's workers and by the Dask task (``openface_runner.cluster``).
    A failed call over several images is halved until the image(s) that made it fail are
    found: one image that crashes OpenFace then costs only itself (about 2 log2(n) extra
    calls). When both halves fail too, the failure is taken as not caused by an image (a bad
    argument, a missing model) and every image keeps its reason. A failed image's outputs are
    not kept, so the next run retries it.

    Returns:
        ``(image, reason)`` of each failed image (empty: the whole batch succeeded).

    Raises:
        Cancelled: ``stop`` was set during a call.
    """
    log = folders.log(worker)  # type: ignore[arg-type]

    def attempt(images: list[InputImage], call: str) -> str | None:
        """One OpenFace call over ``images``; the failure reason, None on success."""
        in_dir, out_dir = folders.batches / call, folders.outputs / call
        for folder in (in_dir, out_dir):
            shutil.rmtree(folder, ignore_errors=True)  # a killed run's partial batch
            folder.mkdir(parents=True)
        for image in images:
            link(staged_dir / f"{image.key}.png", in_dir / f"{image.key}.png")
        try:
            code = process(call)
            reason = exit_reason(code, backend.timeout_s, log) if code else None
        except BackendError as exc:
            reason = f"OpenFace could not run ({exc}); see {log}"
        if stop is not None and stop.is_set():
            raise Cancelled
        if reason is None:
            for image in images:  # geometry and CSV before details: details marks the image done
                geometry = geometry_path(staged_dir / f"{image.key}.png")
                if geometry.exists():
                    shutil.copyfile(geometry, done_dir / geometry.name)
                for suffix in (".csv", "_of_details.txt"):
                    produced = out_dir / f"{image.key}{suffix}"
                    if produced.exists():
                        os.replace(produced, done_dir / produced.name)
        shutil.rmtree(in_dir, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)
        return reason

    def narrow(images: list[InputImage], call: str, reason: str) -> list[tuple[InputImage, str]]:
        if len(images) == 1:
            return [(images[0], reason)]
        middle = len(images) // 2
        halves = [(images[:middle], f"{call}-0"), (images[middle:], f"{call}-1")]
        reasons = [attempt(half, half_name) for half, half_name in halves]
        if all(reasons):
            return [(image, r) for (half, _), r in zip(halves, reasons, strict=True) for image in half]
        return [
            failure
            for (half, half_name), r in zip(halves, reasons, strict=True)
            if r
            for failure in narrow(half, half_name, r)
        ]

    reason = attempt(batch, name)
    return narrow(batch, name, reason) if reason else []
