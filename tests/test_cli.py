"""The command line: options reach the stage, bad input fails clearly and loses nothing."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from analysis.cli import main
from tests.conftest import OPENFACE_SAMPLE


def test_bad_input_exits_2_and_keeps_previous_results(seed_run, tmp_path, capsys):
    out = seed_run.results_dir.parent
    before = {p.name: p.read_bytes() for p in seed_run.results_dir.iterdir()}
    bad = tmp_path / "bad.csv"
    raw = pd.read_csv(OPENFACE_SAMPLE, dtype=str)
    raw.loc[4, "AU09_r"] = "n/a"
    raw.to_csv(bad, index=False)
    code = main(["fit-logit", "--input", str(bad), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "column AU09_r, data row 5" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in seed_run.results_dir.iterdir()} == before


def test_fit_logit_options(tmp_path, capsys):
    code = main(
        [
            "fit-logit",
            "--input",
            str(OPENFACE_SAMPLE),
            "--out",
            str(tmp_path),
            "--reference",
            "happy",
            "--folds",
            "3",
            "--seed",
            "7",
            "--quality-policy",
            "keep",
            "--jobs",
            "1",
            "--quiet",
        ]
    )
    assert code == 0
    assert "CV accuracy" in capsys.readouterr().out
    coefs = pd.read_csv(tmp_path / "logit" / "coefficients.csv")
    assert "happy" not in set(coefs["emotion"]) and "neutral" in set(coefs["emotion"])
    assert (tmp_path / "logit.html").is_file()


def test_explain_rows_from_the_command_line(seed_run):
    model = seed_run.results_dir / "model.json"
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "explain", "--model", str(model), "--rows", "932,1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "data row 932: true neutral, predicted" in done.stdout  # the mislabelled row (file line 933)
    assert "AU12_r" in done.stdout and "log-odds" in done.stdout
