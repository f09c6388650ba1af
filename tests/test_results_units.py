"""The stages write their results folders as a unit: a run that dies while writing leaves the
previous results whole, and a damaged folder is refused by the report command in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.au_table import SEED_AU_TABLE
from analysis.cli import main
from analysis.results import MANIFEST, ResultsError, results_unit, verify_results
from tests.conftest import OPENFACE_SAMPLE

ROOT = Path(__file__).resolve().parent.parent


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def logit_results(seed_run, tmp_path) -> Path:
    """A copy of a real ``fit-logit`` results folder, ``<tmp>/reports/logit``."""
    folder = tmp_path / "reports" / "logit"
    with results_unit(folder, stage="fit-logit") as staging:
        for name, data in _snapshot(seed_run.results_dir).items():
            if name != MANIFEST:
                (staging / name).write_bytes(data)
    return folder


def test_fit_logit_writes_a_manifest_of_every_file(seed_run):
    manifest = verify_results(seed_run.results_dir)
    assert manifest["stage"] == "fit-logit"
    assert {"coefficients.csv", "model.json", "metrics.json"} <= set(manifest["files"])
    assert set(manifest["files"]) | {MANIFEST} == {p.name for p in seed_run.results_dir.iterdir()}


def test_fit_logit_killed_while_writing_leaves_the_previous_results(logit_results):
    """SIGKILL after three of the results files: no cleanup runs, yet nothing is mixed."""
    before = _snapshot(logit_results)
    script = textwrap.dedent(
        f"""
        import os, signal
        import analysis.run_logit as run_logit
        written = []
        real = run_logit.write_csv
        def dying_write_csv(path, frame, index=False):
            real(path, frame, index=index)
            written.append(path)
            if len(written) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        run_logit.write_csv = dying_write_csv
        run_logit.run_fit_logit({str(OPENFACE_SAMPLE)!r}, {str(logit_results.parent)!r}, progress=False)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    assert _snapshot(logit_results) == before  # the seed run's files, all of them, unchanged
    verify_results(logit_results)
    leftovers = [p.name for p in logit_results.parent.iterdir() if p.name.startswith(".logit.")]
    assert leftovers  # the killed run's staging folder (hidden) ...
    code = main(["fit-logit", "--input", str(OPENFACE_SAMPLE), "--out", str(logit_results.parent), "--quiet"])
    assert code == 0
    assert not [p for p in logit_results.parent.iterdir() if p.name.startswith(".logit.")]  # ... is gone
    assert verify_results(logit_results)["files"] != {}


def test_fit_logit_failing_while_writing_leaves_the_previous_results(logit_results, monkeypatch):
    import analysis.run_logit as run_logit

    before = _snapshot(logit_results)

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_logit, "write_json", full_disk)
    with pytest.raises(ResultsError, match="no space left"):  # one line in the CLI, not a traceback
        run_logit.run_fit_logit(OPENFACE_SAMPLE, logit_results.parent, progress=False, render=False)
    assert _snapshot(logit_results) == before
    assert [p.name for p in logit_results.parent.iterdir()] == ["logit"]


def test_truncated_coefficients_make_report_logit_fail_in_one_line(logit_results, capsys):
    coefficients = logit_results / "coefficients.csv"
    coefficients.write_bytes(b"\n".join(coefficients.read_bytes().split(b"\n")[:3]))  # "2 rows"
    code = main(["report-logit", "--out", str(logit_results.parent)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {coefficients}: does not match {MANIFEST}") and err.count("\n") == 1
    assert not (logit_results.parent / "logit.html").exists()


def test_report_logit_renders_a_whole_folder(logit_results, capsys):
    assert main(["report-logit", "--out", str(logit_results.parent)]) == 0
    assert (logit_results.parent / "logit.html").is_file()


def test_glassbox_failing_on_the_second_dataset_replaces_nothing(tmp_path, monkeypatch):
    """Before: the seed dataset's files were written before FER2013 was even fitted."""
    import analysis.run_glassbox as run_glassbox

    folder = tmp_path / "glassbox"
    with results_unit(folder, stage="fit-glassbox") as staging:
        (staging / "metrics.json").write_text('{"selected": {"seed": "gam", "fer2013": "gam"}}\n')
    before = _snapshot(folder)
    seed_au = pd.read_csv(SEED_AU_TABLE, skipinitialspace=True).rename(columns=str.strip)

    def one_dataset(name, ds, settings, progress):
        if name == "fer2013":
            raise KeyboardInterrupt  # Ctrl-C during the second dataset
        tables = {"selection": seed_au.head(5)}
        return tables, {"selected": "logit", "models": {"logit": {}, "black_box": {}}}, None  # no model

    monkeypatch.setattr(run_glassbox, "_one_dataset", one_dataset)
    with pytest.raises(KeyboardInterrupt):
        run_glassbox.run_glassbox(run_glassbox.GlassboxSettings(folder), progress=False)
    assert _snapshot(folder) == before
    assert [p.name for p in tmp_path.iterdir()] == ["glassbox"]


def test_compare_results_are_written_as_a_unit(tmp_path, monkeypatch):
    from compare import run as compare_run

    sample = pd.read_csv(OPENFACE_SAMPLE)
    results = compare_run.CompareResults(
        tables={
            "predictions.csv": (sample[["image", "emotion"]], False),
            "kappa.csv": (sample.head(3), True),
        },
        metrics={"n_paired": len(sample)},
        gallery_faces=np.zeros((2, 48, 48), np.uint8),
        gallery_cams=np.zeros((2, 48, 48), np.float16),
    )
    folder = compare_run.write_compare_results(results, tmp_path / "compare")
    manifest = verify_results(folder)
    assert set(manifest["files"]) == {"predictions.csv", "kappa.csv", "gallery.npz", "metrics.json"}
    before = _snapshot(folder)

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compare_run.np, "savez_compressed", no_space)
    results.metrics = {"n_paired": 0}
    with pytest.raises(ResultsError, match="no space left"):
        compare_run.write_compare_results(results, folder)
    assert _snapshot(folder) == before
    assert sorted(os.listdir(tmp_path)) == ["compare"]
