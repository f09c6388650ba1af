"""Command line of the OpenFace stage: ``python -m openface_runner <command> --help``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from openface_runner import arguments
from openface_runner.backends import BATCH_TIMEOUT_S, DEFAULT_IMAGE, make_backend
from openface_runner.errors import RunnerError
from openface_runner.flags import split_extra


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGINT) received: raised in the main thread so that OpenFace is stopped."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, _frame) -> None:
    raise Terminated(signum)


def build_parser() -> argparse.ArgumentParser:
    """The ``run`` and ``benchmark`` commands; argument types reject bad values before any work."""
    parser = argparse.ArgumentParser(prog="python -m openface_runner", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="OpenFace over an image folder -> AU table + failures file")
    bench = commands.add_parser("benchmark", help="images/s of the runner against one bare OpenFace call")
    for sub in (run, bench):
        sub.add_argument(
            "--in", dest="in_dir", required=True, help="image folder (subfolders per emotion, or flat)"
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
            type=arguments.positive_int,
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
            type=arguments.positive_int,
            default=200,
            help="images per OpenFace call (default: 200)",
        )
        sub.add_argument(
            "--batch-timeout",
            type=arguments.seconds,
            default=BATCH_TIMEOUT_S,
            help=f"time limit of one OpenFace call, s (default: {BATCH_TIMEOUT_S:g})",
        )
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--out", required=True, help="AU table CSV to write")
    run.add_argument("--run-dir", default=None, help="work folder (default: <out>.run/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done; 1 every OpenFace call failed or no table was written; 2 an error of
    the run (``error: ...``); 128 + n stopped by signal n (SIGINT, SIGTERM). A bug raises."""
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        backend = make_backend(
            args.backend,
            args.openface_bin,
            args.image,
            split_extra(args.openface_args),
            progress=not args.quiet,
            timeout_s=args.batch_timeout,
        )
        if args.command == "run":
            return _run(args, backend)
        return _benchmark(args, backend)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
        print(
            f"stopped by {signal.Signals(signum).name}: OpenFace was stopped; "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + signum
    finally:
        signal.signal(signal.SIGTERM, previous)


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
