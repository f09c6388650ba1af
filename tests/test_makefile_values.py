"""User values given to make targets are data: they reach the program as one argument, byte for byte.

Each case runs the real Makefile under the real make and /bin/sh with ``VENV=`` pointing at a folder
whose ``bin/python`` records its arguments (NUL-separated) and exits with a chosen code, so every
target and variable is checked in milliseconds. The end-to-end cases at the bottom run the real
programs on folders with hostile names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from openface_runner.runner import failures_path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"

# (target, variable, the option the program receives); every make variable that holds a path, name,
# pattern, address, model file or extra OpenFace arguments
PASSED = [
    ("openface", "IN", "--in"),
    ("openface", "OUT", "--out"),
    ("openface", "OPENFACE_BIN", "--openface-bin"),
    ("openface", "OPENFACE_ARGS", "--openface-args"),
    ("openface", "SCHEDULER", "--scheduler"),
    ("benchmark-openface", "IN", "--in"),
    ("benchmark-openface", "OPENFACE_BIN", "--openface-bin"),
    ("fit-logit", "IN", "--input"),
    ("fit-logit", "OUT", "--out"),
    ("fit-logit", "LABEL_COL", "--label-column"),
    ("fit-logit", "FEATURES", "--features"),
    ("report-logit", "OUT", "--out"),
    ("fit-glassbox", "OUT", "--out"),
    ("report-glassbox", "OUT", "--out"),
    ("train-cnn", "FER2013", "--data"),
    ("train-cnn", "INIT", "--init-from"),
    ("evaluate-cnn", "FER2013", "--data"),
    ("benchmark-cnn", "FER2013", "--data"),
    ("train-au-cnn", "FER2013", "--data"),
    ("train-au-cnn", "INIT", "--init-from"),
    ("landmark-mlp", "FER2013", "--data"),
    ("evaluate-au-cnn", "FER2013", "--data"),
    ("leak-control", "FER2013", "--data"),
    ("fer2013-concepts", "FER2013", "--data"),
    ("fer2013-concepts", "OPENFACE_ARGS", "--openface-args"),
    ("compare", "IN", "--in"),
    ("compare", "AUS", "--aus"),
    ("compare", "IMAGES", "--images"),
    ("compare", "NAME", "--name"),
    ("compare", "SUBJECT", "--subject"),
    ("compare", "OPENFACE_ARGS", "--openface-args"),
    ("explain", "IN", "--in"),
    ("explain", "AUS", "--aus"),
    ("explain", "MODEL", "--model"),
    ("explain", "AU_ESTIMATOR", "--au-estimator"),
    ("explain", "OUT", "--out"),
    ("report-explain", "OUT", "--out"),
    ("serve", "MODEL", "--model"),
    ("serve", "HOST", "--host"),
    ("serve", "OUT", "--out"),
    ("serve", "OPENFACE_BIN", "--openface-bin"),
    ("serve", "OPENFACE_ARGS", "--openface-args"),
    ("benchmark-serve", "MODEL", "--model"),
    ("load-test-serve", "MODEL", "--model"),
]


def hostile_values(marker: Path) -> dict[str, bytes]:
    """Names as downloaded datasets have them, and names built to run ``touch <marker>``."""
    m = os.fsencode(marker)
    return {
        "space": b"my faces/set 1",
        "double quote": b'a"b',
        "single quote": b"it's",
        "backquote": b"faces/a`touch " + m + b"`b",
        "command substitution": b"c$(touch " + m + b")d",
        "semicolon": b"x'; touch " + m + b"; echo '",
        "leading dash": b"-rf",
        "newline": b"two\nlines",
        "non-UTF-8": b"caf\xe9-\xff",
        "backslash": b"a\\b",
        "dollar": b"$HOME$$x",
    }


@pytest.fixture(scope="module")
def recorder(tmp_path_factory) -> Path:
    """A VENV folder whose ``bin/python`` writes its arguments to $RECORD and exits with $FAKE_RC."""
    venv = tmp_path_factory.mktemp("recorder")
    (venv / "bin").mkdir()
    python = venv / "bin" / "python"
    # each call: \1, then every argument followed by \0
    script = '#!/bin/sh\n{ printf "\\001"; printf "%s\\0" "$@"; } >> "$RECORD"\nexit "${FAKE_RC:-0}"\n'
    python.write_text(script)
    python.chmod(0o755)
    # newer than pyproject.toml: make installs nothing
    for stamp in (".installed", ".installed-cnn", ".installed-live"):
        (venv / stamp).touch()
    return venv


def run_make(recorder: Path, tmp_path: Path, target: str, values: dict[str, bytes], rc: int = 0):
    record = tmp_path / "argv"
    record.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in {"IN", "OUT", "MAKEFLAGS", "MAKELEVEL"}}
    env |= {"RECORD": str(record), "FAKE_RC": str(rc)}
    # these targets need IN (compare without it takes the FER2013 path); give them a harmless one
    needs_in = {"openface", "benchmark-openface", "compare", "explain"}
    defaults = {"IN": b"faces"} if target in needs_in and values else {}
    args = [b"make", b"-s", target.encode(), b"VENV=" + os.fsencode(recorder)]
    args += [k.encode() + b"=" + v for k, v in {**defaults, **values}.items()]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=60)
    recorded = record.read_bytes() if record.exists() else b""
    calls = [call.split(b"\0")[:-1] for call in recorded.split(b"\1")[1:]]
    return done, calls


@pytest.mark.parametrize(("target", "variable", "option"), PASSED, ids=lambda x: str(x))
def test_every_hostile_value_reaches_the_program_as_one_argument(
    recorder: Path, tmp_path: Path, target: str, variable: str, option: str
) -> None:
    marker = tmp_path / "PWNED"
    for name, value in hostile_values(marker).items():
        done, calls = run_make(recorder, tmp_path, target, {variable: value})
        assert done.returncode == 0, (name, done.stderr.decode(errors="replace"))
        assert calls, f"{name}: the program was not called"
        assert any(option.encode() + b"=" + value in call for call in calls), (name, calls)
        assert not marker.exists(), f"{target} {variable}={name!r} executed a command"


@pytest.mark.parametrize("target", sorted({t for t, _, _ in PASSED}))
def test_make_fails_exactly_when_the_program_fails(recorder: Path, tmp_path: Path, target: str) -> None:
    """GNU make exits 2 whenever a recipe fails: the program's failure is make's failure, its success
    make's success, also when a value is built to swallow the exit code (``…; echo '``)."""
    marker = tmp_path / "PWNED"
    swallow = hostile_values(marker)["semicolon"]
    # compare's SUBJECT was pasted inside single quotes: the value that broke out of them
    variable = "SUBJECT" if target == "compare" else next(v for t, v, _ in PASSED if t == target)
    ok, _ = run_make(recorder, tmp_path, target, {variable: swallow}, rc=0)
    failed, calls = run_make(recorder, tmp_path, target, {variable: swallow}, rc=3)
    assert ok.returncode == 0
    assert failed.returncode == 2, failed.stderr.decode(errors="replace")
    assert len(calls) == 1, "make went on after the program failed"
    assert not marker.exists()


def test_missing_in_is_a_one_line_usage_error_without_running_anything(recorder: Path, tmp_path) -> None:
    for target in ("openface", "benchmark-openface"):
        done, calls = run_make(recorder, tmp_path, target, {})
        assert done.returncode == 2 and not calls
        assert f"make {target} needs IN=" in done.stdout.decode()
    done, calls = run_make(recorder, tmp_path, "explain", {"IN": b""})
    assert done.returncode == 2 and not calls and b"make explain needs IN=" in done.stdout


# End to end: the real programs on a folder whose name holds every character above at once.
HOSTILE_DIR = "set 1 \"q\" 'it' `touch PWNED` $(touch PWNED) ; -x \\ caf\xe9"


@pytest.fixture()
def hostile_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "parent" / HOSTILE_DIR
    folder.mkdir(parents=True)
    return folder


def _real_make(target: str, cwd: Path, **values: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL"}}
    args = ["make", "-s", "-C", str(ROOT), target, f"VENV={ROOT / '.venv'}"]
    args += [f"{k}={v}" for k, v in values.items()]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not VENV_PY.exists(), reason="needs the project's .venv (make install)")
def test_fit_logit_and_report_logit_write_into_the_named_folder(hostile_dir: Path) -> None:
    table = hostile_dir / "aus; `x`.csv"
    shutil.copy(ROOT / "data" / "seed_au" / "emotion_all.csv", table)
    out = hostile_dir / "out $(x)"
    done = _real_make("fit-logit", hostile_dir, IN=str(table), OUT=str(out), CODING="seed")
    assert done.returncode == 0, done.stderr
    assert (out / "logit.html").is_file() and (out / "logit" / "model.json").is_file()
    (out / "logit.html").unlink()
    done = _real_make("report-logit", hostile_dir, OUT=str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "logit.html").is_file()
    # nothing ran, nothing was written beside the named folders
    assert not list(hostile_dir.parent.parent.rglob("PWNED"))
    assert sorted(p.name for p in hostile_dir.parent.iterdir()) == [HOSTILE_DIR]
    assert not (ROOT / "PWNED").exists()


@pytest.mark.openface
@pytest.mark.skipif(not os.environ.get("OPENFACE_BIN"), reason="needs a native OpenFace in $OPENFACE_BIN")
def test_openface_processes_the_named_folder_not_its_parent(hostile_dir: Path) -> None:
    replay = ROOT / "tests" / "fixtures" / "openface" / "replay"  # real FER2013 faces
    images = sorted((replay / "input" / "happy").iterdir())[:2]
    for image in images:
        shutil.copy(image, hostile_dir / image.name)
    shutil.copy(images[0], hostile_dir.parent / "decoy_in_parent.png")  # must not be processed
    table = hostile_dir / "aus.csv"
    done = _real_make(
        "openface", hostile_dir, IN=str(hostile_dir), OUT=str(table), BACKEND="native",
        OPENFACE_BIN=os.environ["OPENFACE_BIN"], OPENFACE_ARGS="-mloc model/main_clnf_general.txt",
    )
    assert done.returncode == 0, done.stderr
    rows = pd.read_csv(table)
    failures = pd.read_csv(failures_path(table))
    assert sorted([*rows["image"], *failures["image"]]) == sorted(p.name for p in images)
    assert not list(hostile_dir.parent.parent.rglob("PWNED"))
