"""Bad inputs through the real command lines: real files in tmp_path, one clear line, exit 2.

Every case is a real file made from the shipped data (the FER2013 OpenFace sample) with one
defect, or a bad argument; each must end with exit status 2 and a one-line ``error: ...``
naming what is wrong, before anything is written to ``--out``. A bug (any other exception)
must show its traceback instead.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main as analysis_main
from cnn_baseline.cli import main as cnn_main
from compare.cli import main as compare_main
from tests.conftest import OPENFACE_SAMPLE

ROOT = Path(__file__).resolve().parent.parent
PIXELS = ROOT / "data" / "fer2013" / "fer2013_privatetest.csv.gz"  # a real binary (gzip) file
R_COLUMNS = [c for c in pd.read_csv(OPENFACE_SAMPLE, nrows=0).columns if c.endswith("_r")]


def _sample() -> pd.DataFrame:
    return pd.read_csv(OPENFACE_SAMPLE, dtype=str, keep_default_na=False)


def _csv(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "table.csv"
        edit(_sample()).to_csv(path, index=False)
        return path

    return make


def _text(edit: Callable[[str], str], name: str = "table.csv") -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_text(edit(OPENFACE_SAMPLE.read_text()))
        return path

    return make


def _gz(edit: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "table.csv.gz"
        path.write_bytes(edit(gzip.compress(OPENFACE_SAMPLE.read_bytes(), mtime=0)))
        return path

    return make


def _set(column: str, row: int, value: str):
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[row, column] = value
        return table

    return edit


def _folder(folder: Path) -> Path:
    (folder / "table.csv").mkdir()
    return folder / "table.csv"


def _copy(source: Path, name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        return Path(shutil.copy(source, folder / name))

    return make


def _cut_line(text: str) -> str:
    """The file as a copy cut off in the middle of its fifth data line."""
    lines = text.splitlines(keepends=True)
    return "".join(lines[:5]) + ",".join(lines[5].split(",")[:12])


def _strip_duplicate(text: str) -> str:
    """A second ``AU01_r`` column whose header has OpenFace's leading space."""
    lines = text.splitlines()
    return "\n".join([lines[0] + ", AU01_r"] + [line + "," + line.split(",")[5] for line in lines[1:]]) + "\n"


