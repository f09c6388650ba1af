"""Command line of the OpenFace stage: ``python -m openface_runner <command> --help``."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from analysis.arguments import interruptible, positive, positive_number, signal_number
from analysis.results import ResultsError
from openface_runner import arguments
from openface_runner.backends import BATCH_TIMEOUT_S, DEFAULT_IMAGE, make_backend
from openface_runner.cluster import scheduler_arg
from openface_runner.errors import BackendError, InputError, RunnerError
from openface_runner.flags import split_extra


def build_parser() -> argparse.ArgumentParser:
    """The ``run`` and ``benchmark`` commands; argument types reject bad values before any work."""
    parser = argparse.ArgumentParser(prog="python -m openface_runner", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="OpenFace over an image folder -> AU table + failures file")
    bench = commands.add_parser("benchmark", help="images/s of the runner against one bare OpenFace call")
    for sub in (run, bench):
        sub.add_argument(
            "--in",
            dest="in_dir",
            required=True,
            help="image folder (subfolders per emotion, or flat), a video file, or a folder of videos "
            "and/or image sequences",
        )
        sub.add_argument(
            "--mode",
            default="auto",
            choices=("auto", "images", "sequences"),
            help="images: FaceLandmarkImg per image; sequences: FeatureExtraction per video or folder of "
            "frames; auto (default): sequences when IN is a video file or holds one",
        )
        sub.add_argument(
            "--multi",
            action="store_true",
            help="sequences: follow several faces (FaceLandmarkVidMulti) instead of one (FeatureExtraction)",
        )
        sub.add_argument("--backend", default="docker", choices=("docker", "native"), help="default: docker")
        sub.add_argument(
            "--openface-bin", default=None, help="FaceLandmarkImg path (native; or $OPENFACE_BIN)"
        )
        sub.add_argument(
            "--image",
            default=DEFAULT_IMAGE,
            help="Docker image: name:tag, registry:port/name:tag or name@sha256:<digest> "
            f"(default: {DEFAULT_IMAGE})",
        )
        sub.add_argument(
            "--workers",
            type=positive,
            default=os.cpu_count() or 1,
            help="parallel OpenFace processes (default: CPU count)",
        )
        sub.add_argument(
            "--upscale", type=arguments.upscale, default=None, help="factor >= 1, or auto (default: ~200 px)"
        )
        sub.add_argument(
            "--border", type=arguments.border, default=None, help="px, or auto (default: 25%% of side)"
        )
        sub.add_argument(
            "--openface-args", default="", help='extra OpenFace arguments, e.g. "-mloc model/x.txt"'
        )
        sub.add_argument(
            "--batch-size",
            type=positive,
            default=200,
            help="images per OpenFace call (default: 200)",
        )
        sub.add_argument(
            "--batch-timeout",
            type=positive_number,
            default=BATCH_TIMEOUT_S,
            help=f"time limit of one OpenFace call, s (default: {BATCH_TIMEOUT_S:g})",
        )
        sub.add_argument(
            "--scheduler",
            type=scheduler_arg,
            default=None,
            help="run each image batch / each video as a Dask task: local:N (a LocalCluster of N worker "
            "processes) or a scheduler address (tcp://host:8786); the run folder and inputs must be on a "
            "file system the workers share (default: local workers, --workers)",
        )
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--out", required=True, help="AU table CSV to write")
    run.add_argument("--run-dir", default=None, help="work folder (default: <out>.run/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done; 1 every OpenFace call failed or no table was written; 2 an error of
    the run (``error: ...``); 128 + n stopped by signal n (SIGINT, SIGTERM). A bug raises."""
    args = build_parser().parse_args(argv)
    try:
        with interruptible():
            return _dispatch(args)
    except (RunnerError, ResultsError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:  # the table or the run folder cannot be written: a full disk, say
        where = exc.filename or f"{getattr(args, 'out', 'the')} or its run folder"
        print(f"error: cannot write {where}: {exc.strerror or exc}; rerun to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = signal_number(exc)
        print(
            f"stopped by {signal.Signals(signum).name}: OpenFace was stopped; "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + signum


def _dispatch(args) -> int:
    from openface_runner.video import is_sequence_input

    backend = make_backend(
        args.backend,
        args.openface_bin,
        args.image,
        split_extra(args.openface_args),
        progress=not args.quiet,
        timeout_s=args.batch_timeout,
    )
    sequences = args.mode == "sequences" or (args.mode == "auto" and is_sequence_input(args.in_dir))
    if args.multi and not sequences:
        print("error: --multi applies to videos and image sequences (--mode sequences)", file=sys.stderr)
        return 2
    if args.command == "run":
        return _run_sequences(args, backend) if sequences else _run(args, backend)
    if args.scheduler:
        return _benchmark_cluster(args, backend, sequences)
    return _benchmark_sequences(args, backend) if sequences else _benchmark(args, backend)


def _run(args, backend) -> int:
    from openface_runner.runner import run_openface

    summary = run_openface(
        args.in_dir,
        args.out,
        backend,
        workers=args.workers,
        upscale=args.upscale,
        border=args.border,
        batch_size=args.batch_size,
        run_dir=args.run_dir,
        progress=not args.quiet,
        scheduler=args.scheduler,
    )
    print(
        f"{summary.inputs} inputs = {summary.rows} rows + {summary.failures} failures "
        f"| detection rate {summary.detection_rate:.1%} | processed now {summary.processed_now} "
        f"| {summary.seconds:.1f} s"
    )
    for reason, count in sorted(summary.reasons.items()):
        print(f"  {count:6d}  {reason}")
    for note in summary.notes:
        print(f"note: {note}")
    print(f"wrote {summary.table if summary.rows else '(no table)'} and {summary.failures_file}")
    if summary.every_batch_failed:
        print(
            f"error: every OpenFace call failed ({summary.failed_batches} of {summary.batches}); "
            f"see the reasons in {summary.failures_file} and the logs in {summary.run_dir / 'logs'}",
            file=sys.stderr,
        )
        return 1
    if not summary.rows:
        print(f"error: no AU table was written; see the reasons in {summary.failures_file}", file=sys.stderr)
        return 1
    return 0


def _benchmark(args, backend) -> int:
    """Runner (staging, sharding, parsing included) vs one bare OpenFace call on the staged images."""
    import tempfile

    from openface_runner.backends import RunFolders
    from openface_runner.runner import run_openface

    with tempfile.TemporaryDirectory(prefix="openface-bench-") as tmp:
        tmp = Path(tmp)
        summary = run_openface(
            args.in_dir,
            tmp / "table.csv",
            backend,
            workers=args.workers,
            upscale=args.upscale,
            border=args.border,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
        n = summary.inputs
        staged = sorted((summary.run_dir / "staged").glob("*.png"))
        folders = RunFolders(tmp / "bare")
        (folders.batches / "all").mkdir()
        (folders.outputs / "all").mkdir()
        for image in staged:
            os.link(image, folders.batches / "all" / image.name)
        with backend.session(0, folders) as process:
            start = time.perf_counter()
            process("all")
            bare = time.perf_counter() - start
    print(
        f"runner: {n} images in {summary.seconds:.1f} s = {n / summary.seconds:.1f} images/s "
        f"({summary.workers} workers, staging and parsing included)"
    )
    print(
        f"bare OpenFace, 1 process: {len(staged)} images in {bare:.1f} s = {len(staged) / bare:.1f} images/s"
    )
    print(f"runner time / bare time: {summary.seconds / bare:.2f}")
    return 0


def _run_sequences(args, backend) -> int:
    """``run`` over videos and image sequences (``openface_runner.video``)."""
    from openface_runner.video import run_sequences

    summary = run_sequences(
        args.in_dir,
        args.out,
        backend,
        multi=args.multi,
        workers=args.workers,
        run_dir=args.run_dir,
        progress=not args.quiet,
        scheduler=args.scheduler,
    )
    rate = f"{summary.frames_now / summary.seconds:.1f} frames/s" if summary.frames_now else "nothing new"
    print(
        f"{summary.inputs} inputs: {summary.with_rows} with rows ({summary.frames} frame rows), "
        f"{summary.failures} failures | processed now {summary.processed_now} ({rate}) "
        f"| {summary.seconds:.1f} s"
    )
    for reason, count in sorted(summary.reasons.items()):
        print(f"  {count:6d}  {reason}")
    for note in summary.notes:
        print(f"note: {note}")
    print(f"wrote {summary.table if summary.frames else '(no table)'} and {summary.failures_file}")
    if summary.every_call_failed:
        print(
            f"error: every OpenFace call failed ({summary.failed_calls} of {summary.calls}); "
            f"see the reasons in {summary.failures_file} and the logs in {summary.run_dir / 'logs'}",
            file=sys.stderr,
        )
        return 1
    if not summary.frames:
        print(f"error: no AU table was written; see the reasons in {summary.failures_file}", file=sys.stderr)
        return 1
    return 0


def _benchmark_sequences(args, backend) -> int:
    """frames/s of the runner against bare OpenFace calls (one per input, one after another).

    One untimed bare call on the shortest input first loads OpenFace's models into the page
    cache, so that neither side pays the cold start. The bare calls run on hard links of the
    same inputs through the same backend, without discovery, hashing, parsing or the table.
    """
    import tempfile

    from openface_runner.backends import RunFolders
    from openface_runner.folders import link
    from openface_runner.video import discover_sequences, parse_sequence_csv, run_sequences, sequence_backend

    tool_backend = sequence_backend(backend, args.multi, live_progress=False)  # OpenFace as is
    tool_backend.check()
    inputs, _ = discover_sequences(args.in_dir)
    if not inputs:
        raise InputError(f"{args.in_dir}: no video or image sequence to measure")
    with tempfile.TemporaryDirectory(prefix="openface-bench-") as tmp:
        tmp = Path(tmp)
        folders = RunFolders(tmp / "bare")

        def bare(sequence, name: str) -> float:
            (folders.batches / name).mkdir()
            (folders.outputs / name).mkdir()
            for source in sequence.files or (sequence.path,):
                link(source, folders.batches / name / (name if sequence.is_video else source.name))
            with tool_backend.session(0, folders) as process:
                start = time.perf_counter()
                process(name)
                return time.perf_counter() - start

        shortest = min(inputs, key=lambda s: s.frames)
        bare(shortest, "warmup-" + shortest.batch)
        shutil.rmtree(folders.outputs / ("warmup-" + shortest.batch))
        bare_s = sum(bare(sequence, sequence.batch) for sequence in inputs)
        bare_frames = sum(len(parse_sequence_csv(p)) for p in folders.outputs.glob("*/*.csv"))
        summary = run_sequences(
            args.in_dir,
            tmp / "table.csv",
            backend,
            multi=args.multi,
            workers=args.workers,
            progress=not args.quiet,
        )
    frames = summary.frames_now
    print(
        f"runner: {frames} frame rows in {summary.seconds:.1f} s = {frames / summary.seconds:.1f} frames/s "
        f"({summary.workers} workers; discovery, hashing, parsing and the table included)"
    )
    print(
        f"bare OpenFace, 1 process: {bare_frames} frame rows in {bare_s:.1f} s "
        f"= {bare_frames / bare_s:.1f} frames/s"
    )
    print(f"runner time / bare time: {summary.seconds / bare_s:.3f} (WORKERS=1 measures the overhead)")
    if summary.workers == 1:
        outside = summary.seconds - summary.openface_seconds
        print(
            f"runner time outside its OpenFace calls: {outside:.2f} s = {outside / summary.seconds:.1%} "
            "(discovery, hashing, linking, parsing, the table; insensitive to the machine's load)"
        )
    return 0


def _bare_rate(backend, staged: list[Path], root: Path, workers: int) -> float:
    """images/s of bare OpenFace on ``staged``: ``workers`` processes at once, each one call over
    its share of the images, confined to its share of the CPUs as the runner's workers are
    (``runner.cpu_shares``): the most any runner can get from OpenFace with that many workers."""
    from concurrent.futures import ThreadPoolExecutor

    from openface_runner.backends import RunFolders
    from openface_runner.runner import cpu_shares

    folders = RunFolders(root)
    shares = cpu_shares(workers) or [None] * workers
    for w in range(workers):
        for folder in (folders.batches / f"b{w}", folders.outputs / f"b{w}"):
            folder.mkdir(parents=True, exist_ok=True)
        for image in staged[w::workers]:
            os.link(image, folders.batches / f"b{w}" / image.name)

    def call(w: int) -> int:
        with backend.session(w, folders, cpus=shares[w]) as process:
            return process(f"b{w}")

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        codes = list(pool.map(call, range(workers)))
    seconds = time.perf_counter() - start
    if any(codes):
        raise BackendError(f"bare OpenFace exited with {codes}; see {folders.root / 'logs'}")
    return len(staged) / seconds


def _benchmark_cluster(args, backend, sequences: bool) -> int:
    """The runner on Dask (1 and N workers for ``local:N``) against the plain local runner at the
    same worker counts: same inputs, same backend, each run into a fresh run folder.

    A ``local:N`` cluster is started once per worker count before its run is timed (its start
    is printed, not counted) and its workers import the runner first, as the plain runner's
    process has. One untimed run over one input first loads OpenFace's models into the page
    cache. "Outside OpenFace" is the run's time minus its OpenFace calls' time per worker:
    the runner's own cost, much less sensitive to other load on the machine than the rates.
    Images only: bare OpenFace on the same staged images with 1 and N processes at once
    (``_bare_rate``), so the speed-up OpenFace itself allows on this machine is printed beside
    the runner's.
    """
    import importlib
    import tempfile

    from openface_runner.cluster import LOCAL, connect, worker_slots
    from openface_runner.inputs import discover
    from openface_runner.runner import run_openface
    from openface_runner.video import discover_sequences, run_sequences

    unit = "frames" if sequences else "images"

    def once(in_dir: Path, out: Path, workers: int, scheduler: str | None):
        if sequences:
            summary = run_sequences(
                in_dir, out, backend, multi=args.multi, workers=workers, progress=False, scheduler=scheduler
            )
            return summary, summary.frames_now
        summary = run_openface(
            in_dir,
            out,
            backend,
            workers=workers,
            upscale=args.upscale,
            border=args.border,
            batch_size=args.batch_size,
            progress=False,
            scheduler=scheduler,
        )
        return summary, summary.processed_now

    match = LOCAL.match(args.scheduler)
    counts = sorted({1, int(match.group(1))}) if match else [0]
    with tempfile.TemporaryDirectory(prefix="openface-bench-") as tmp:
        tmp = Path(tmp)
        inputs = discover_sequences(args.in_dir)[0] if sequences else discover(args.in_dir)[0]
        if not inputs:
            raise InputError(f"{args.in_dir}: nothing to measure")
        warm = tmp / "warm"
        warm.mkdir()
        first = min(inputs, key=lambda s: s.frames) if sequences else inputs[0]
        (shutil.copytree if first.path.is_dir() else shutil.copy2)(first.path, warm / first.path.name)
        once(warm, tmp / "warm.csv", 1, None)
        results, staged = [], []
        for n in counts:
            started = time.perf_counter()
            with connect(f"local:{n}" if match else args.scheduler, progress=not args.quiet) as client:
                client.run(importlib.import_module, "openface_runner.runner")
                client.run(importlib.import_module, "openface_runner.video")
                client.run(importlib.import_module, "cv2")  # staging's (imported on first use)
                slots = worker_slots(client)
                start_s = time.perf_counter() - started
                address = client.scheduler.address
                for label, scheduler in (("local runner", None), ("Dask", address)):
                    summary, done = once(Path(args.in_dir), tmp / f"{label[0]}{slots}.csv", slots, scheduler)
                    staged = sorted((summary.run_dir / "staged").glob("*.png")) or staged
                    outside = summary.seconds - summary.openface_seconds / slots
                    results.append((label, slots, summary.seconds, done))
                    print(
                        f"{label:>12}, {slots} workers: {done} {unit} in {summary.seconds:.1f} s = "
                        f"{done / summary.seconds:.1f} {unit}/s | outside OpenFace calls: {outside:.2f} s "
                        f"= {outside / summary.seconds:.1%}"
                        + (f" (cluster start {start_s:.1f} s not counted)" if scheduler else ""),
                        flush=True,
                    )
        bare = {n: _bare_rate(backend, staged, tmp / f"bare{n}", n) for n in counts} if staged else {}
    rate = {(label, n): done / s for label, n, s, done in results}
    for n, images_per_s in bare.items():
        print(f"bare OpenFace, {n} process(es) at once, one call each: {images_per_s:.1f} images/s")
    if len(counts) == 2:
        n = counts[1]
        print(f"Dask speed-up from 1 to {n} workers: {rate[('Dask', n)] / rate[('Dask', 1)]:.2f}x", end="")
        print(f" (bare OpenFace's own from 1 to {n}: {bare[n] / bare[1]:.2f}x)" if bare else "")
    for label, n, _, _ in results:
        if label == "Dask":
            print(
                f"Dask overhead against the local runner at {n} workers: "
                f"{rate[('local runner', n)] / rate[('Dask', n)] - 1:+.1%} (time)"
            )
    return 0
