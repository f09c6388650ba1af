"""analysis.results: a results folder is replaced as a unit and checked against its manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis.results import MANIFEST, ResultsError, results_unit, verify_results

SEED_README = Path(__file__).resolve().parent.parent / "data" / "seed_au" / "README.md"


def _write_run(folder: Path, text: str) -> None:
    with results_unit(folder, stage="test") as staging:
        (staging / "metrics.json").write_text(json.dumps({"run": text}))
        (staging / "sub").mkdir()
        shutil.copy(SEED_README, staging / "sub" / "README.md")


def test_manifest_lists_every_file_and_run_id_is_deterministic(tmp_path: Path) -> None:
    _write_run(tmp_path / "a", "one")
    _write_run(tmp_path / "b", "one")
    manifest = verify_results(tmp_path / "a")
    assert set(manifest["files"]) == {"metrics.json", "sub/README.md"}
    assert manifest["stage"] == "test"
    assert (tmp_path / "a" / MANIFEST).read_bytes() == (tmp_path / "b" / MANIFEST).read_bytes()


def test_failed_run_leaves_previous_results_whole(tmp_path: Path) -> None:
    folder = tmp_path / "logit"
    _write_run(folder, "first")
    before = verify_results(folder)
    with pytest.raises(RuntimeError), results_unit(folder, stage="test") as staging:
        (staging / "metrics.json").write_text("half")
        raise RuntimeError("killed while writing")
    assert verify_results(folder) == before
    assert json.loads((folder / "metrics.json").read_text()) == {"run": "first"}
    assert [p.name for p in tmp_path.iterdir()] == ["logit"]  # no staging folder left behind


def test_second_run_replaces_the_whole_folder(tmp_path: Path) -> None:
    folder = tmp_path / "logit"
    _write_run(folder, "first")
    (folder / "stale.csv").write_text("from an old run")
    _write_run(folder, "second")
    assert not (folder / "stale.csv").exists()
    assert json.loads((folder / "metrics.json").read_text()) == {"run": "second"}


def test_leftovers_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".logit.abc.new").mkdir()
    (tmp_path / ".logit.def.old").mkdir()
    _write_run(tmp_path / "logit", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logit"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "metrics.json").write_text('{"ru'), "does not match"),
        (lambda f: (f / "sub" / "README.md").unlink(), "missing"),
        (lambda f: (f / "extra.csv").write_text("a,b\n"), "not written by run"),
        (lambda f: (f / MANIFEST).unlink(), "no manifest.json"),
        (lambda f: (f / MANIFEST).write_text("{"), "unreadable manifest"),
        (lambda f: shutil.rmtree(f), "no results folder"),
    ],
    ids=["truncated", "missing", "foreign", "no-manifest", "bad-manifest", "no-folder"],
)
def test_damaged_folder_is_named_in_one_line(tmp_path: Path, damage, message: str) -> None:
    folder = tmp_path / "logit"
    _write_run(folder, "x")
    damage(folder)
    with pytest.raises(ResultsError, match=message) as error:
        verify_results(folder)
    assert "\n" not in str(error.value)
