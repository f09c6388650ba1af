"""Run OpenFace over a folder of face images and write the AU table and its failures file.

Flow: discover images -> stage (upscale) -> batches sharded over workers -> OpenFace ->
outputs moved to ``done/`` -> parse -> AU table (atomic) + ``<table>.failures.csv``.

Resumable: an image whose outputs are in ``done/`` is not processed again, so a run
killed half-way and restarted ends with the same table as an uninterrupted run. The
run folder (default ``<table>.run/``) keeps staged images, OpenFace's raw outputs and logs.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.au_table import write_au_table
from analysis.files import write_csv, write_json
from openface_runner.backends import DockerBackend, NativeBackend, RunFolders
from openface_runner.inputs import InputError, InputImage, StageError, discover, stage
from openface_runner.parse import OutputError, parse_face_csv

FAILURE_COLUMNS = ["image", "label", "reason"]
NO_FACE = "no face found"
NO_OUTPUT = "no output written by OpenFace"


@dataclass
class RunSummary:
    """Counts of one run; ``inputs == rows + failures`` always holds."""

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
    notes: list[str] = field(default_factory=list)

    @property
    def detection_rate(self) -> float:
        """Share of readable images in which OpenFace found a face."""
        readable = self.rows + self.reasons.get(NO_FACE, 0) + self.reasons.get(NO_OUTPUT, 0)
        return self.rows / readable if readable else 0.0


def failures_path(table: Path) -> Path:
    """The failures file beside a table: ``x.csv`` -> ``x.failures.csv``."""
    return table.with_name(table.name.removesuffix(".gz").removesuffix(".csv") + ".failures.csv")


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
) -> RunSummary:
    """OpenFace over every image below ``in_dir``; the AU table to ``out_csv``.

    Args:
        in_dir: images, one subfolder per emotion (``happy/``...) or flat.
        out_csv: the AU table to write (``image, label, face, face_count, confidence,
            success``, 17 ``AU*_r``, 18 ``AU*_c``); failures go to ``<name>.failures.csv``.
        backend: ``DockerBackend`` or ``NativeBackend``.
        workers: parallel OpenFace processes/containers (default: CPU count).
        upscale, border: staging (see ``openface_runner.inputs.stage``); None = automatic.
        batch_size: images per OpenFace call; a killed run redoes at most one batch per worker.
        run_dir: work folder (default ``<out_csv>.run/`` beside the table).
        progress: progress bars.

    Raises:
        InputError: missing or empty input folder, or a run folder made with other settings.
        BackendError: OpenFace cannot be started (engine unreachable, binary missing).
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    out_csv = Path(out_csv)
    images, skipped = discover(in_dir)
    folders = RunFolders(Path(run_dir) if run_dir else out_csv.with_name(out_csv.name + ".run"))
    staged_dir, done_dir = folders.root / "staged", folders.root / "done"
    done_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(folders.root, {"upscale": upscale, "border": border, "openface_args": backend.extra})
    failures: dict[str, tuple[InputImage | None, str]] = {rel: (None, reason) for rel, _, reason in skipped}
    labels = {rel: label for rel, label, _ in skipped}

    not_done = [i for i in images if not (done_dir / f"{i.key}_of_details.txt").exists()]
    if not_done:
        backend.check()  # fail before any work when OpenFace cannot run
    pending: list[InputImage] = []
    for image in tqdm(not_done, desc="staging", unit="img", disable=not progress):
        try:
            stage(image, staged_dir, upscale, border)
            pending.append(image)
        except StageError as exc:
            failures[image.relative] = (image, str(exc))

    workers = max(1, min(workers or os.cpu_count() or 1, len(pending) or 1))
    if pending:
        _process(pending, backend, folders, staged_dir, done_dir, workers, batch_size, progress)

    rows = []
    for image in images:
        if image.relative in failures:
            continue
        csv, details = done_dir / f"{image.key}.csv", done_dir / f"{image.key}_of_details.txt"
        if csv.exists():
            try:
                rows.append({"image": image.relative, "label": image.label, **parse_face_csv(csv)})
            except OutputError as exc:
                failures[image.relative] = (image, f"unusable OpenFace output: {exc}")
        else:
            failures[image.relative] = (image, NO_FACE if details.exists() else NO_OUTPUT)

    table = pd.DataFrame(rows)
    if not table.empty:
        write_au_table(table, out_csv)
    failure_rows = pd.DataFrame(
        [
            {"image": rel, "label": image.label if image else labels.get(rel, ""), "reason": reason}
            for rel, (image, reason) in sorted(failures.items())
        ],
        columns=FAILURE_COLUMNS,
    )
    write_csv(failures_path(out_csv), failure_rows)
    summary = RunSummary(
        inputs=len(images) + len(skipped),
        rows=len(table),
        failures=len(failure_rows),
        reasons=failure_rows["reason"].value_counts().to_dict(),
        processed_now=len(pending),
        seconds=time.perf_counter() - started,
        table=out_csv,
        failures_file=failures_path(out_csv),
        run_dir=folders.root,
        workers=workers,
    )
    if table.empty:
        summary.notes.append("OpenFace found no face in any image: no AU table was written")
    assert summary.inputs == summary.rows + summary.failures
    return summary


def _process(
    pending: list[InputImage],
    backend,
    folders: RunFolders,
    staged_dir: Path,
    done_dir: Path,
    workers: int,
    batch_size: int,
    progress: bool,
) -> None:
    """Shard ``pending`` over workers; each runs its batches in one backend session."""
    from tqdm.auto import tqdm

    shards = [pending[w::workers] for w in range(workers)]
    bar = tqdm(
        total=len(pending),
        desc=f"OpenFace ({backend.name}, {workers} workers)",
        unit="img",
        disable=not progress,
    )
    stop = threading.Event()
    lock = threading.Lock()

    def work(worker: int) -> None:
        shard = shards[worker]
        with backend.session(worker, folders) as process:
            for start in range(0, len(shard), batch_size):
                if stop.is_set():
                    return
                batch = shard[start : start + batch_size]
                name = f"w{worker}-b{start // batch_size}"
                in_dir, out_dir = folders.batches / name, folders.outputs / name
                for folder in (in_dir, out_dir):
                    shutil.rmtree(folder, ignore_errors=True)  # a killed run's partial batch
                    folder.mkdir(parents=True)
                for image in batch:
                    _link(staged_dir / f"{image.key}.png", in_dir / f"{image.key}.png")
                process(name)
                for image in batch:  # CSV before details: details marks the image done
                    for suffix in (".csv", "_of_details.txt"):
                        produced = out_dir / f"{image.key}{suffix}"
                        if produced.exists():
                            os.replace(produced, done_dir / produced.name)
                shutil.rmtree(in_dir, ignore_errors=True)
                shutil.rmtree(out_dir, ignore_errors=True)
                with lock:
                    bar.update(len(batch))

    pool = ThreadPoolExecutor(workers)
    try:
        for future in [pool.submit(work, w) for w in range(workers)]:
            future.result()
    except BaseException:
        stop.set()  # Ctrl-C or a worker's error: others finish their batch, sessions clean up
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()


def _check_settings(run_dir: Path, settings: dict) -> None:
    """Resuming reuses staged images and outputs, so only with the settings that made them.

    Raises:
        InputError: the run folder was made with other staging or OpenFace arguments.
    """
    path = run_dir / "settings.json"
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != settings:
            raise InputError(
                f"{run_dir} was made with {before}, not {settings}: its staged images and outputs do not "
                "apply; choose another OUT (or --run-dir) or delete that folder"
            )
    else:
        write_json(path, settings)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
