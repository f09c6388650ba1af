"""Command line of the live mode: ``python -m live <command> --help``.

``serve``: the web app (``make serve``); ``benchmark``: frames/s and latency over the WebSocket on
OpenFace's sample videos (``make benchmark-serve``); ``load-test``: several clients for a bounded
time, memory and replies checked (``make load-test-serve``). Errors are one line, exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import arguments
from analysis.arguments import PROJECT_ERRORS, OneLineParser, print_error


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535; 0: a free one)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m live", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="the live web app (camera, upload, JSON API)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    for command in (serve,):
        _models(command)
    serve.add_argument(
        "--openface-bin", default=None, help="FaceLandmarkImg for photos (default: $OPENFACE_BIN, else none)"
    )
    serve.add_argument(
        "--openface-args", default="", help="extra arguments of OpenFace's call for photos (as make explain)"
    )
    serve.add_argument(
        "--no-openface", action="store_true", help="uploads use the AU estimator even with OpenFace"
    )
    bench = commands.add_parser("benchmark", help="frames/s and latency over the WebSocket, 1 and 3 faces")
    _models(bench)
    bench.add_argument("--seconds", type=arguments.positive_number, default=10.0,
                       help="seconds per video (default 10)")  # fmt: skip
    load = commands.add_parser("load-test", help="clients sending frames for a bounded time; memory, replies")
    _models(load)
    load.add_argument("--clients", type=arguments.positive, default=8, help="clients (default 8)")
    load.add_argument("--seconds", type=arguments.positive_number, default=60.0, help="seconds (default 60)")
    return parser


def _models(command) -> None:
    command.add_argument(
        "--model", type=arguments.input_file, default=None, help="saved AU model .json (default: explain's)"
    )
    command.add_argument("--out", type=arguments.output_folder, default="reports",
                         help="reports folder (recordings go to <out>/live/; default: reports)")  # fmt: skip
    command.add_argument("--detector", choices=("yunet", "haar"), default="yunet", help="face detector")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command; return the exit status (2: bad input, one line)."""
    from explain.errors import ExplainError
    from live.detector import DetectorError
    from live.engine import LiveError

    args = build_parser().parse_args(argv)
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return print_error(
            ImportError("the live mode needs FastAPI and uvicorn: pip install -e '.[cnn,live]'")
        )
    try:
        from live.engine import LiveEngine
        from live.server import default_model

        out = Path(args.out)
        model = Path(args.model) if args.model else default_model(out)
        engine = LiveEngine(model, detector=args.detector)
        if args.command == "serve":
            from live.app import AppSettings
            from live.server import serve

            settings = AppSettings(
                out=out, openface_bin=args.openface_bin, openface_args=args.openface_args,
                upload_openface=not args.no_openface,
            )  # fmt: skip
            serve(engine, args.host, args.port, settings)
            return 0
        if args.command == "benchmark":
            from live.benchmark import benchmark

            return benchmark(engine, args.seconds)
        from live.loadtest import load_test

        return load_test(model, out, args.detector, args.clients, args.seconds)
    except (*PROJECT_ERRORS, ExplainError, LiveError, DetectorError) as error:
        return print_error(error)
