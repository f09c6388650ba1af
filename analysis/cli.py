"""Command line of the analysis stage: ``python -m analysis <command> --help``.

Arguments are checked by the parser (``analysis.arguments``) before any work. The project's
own errors (``analysis.arguments.PROJECT_ERRORS``) are printed as one line, ``error: ...``,
with exit status 2; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import arguments
from analysis.arguments import PROJECT_ERRORS, OneLineParser, print_error
from analysis.au_table import FEATURE_SETS, SEED_AU_TABLE
from analysis.labels import EMOTIONS
from analysis.quality import POLICIES


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``python -m analysis`` command."""
    parser = OneLineParser(prog="python -m analysis", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit-logit", help="fit the multinomial AU logit and write its report")
    _table_options(fit)
    _out_option(fit, "output folder")
    fit.add_argument(
        "--reference", default="neutral", choices=EMOTIONS, help="base emotion (default: neutral)"
    )
    fit.add_argument(
        "--seed", type=arguments.seed, default=0,
        help="seed of the CV folds and example choice, 0 to 2**32-1 (default: 0)",
    )  # fmt: skip
    fit.add_argument(
        "--folds", type=arguments.folds, default=5, help="cross-validation folds, at least 2 (default: 5)"
    )
    fit.add_argument(
        "--quality-policy",
        default="drop",
        choices=POLICIES,
        help="drop exact duplicates, conflicting and all-zero rows, or keep all (default: drop)",
    )
    fit.add_argument(
        "--keep-unsuccessful",
        action="store_true",
        help="keep rows whose OpenFace success is 0 (dropped by default)",
    )
    fit.add_argument(
        "--jobs", type=arguments.jobs, default=None,
        help="processes for LR refits and CV folds, -1 = all CPUs (default: auto)",
    )  # fmt: skip
    fit.add_argument(
        "--features",
        default="aus",
        choices=FEATURE_SETS,
        help="what the logit reads: the 17 AU_r, the six geometric concepts (mouth opening ..., "
        "in inter-ocular distances; tables from `make openface`), or both (default: aus)",
    )
    fit.add_argument("--quiet", action="store_true", help="no progress bars")

    report = commands.add_parser("report-logit", help="re-render reports/logit.html from the results files")
    _out_option(report, "folder holding logit/")

    explain = commands.add_parser(
        "explain", help="per-AU contributions of chosen rows to each emotion's log-odds"
    )
    _table_options(explain)
    explain.add_argument(
        "--model", type=arguments.input_file, default="reports/logit/model.json",
        help="model JSON from fit-logit",
    )  # fmt: skip
    explain.add_argument(
        "--rows", required=True, type=arguments.positive_list,
        help="data row numbers (1 = first data row), comma-separated",
    )  # fmt: skip

    bench = commands.add_parser("benchmark-logit", help="time and peak memory of the whole fit")
    bench.add_argument(
        "--input", type=arguments.input_file, default=SEED_AU_TABLE, help="seed-coded AU table to resample"
    )
    bench.add_argument(
        "--scales", type=arguments.positive_list, default=[1, 100],
        help="resampling factors, comma-separated (default: 1,100)",
    )  # fmt: skip
    bench.add_argument("--seed", type=arguments.seed, default=0)
    bench.add_argument("--jobs", type=arguments.jobs, default=None, help="processes (default: auto)")

    glass = commands.add_parser(
        "fit-glassbox",
        help="select a glass-box AU model on the seed AU and FER2013 AU tables, write its report",
    )
    _out_option(glass, "output folder")
    glass.add_argument("--folds", type=arguments.folds, default=5, help="CV folds, at least 2 (default: 5)")
    glass.add_argument(
        "--resamples", type=arguments.positive, default=200,
        help="bootstrap refits of the selected model (default: 200)",
    )  # fmt: skip
    glass.add_argument("--seed", type=arguments.seed, default=0)
    glass.add_argument("--fast", action="store_true", help="a short candidate list (quick check)")
    glass.add_argument("--jobs", type=arguments.jobs, default=-1, help="processes (default: -1, all CPUs)")
    glass_report = commands.add_parser("report-glassbox", help="re-render reports/glassbox.html")
    _out_option(glass_report, "folder holding glassbox/")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command; return the exit status (2: bad input, one line)."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except PROJECT_ERRORS as error:
        return print_error(error)


def _out_option(sub: argparse.ArgumentParser, what: str) -> None:
    sub.add_argument(
        "--out", type=arguments.output_folder, default="reports", help=f"{what} (default: reports)"
    )


def _table_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--input", type=arguments.input_file, default=None,
        help=f"AU table CSV (default: the bundled {SEED_AU_TABLE.name})",
    )  # fmt: skip
    sub.add_argument(
        "--label-column", default=None, help="column with the emotion (default: label, else emotion)"
    )
    sub.add_argument(
        "--label-coding",
        default=None,
        choices=("auto", "name", "seed", "fer2013"),
        help="how labels are written (default: seed for the bundled data, else auto = names)",
    )


