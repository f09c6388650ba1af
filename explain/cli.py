"""Command line of the explain stage: ``python -m explain <command> --help``.

``run``: ``--in`` images or videos (OpenFace runs through the runner) or ``--aus`` an AU table
extracted elsewhere (``--in`` beside it: where its images or video are, for face crops);
``report``: rebuild ``explain.html`` from ``reports/explain/``; ``benchmark``: time and peak
memory on a long sequence table. Arguments are checked by the parser before any work; the
project's errors are one line, ``error: ...``, exit status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from analysis import arguments
from analysis.arguments import PROJECT_ERRORS, OneLineParser, interruptible, print_error, signal_number
from explain.errors import ExplainError


def _window(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(
            f"{value:g} s: the smoothing window must be above 0 and at most 60 s"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``python -m explain`` command."""
    parser = OneLineParser(prog="python -m explain", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="explain images, videos or an AU table; write reports/explain.html")
    run.add_argument("--in", dest="source", type=Path, default=None,
                     help="image, image folder, video or folder of videos (OpenFace runs on it); "
                          "with --aus: where the table's images or video are, for face crops")  # fmt: skip
    run.add_argument("--aus", type=arguments.input_file, default=None, help="an AU table extracted elsewhere")
    run.add_argument("--model", type=arguments.input_file, default=None,
                     help="saved AU model .json (default: reports/glassbox/fer2013_model.json, "
                          "else reports/logit/model.json)")  # fmt: skip
    run.add_argument(
        "--out", type=arguments.output_folder, default="reports", help="reports folder (default: reports)"
    )
    run.add_argument("--no-cnn", action="store_true", help="AU model only (no TensorFlow needed)")
    run.add_argument("--estimate-missed", action="store_true",
                     help="images OpenFace found no face in: AUs from the AU estimator (a "
                          "mini-XCEPTION trained on OpenFace's AUs), explained like the others "
                          "(needs TensorFlow)")  # fmt: skip
    run.add_argument("--au-estimator", type=arguments.input_file, default=None,
                     help="AU estimator .keras for --estimate-missed "
                          "(default: cnn_baseline/models/au_estimator.keras)")  # fmt: skip
    run.add_argument("--cnn-model", type=arguments.input_file, default=None, help="mini-XCEPTION .keras")
    run.add_argument("--window", type=_window, default=0.5, help="smoothing window, s (default: 0.5)")
    run.add_argument(
        "--max-gallery", type=arguments.positive, default=24, help="peak frames shown (default: 24)"
    )
    run.add_argument("--backend", default="docker", choices=("docker", "native"), help="OpenFace backend")
    run.add_argument("--openface-bin", default=None, help="FaceLandmarkImg (native; or $OPENFACE_BIN)")
    run.add_argument("--openface-args", default="", help="extra OpenFace arguments")
    run.add_argument(
        "--multi", action="store_true", help="videos: follow several faces (FaceLandmarkVidMulti)"
    )
    run.add_argument("--workers", type=arguments.positive, default=None, help="parallel OpenFace processes")
    run.add_argument("--cache", type=Path, default=None, help="run folders (default: data/openface/explain)")
    report = commands.add_parser("report", help="rebuild explain.html and index.html from reports/explain/")
    report.add_argument("--out", type=arguments.output_folder, default="reports", help="reports folder")
    bench = commands.add_parser("benchmark", help="seconds and peak memory on a long sequence table")
    bench.add_argument("--rows", type=arguments.positive, default=108_000, help="frames (default: 108,000)")
    bench.add_argument("--model", type=arguments.input_file, default=None, help="saved AU model .json")
    bench.add_argument("--out", type=arguments.output_folder, default=None,
                       help="reports folder (default: a temporary one)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command; return the exit status (2: bad input, one line; 128 + n:
    stopped by signal n, SIGINT or SIGTERM, one line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with interruptible():
            if args.command == "run":
                return _run(args, parser)
            if args.command == "report":
                return _report(Path(args.out))
            from explain.benchmark import benchmark

            return benchmark(args.rows, args.model, args.out)
    except (*PROJECT_ERRORS, ExplainError) as error:
        return print_error(error)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: results are written as a unit, or not at all
        signum = signal_number(exc)
        print(
            f"interrupted by {signal.Signals(signum).name}: OpenFace was stopped and nothing was written; "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + signum


def _run(args, parser: argparse.ArgumentParser) -> int:
    from explain.estimate import HINT
    from explain.models import default_model_path
    from explain.openface import CACHE, OpenFaceSettings, extract
    from explain.run import ExplainSettings, partial_sentence, run_explain

    if args.source is None and args.aus is None:
        parser.error("give --in <images or video> or --aus <AU table>")
    out = Path(args.out)
    start = time.perf_counter()
    model = args.model or default_model_path(out)
    if args.estimate_missed:
        _check_estimate_missed(args, Path(model))
    if args.aus is not None:
        table, media, source = Path(args.aus), args.source, str(args.aus)
        if media is not None and not media.exists():
            raise ExplainError(
                f"{media}: no such file or folder (--in beside --aus: where the table's faces are)"
            )
    else:
        settings = OpenFaceSettings(
            args.backend, args.openface_bin, args.openface_args, args.multi, args.workers
        )
        table, media = extract(args.source, settings, args.cache or CACHE, args.estimate_missed)
        source = str(args.source)
    table, missed = _missed(args, table, media)
    metrics = run_explain(
        ExplainSettings(
            table=table,
            model=Path(model),
            out_dir=out / "explain",
            media=media,
            source=source,
            cnn=not args.no_cnn,
            cnn_model=args.cnn_model,
            window_s=args.window,
            max_gallery=args.max_gallery,
            **missed,
        )
    )
    if metrics["kind"] == "images":
        print(f"explained {metrics['n_faces']} face(s) with {metrics['model']['file']}")
        if metrics["n_estimated"]:
            print(
                f"  {metrics['n_estimated']} of them with AUs from the AU estimator ({metrics['estimator']})"
            )
        if metrics["openface_missed"] and not metrics["estimated_missed"]:
            print(f"OpenFace found no face in {metrics['openface_missed']} image(s): {HINT}")
    else:
        print(
            f"explained {metrics['n_frames']:,} frame(s) of {metrics['n_tracks']} tracked face(s) "
            f"({metrics['n_used']:,} with OpenFace success) with {metrics['model']['file']}"
        )
        for video in metrics["partial_videos"]:
            print(f"{partial_sentence(video)} (truncated or damaged; explained from the frames read)")
    if metrics["n_unexplained"]:
        print(f"{metrics['n_unexplained']} input(s) not explained (reasons in explain/unexplained.csv)")
    if not metrics["crops"]["available"]:
        print(metrics["crops"]["reason"])
    if not metrics["cnn"]["available"]:
        print(f"CNN not used: {metrics['cnn']['reason']}")
    _report(out)
    print(f"make explain took {time.perf_counter() - start:.1f} s")
    return 0


def _check_estimate_missed(args, model: Path) -> None:
    """``--estimate-missed`` fails before any work when it cannot be done (one line each)."""
    from explain.estimate import check_estimator_available
    from explain.models import load_au_model

    check_estimator_available(args.no_cnn)
    if args.aus is not None and args.source is None:
        raise ExplainError("--estimate-missed with --aus needs --in: the images the table was extracted from")
    if model.is_file():
        loaded = load_au_model(model)
        presences = [c for c in loaded.columns if not c.endswith("_r")]
        if presences:
            raise ExplainError(
                f"--estimate-missed: the AU model {model.name} reads AU presences "
                f"({', '.join(presences[:3])} ...) that the AU estimator does not give (it estimates "
                "the 17 intensities only): use a "
                "model on intensities only, e.g. MODEL=reports/logit/model.json (make fit-logit)"
            )


def _missed(args, table: Path, media: Path | None) -> tuple[Path, dict]:
    """The inputs the runner could not use (its failures file beside ``table``: images or
    videos) as ``unexplained`` (``input, label, reason``), the videos it read in part
    (``truncated``) and, with ``--estimate-missed``, the table with the estimator's rows for the
    images OpenFace found no face in."""
    import hashlib

    from explain.data import table_kind
    from explain.estimate import NO_FACE, TABLE_NAME, estimate_missed, estimator_label, read_missed
    from explain.openface import CACHE

    missed = read_missed(table)
    extra: dict = {"openface_missed": int(len(missed.no_face))}
    sequences = table.is_file() and table_kind(table) != "images"
    if not args.estimate_missed or sequences:
        if args.estimate_missed:
            print("--estimate-missed: not for videos (frames OpenFace misses stay masked); ignored")
        if sequences:
            failures, truncated = read_video_failures(table)
            return table, {**extra, "unexplained": failures, "truncated": truncated}
        unexplained = missed.failures.replace({"reason": {NO_FACE: "OpenFace found no face"}})
        return table, {**extra, "unexplained": unexplained}
    assert media is not None  # checked by _check_estimate_missed, or IN= ran OpenFace
    if args.aus is None:
        target = table.parent / TABLE_NAME
    else:
        digest = hashlib.sha256(str(table.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:10]
        target = (args.cache or CACHE) / "estimates" / f"{table.stem[:40]}-{digest}.csv"
    merged, unexplained = estimate_missed(table, media, missed, args.au_estimator, target)
    return merged, {
        **extra,
        "unexplained": unexplained,
        "estimated_missed": True,
        "estimator": estimator_label(args.au_estimator or _default_estimator()),
    }


def read_video_failures(table: Path):
    """The runner's video failures beside ``table``: ``(unexplained, truncated)``, the videos
    without rows (``input, label, reason``) and the names of those read in part (their rows are
    in the table, so they are explained; the page says how many frames were read)."""
    import pandas as pd

    from openface_runner.runner import failures_path
    from openface_runner.video import TRUNCATED

    path = failures_path(table)
    columns = ["input", "label", "reason"]
    if not path.is_file():
        return pd.DataFrame(columns=columns), set()
    failures = pd.read_csv(path, dtype=str, keep_default_na=False)
    partial = failures["reason"].str.startswith(TRUNCATED)
    unexplained = failures[~partial].rename(columns={"video": "input"}).assign(label="")
    return unexplained[columns].reset_index(drop=True), set(failures.loc[partial, "video"])


def _default_estimator() -> Path:
    from cnn_baseline.au_estimator import DEFAULT_AU_MODEL

    return DEFAULT_AU_MODEL


def _report(out: Path) -> int:
    from analysis.render import render_index
    from explain.report import render_explain_report

    print(f"wrote {render_explain_report(out / 'explain', out / 'explain.html')}")
    print(f"wrote {render_index(out)}")
    return 0