# (id, input maker, extra arguments, the message's telling part)
TABLE_CASES = [
    ("missing-column", _csv(lambda t: t.drop(columns="AU12_r")), [], "missing AU column(s) AU12_r"),
    (
        "non-numeric",
        _csv(_set("AU04_r", 6, "strong")),
        [],
        "column AU04_r, data row 7 (line 8): 'strong' is not a number",
    ),
    (
        "empty-cell",
        _csv(_set("confidence", 2, " ")),
        [],
        "column confidence, data row 3 (line 4): empty cell",
    ),
    (
        "out-of-range",
        _csv(_set("AU12_r", 0, "7")),
        [],
        "column AU12_r, data row 1 (line 2): 7 is outside 0-5",
    ),
    (
        "confidence-1.7",
        _csv(_set("confidence", 9, "1.7")),
        [],
        "column confidence, data row 10 (line 11): 1.7 is outside 0-1",
    ),
    ("unknown-label", _csv(_set("emotion", 3, "contempt")), [], "unknown label 'contempt'"),
    ("empty-file", _text(lambda t: ""), [], "the file is empty"),
    ("header-only", _text(lambda t: t.splitlines(keepends=True)[0]), [], "header but no data rows"),
    (
        "truncated-csv",
        _text(_cut_line),
        [],
        "data row 5 (line 6): no value; the line has 12 of the header's 40 fields (a truncated file?)",
    ),
    (
        "trailing-comma",
        _text(lambda t: t.replace("\n", ",\n").replace(",\n", "\n", 1)),
        [],
        "more fields than the header",
    ),
    (
        "duplicate-columns",
        _csv(lambda t: t.rename(columns={"AU45_c": "AU12_r"})),
        [],
        "columns 14 ('AU12_r') and 40 ('AU12_r') are both named 'AU12_r'",
    ),
    (
        "duplicate-after-strip",
        _text(_strip_duplicate),
        [],
        "columns 6 ('AU01_r') and 41 (' AU01_r') are both named 'AU01_r'",
    ),
    ("corrupt-gz", _gz(lambda b: b[:2000] + bytes(200) + b[2200:]), [], "corrupt or truncated gzip file"),
    (
        "truncated-gz",
        _gz(lambda b: b[: len(b) // 2]),
        [],
        "corrupt or truncated gzip file (Compressed file ended",
    ),
    (
        "not-gzip",
        _text(lambda t: t, name="table.csv.gz"),
        [],
        "corrupt or truncated gzip file (Not a gzipped file",
    ),
    ("binary-file", _copy(PIXELS, "pixels.csv"), [], "not a readable CSV file"),
    (
        "all-unsuccessful",
        _csv(lambda t: t.assign(success="0")),
        [],
        "every one of the 346 six-class rows has success = 0",
    ),
    (
        "quality-removes-all",
        _csv(lambda t: t.assign(**{c: "0" for c in R_COLUMNS})),
        [],
        "the quality policy 'drop' removed all 346 rows (346 all-zero",
    ),
    (
        "folds-over-class-size",
        _copy(OPENFACE_SAMPLE, "sample.csv"),
        ["--folds", "50"],
        "needs at least 50 rows per emotion; disgust has 46",
    ),
    ("folder-as-input", _folder, [], "is a folder, not a file"),
    ("missing-input", lambda folder: folder / "absent.csv", [], "absent.csv: no such file"),
]

ARGUMENT_CASES = [
    ("folds-1", ["--folds", "1"], "argument --folds: 1 folds: cross-validation needs at least 2"),
    ("folds-0", ["--folds", "0"], "argument --folds: 0 folds"),
    ("folds-negative", ["--folds", "-2"], "argument --folds: -2 folds"),
    ("folds-text", ["--folds", "five"], "argument --folds: 'five' is not a whole number"),
    ("seed-negative", ["--seed", "-1"], "argument --seed: -1 is not a seed"),
    ("seed-fraction", ["--seed", "1.5"], "argument --seed: '1.5' is not a whole number"),
    ("seed-too-large", ["--seed", str(2**32)], "argument --seed: 4294967296 is not a seed"),
    ("jobs-0", ["--jobs", "0"], "argument --jobs: 0 processes"),
    ("bad-policy", ["--quality-policy", "fix"], "argument --quality-policy: invalid choice: 'fix'"),
]


def _run(main, argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def _assert_one_line(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("make", "extra", "message"), [c[1:] for c in TABLE_CASES], ids=[c[0] for c in TABLE_CASES]
)
def test_fit_logit_rejects_a_bad_table_in_one_line(tmp_path, capsys, make, extra, message):
    path = make(tmp_path)
    out = tmp_path / "out"
    argv = ["fit-logit", "--input", str(path), "--out", str(out), "--quiet", *extra]
    try:
        code, err = _run(analysis_main, argv, capsys)
    except SystemExit as exit_:  # the parser's checks
        code, err = exit_.code, capsys.readouterr().err
    _assert_one_line(code, err, message)
    assert not (out / "logit").exists()  # nothing written: the failure came before the fit


@pytest.mark.parametrize(
    ("extra", "message"), [c[1:] for c in ARGUMENT_CASES], ids=[c[0] for c in ARGUMENT_CASES]
)
def test_fit_logit_arguments_are_checked_by_the_parser(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_:
        analysis_main(["fit-logit", "--input", str(OPENFACE_SAMPLE), "--out", str(tmp_path), *extra])
    _assert_one_line(exit_.value.code, capsys.readouterr().err, message)
    assert list(tmp_path.iterdir()) == []


def _out_file(tmp_path: Path) -> Path:
    (tmp_path / "reports.txt").write_text("not a folder")
    return tmp_path / "reports.txt"


OTHER_COMMANDS = [
    (
        "out-is-a-file",
        analysis_main,
        lambda t: ["fit-logit", "--out", str(_out_file(t))],
        "reports.txt is a file, not a folder",
    ),
    (
        "out-below-a-file",
        analysis_main,
        lambda t: ["fit-logit", "--out", str(_out_file(t) / "sub")],
        "reports.txt is a file, not a folder",
    ),
    (
        "glassbox-resamples-0",
        analysis_main,
        lambda t: ["fit-glassbox", "--out", str(t), "--resamples", "0"],
        "argument --resamples: 0 is not a positive whole number",
    ),
    (
        "glassbox-folds-1",
        analysis_main,
        lambda t: ["fit-glassbox", "--out", str(t), "--folds", "1"],
        "argument --folds",
    ),
    (
        "glassbox-out-file",
        analysis_main,
        lambda t: ["fit-glassbox", "--out", str(_out_file(t))],
        "is a file, not a folder",
    ),
    (
        "explain-rows-0",
        analysis_main,
        lambda t: ["explain", "--model", str(OPENFACE_SAMPLE), "--rows", "1,0"],
        "argument --rows: 0 is not a positive",
    ),
    (
        "explain-rows-text",
        analysis_main,
        lambda t: ["explain", "--model", str(OPENFACE_SAMPLE), "--rows", "a"],
        "argument --rows: 'a' is not a whole number",
    ),
    (
        "explain-model-folder",
        analysis_main,
        lambda t: ["explain", "--model", str(t), "--rows", "1"],
        "is a folder, not a file",
    ),
    (
        "benchmark-scales-0",
        analysis_main,
        lambda t: ["benchmark-logit", "--scales", "1,0"],
        "argument --scales",
    ),
    (
        "compare-resamples-0",
        compare_main,
        lambda t: ["run", "--out", str(t), "--resamples", "0"],
        "argument --resamples",
    ),
    (
        "compare-seed-negative",
        compare_main,
        lambda t: ["run", "--out", str(t), "--seed", "-3"],
        "argument --seed: -3 is not a seed",
    ),
    (
        "compare-out-file",
        compare_main,
        lambda t: ["run", "--out", str(_out_file(t))],
        "is a file, not a folder",
    ),
    (
        "compare-au-table-missing",
        compare_main,
        lambda t: ["run", "--out", str(t), "--au-table", str(t / "aus.csv")],
        "aus.csv: no such file",
    ),
    (
        "compare-model-folder",
        compare_main,
        lambda t: ["run", "--out", str(t), "--model", str(t)],
        "is a folder, not a file",
    ),
    ("cnn-epochs-0", cnn_main, lambda t: ["train", "--epochs", "0"], "argument --epochs: 0 is not"),
    ("cnn-batch-negative", cnn_main, lambda t: ["train", "--batch-size", "-1"], "argument --batch-size"),
    ("cnn-rate-nan", cnn_main, lambda t: ["train", "--learning-rate", "nan"], "nan is not a finite number"),
    ("cnn-seed-negative", cnn_main, lambda t: ["train", "--seed", "-3"], "argument --seed: -3 is not a seed"),
    ("cnn-smoothing-1", cnn_main, lambda t: ["train", "--label-smoothing", "1"], "not a number from 0 up to"),
    ("cnn-bench-batch-0", cnn_main, lambda t: ["benchmark", "--batch-size", "0"], "argument --batch-size"),
]


@pytest.mark.parametrize(
    ("main", "argv", "message"), [c[1:] for c in OTHER_COMMANDS], ids=[c[0] for c in OTHER_COMMANDS]
)
def test_other_commands_check_their_arguments(tmp_path, capsys, main, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv(tmp_path))
    _assert_one_line(exit_.value.code, capsys.readouterr().err, message)


def test_explain_row_beyond_the_table(seed_run, capsys):
    code, err = _run(
        analysis_main,
        ["explain", "--model", str(seed_run.results_dir / "model.json"), "--rows", "1,99999"],
        capsys,
    )
    _assert_one_line(code, err, "row(s) 99999 outside 1-4473")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes everything")
def test_unreadable_input_and_unwritable_out(tmp_path, capsys):
    locked = Path(shutil.copy(OPENFACE_SAMPLE, tmp_path / "locked.csv"))
    locked.chmod(0)
    with pytest.raises(SystemExit) as exit_:
        analysis_main(["fit-logit", "--input", str(locked), "--out", str(tmp_path / "out")])
    _assert_one_line(exit_.value.code, capsys.readouterr().err, "no permission to read it")
    readonly = tmp_path / "readonly"
    readonly.mkdir(mode=0o555)
    with pytest.raises(SystemExit) as exit_:
        analysis_main(["fit-logit", "--input", str(OPENFACE_SAMPLE), "--out", str(readonly / "reports")])
    _assert_one_line(exit_.value.code, capsys.readouterr().err, "no permission to write in")


def test_a_bug_shows_its_traceback(tmp_path, monkeypatch):
    """Only the project's own errors become "error: ..."; anything else is not hidden."""
    import analysis.run_logit as run_logit

    def broken(*args, **kwargs):
        return {}["n_rows"]

    monkeypatch.setattr(run_logit, "run_fit_logit", broken)
    with pytest.raises(KeyError):
        analysis_main(["fit-logit", "--input", str(OPENFACE_SAMPLE), "--out", str(tmp_path)])


def test_the_real_command_line_prints_one_line(tmp_path):
    bad = tmp_path / "dup.csv"
    _sample().rename(columns={"AU45_c": "AU12_r"}).to_csv(bad, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "fit-logit", "--input", str(bad), "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: {bad}: columns 14 ('AU12_r') and 40 ('AU12_r') are both named 'AU12_r'\n"
    assert not (tmp_path / "out").exists()