def _table_args(args: argparse.Namespace) -> tuple[Path, str]:
    path = args.input or SEED_AU_TABLE
    coding = args.label_coding or ("seed" if args.input is None else "auto")
    return path, coding


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "fit-logit":
        from analysis.run_logit import run_fit_logit

        path, coding = _table_args(args)
        run = run_fit_logit(
            path,
            args.out,
            label_column=args.label_column,
            label_coding=coding,
            reference=args.reference,
            seed=args.seed,
            folds=args.folds,
            quality_policy=args.quality_policy,
            drop_unsuccessful=not args.keep_unsuccessful,
            n_jobs=args.jobs,
            progress=not args.quiet,
            features=args.features,
        )
        m = run.metrics
        print(
            f"rows fitted {m['n_rows']} | CV accuracy {m['cv_accuracy']:.3f} "
            f"| macro-F1 {m['cv_macro_f1']:.3f} "
            f"| majority {m['majority_accuracy']:.3f} | pseudo-R2 {m['pseudo_r2']:.3f} "
            f"| fit {m['fit_seconds']:.2f} s | total {m['total_seconds']:.1f} s"
        )
        for warning in m["warnings"]:
            print(f"warning: {warning}")
        print(f"wrote {run.results_dir}/ and {run.report}")
        return 0
    if args.command == "report-logit":
        from analysis.report import render_logit_report

        out = Path(args.out)
        print(f"wrote {render_logit_report(out / 'logit', out / 'logit.html')}")
        return 0
    if args.command == "explain":
        return _explain(args)
    if args.command in ("fit-glassbox", "report-glassbox"):
        from analysis.glassbox_report import render_glassbox_report

        out = Path(args.out)
        if args.command == "fit-glassbox":
            import time

            from analysis.run_glassbox import GlassboxSettings, run_glassbox

            start = time.perf_counter()
            settings = GlassboxSettings(out / "glassbox", folds=args.folds, n_resamples=args.resamples,
                                        seed=args.seed, fast=args.fast, n_jobs=args.jobs)  # fmt: skip
            run_glassbox(settings)
            print(f"fit-glassbox took {time.perf_counter() - start:.0f} s")
        print(f"wrote {render_glassbox_report(out / 'glassbox', out / 'glassbox.html')}")
        return 0
    if args.command == "benchmark-logit":
        from analysis.benchmark import benchmark

        benchmark(args.input, args.scales, seed=args.seed, n_jobs=args.jobs)
        return 0
    raise AssertionError(args.command)


def _explain(args: argparse.Namespace) -> int:
    import pandas as pd

    from analysis.au_table import AUTableError, read_au_table
    from analysis.logit import AULogitModel

    model = AULogitModel.from_json(args.model)
    path, coding = _table_args(args)
    table = read_au_table(path, label_column=args.label_column, label_coding=coding)
    numbers = args.rows
    bad = [n for n in numbers if n > len(table)]
    if bad:
        raise AUTableError(f"{path}: row(s) {', '.join(map(str, bad))} outside 1-{len(table)}")
    proba = model.predict_proba(table.iloc[[n - 1 for n in numbers]])
    with pd.option_context("display.width", 160, "display.precision", 3):
        for n in numbers:
            row = table.iloc[n - 1]
            print(
                f"\ndata row {n}: true {row['label']}, predicted {proba.loc[row.name].idxmax()} "
                f"(p = {proba.loc[row.name].max():.3f})"
            )
            parts = model.explain(row)
            parts.loc["log-odds"] = parts.sum()
            print(parts)
    return 0
