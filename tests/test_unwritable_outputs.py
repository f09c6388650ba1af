"""Outputs that cannot be written (issue 26): a read-only reports folder and a full disk end as
one line (exit 2), before the work where that can be known, with nothing partial or hidden left.

Real file systems, not mocks: a tmpfs mounted read-only, and a tmpfs of a few hundred KiB that
fills up. Mounting needs root (CAP_SYS_ADMIN), as in CI; elsewhere these tests skip and say why.
As root, ``chmod`` does not stop a write, which is why a mount is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
OPENFACE_BIN = os.environ.get("OPENFACE_BIN", "")


def _mount(point: Path, *options: str) -> bool:
    point.mkdir(parents=True, exist_ok=True)
    command = ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(point)]
    return subprocess.run(command, capture_output=True).returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    """A factory of tmpfs mounts below ``tmp_path``; unmounted afterwards."""
    mounted: list[Path] = []

    def make(name: str, size: str = "16m") -> Path:
        point = tmp_path / name
        if not _mount(point, f"size={size}"):
            pytest.skip("needs root to mount a tmpfs (a real read-only or full file system)")
        mounted.append(point)
        return point

    yield make
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True, capture_output=True)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def _one_line(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word.lower() in errors[0].lower(), errors[0]
    return errors[0]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_fit_logit_into_a_read_only_results_folder_fails_before_the_fit(tmpfs, tmp_path):
    """The issue's case: ``reports/`` writable, an earlier run's ``reports/logit/`` read-only (a
    tmpfs remounted read-only holds it). One line before fitting (nothing of the fit printed),
    the earlier results untouched, no hidden folder left in ``reports/``."""
    out = tmp_path / "reports"
    assert _run("analysis", "fit-logit", "--out", str(out)).returncode == 0
    earlier = tmp_path / "earlier"
    shutil.move(out / "logit", earlier)
    logit = tmpfs("reports/logit")
    for path in earlier.iterdir():
        shutil.copy2(path, logit / path.name)
    before = (logit / "manifest.json").read_bytes()
    _read_only(logit)
    result = _run("analysis", "fit-logit", "--out", str(out))
    _one_line(result, str(logit), "read-only")
    assert "accuracy" not in result.stdout.lower(), result.stdout  # the fit never ran
    assert (logit / "manifest.json").read_bytes() == before
    assert _hidden(out) == []


@pytest.mark.parametrize(
    ("size", "results_fit"),
    [("64k", False), ("256k", True)],  # the results take about 160 KiB, the page about 660 KiB
)
def test_fit_logit_on_a_full_disk_leaves_nothing_partial(tmpfs, size, results_fit):
    """A small file system fills up: one line naming what could not be written. Either no
    results at all or the complete, verified results folder (its page can be rebuilt with
    ``make report-logit``); never a half-written file, a page or a hidden staging folder."""
    from analysis.results import verify_results

    out = tmpfs("small", size=size)
    line = _one_line(_run("analysis", "fit-logit", "--out", str(out)), "no space left")
    assert not (out / "logit.html").exists() and _hidden(out) == []
    if results_fit:
        assert "logit.html" in line
        verify_results(out / "logit")
    else:
        assert str(out / "logit") in line
        assert sorted(p.name for p in out.iterdir()) == []


def test_a_results_unit_on_a_full_disk_keeps_the_previous_results(tmpfs):
    """The library level: a unit whose files fill the disk raises ResultsError (a project error,
    one line in every CLI), and the folder keeps its previous, verified content."""
    from analysis.results import ResultsError, results_unit, verify_results

    out = tmpfs("unit", size="128k")
    with results_unit(out / "stage", "test") as staging:
        (staging / "a.txt").write_text("before\n")
    with pytest.raises(ResultsError, match="no space left"), results_unit(out / "stage", "test") as staging:
        (staging / "big.bin").write_bytes(os.urandom(512 * 1024))
    assert verify_results(out / "stage")["files"].keys() == {"a.txt"}
    assert _hidden(out) == []


@pytest.mark.openface
@pytest.mark.skipif(not OPENFACE_BIN, reason="needs $OPENFACE_BIN (a real FaceLandmarkImg)")
def test_the_runner_on_a_full_disk_says_so_in_one_line(tmpfs, tmp_path):
    """OpenFace over the 30 replay images with the AU table and run folder on a 256 KiB file
    system (OpenFace's own outputs fill it): exit 2 and one line, no traceback."""
    images = tmp_path / "images"
    shutil.copytree(FIXTURES / "openface" / "replay" / "input", images)
    out = tmpfs("small", size="256k")
    result = _run(
        "openface_runner", "run", "--in", str(images), "--out", str(out / "au_table.csv"),
        "--backend", "native", "--openface-bin", OPENFACE_BIN, "--workers", "1", "--quiet",
        "--openface-args", "-mloc model/main_clnf_general.txt",
    )  # fmt: skip
    _one_line(result, "no space left")
