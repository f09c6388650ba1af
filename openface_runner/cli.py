"""Command line of the OpenFace stage: ``python -m openface_runner <command> --help``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from openface_runner.backends import DEFAULT_IMAGE, BackendError, make_backend
from openface_runner.flags import split_extra
from openface_runner.inputs import InputError


def _auto_float(text: str) -> float | None:
    return None if text == "auto" else float(text)


def _auto_int(text: str) -> int | None:
    return None if text == "auto" else int(text)


def main(argv: list[str] | None = None) -> int:
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
        sub.add_argument("--image", default=DEFAULT_IMAGE, help=f"Docker image (default: {DEFAULT_IMAGE})")
        sub.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel OpenFace processes")
        sub.add_argument(
            "--upscale", type=_auto_float, default=None, help="factor, or auto (default: ~200 px)"
        )
        sub.add_argument("--border", type=_auto_int, default=None, help="px, or auto (default: 25%% of side)")
        sub.add_argument(
            "--openface-args", default="", help='extra OpenFace arguments, e.g. "-mloc model/x.txt"'
        )
        sub.add_argument(
            "--batch-size", type=int, default=200, help="images per OpenFace call (default: 200)"
        )
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--out", required=True, help="AU table CSV to write")
    run.add_argument("--run-dir", default=None, help="work folder (default: <out>.run/)")
    args = parser.parse_args(argv)

    backend = make_backend(
        args.backend, args.openface_bin, args.image, split_extra(args.openface_args), progress=not args.quiet
    )
    try:
        if args.command == "run":
            return _run(args, backend)
        return _benchmark(args, backend)
    except (InputError, BackendError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


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
