"""Shared fixtures: the bundled real data and one fit-logit run reused by many tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.au_table import SEED_AU_TABLE
from analysis.run_logit import LogitRun, run_fit_logit

FIXTURES = Path(__file__).parent / "fixtures"
OPENFACE_SAMPLE = FIXTURES / "fer2013_openface_privatetest_sample.csv"


@pytest.fixture(scope="session")
def seed_csv() -> Path:
    return SEED_AU_TABLE


@pytest.fixture(scope="session")
def seed_run(tmp_path_factory) -> LogitRun:
    """`fit-logit` on the bundled seed AU data with default settings."""
    out = tmp_path_factory.mktemp("reports")
    return run_fit_logit(SEED_AU_TABLE, out, label_coding="seed", progress=False)


# Hostile names: shown as text on every page, never run (tests/test_pages.py).
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
AMP = "a & b"
HOSTILE = (SCRIPT, IMG, AMP)
INPUT_NAME = f"{IMG}&.csv"  # a file name may hold every hostile character but "/"
FER2013_AUS = Path(__file__).resolve().parent.parent / "data" / "fer2013_openface" / "fer2013_openface.csv.gz"


def hostile(i: int) -> str:
    return HOSTILE[i % len(HOSTILE)]


@pytest.fixture(scope="session")
def hostile_seed_input(tmp_path_factory) -> Path:
    """The bundled seed table with hostile image names, saved under a hostile file name."""
    folder = tmp_path_factory.mktemp("input")
    table = pd.read_csv(SEED_AU_TABLE)
    table.insert(0, "image", [f"{hostile(i)}{i}.jpg" for i in range(len(table))])
    path = folder / INPUT_NAME
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def glassbox_small(tmp_path_factory, hostile_seed_input) -> tuple[Path, dict]:
    """`fit-glassbox` cut small (fast candidates, 3 folds, 10 refits) on real data with hostile
    names: the seed table and 2,400 FER2013 OpenFace rows. Returns (results folder, metrics);
    shared by the glass-box tests and the page tests (one run: it is the suite's costliest setup)."""
    from analysis.run_glassbox import GlassboxSettings, run_glassbox

    work = tmp_path_factory.mktemp("glassbox")
    table = pd.read_csv(FER2013_AUS)
    small = pd.concat(
        [
            table[table["Usage"] == "Training"].groupby("emotion").head(300),
            table[table["Usage"] == "PrivateTest"].groupby("emotion").head(100),
        ]
    )
    small["image"] = [f"{hostile(i)}{i}" for i in range(len(small))]
    small.to_csv(work / "fer_small.csv", index=False)
    settings = GlassboxSettings(
        work / "glassbox",
        seed_au_input=hostile_seed_input,
        fer2013_input=work / "fer_small.csv",
        folds=3,
        n_resamples=10,
        fast=True,
        n_jobs=2,
    )
    metrics = run_glassbox(settings, progress=False)
    return work / "glassbox", metrics


def copy_results(results: Path, to: Path) -> Path:
    """A results folder copied whole (its manifest still matches)."""
    shutil.copytree(results, to)
    return to


OPENFACE_TEST_ARGS = "-mloc model/main_clnf_general.txt"


def fer2013_training_sample(folder: Path, per_emotion: int) -> Path:
    """The first ``per_emotion`` real FER2013 Training AU rows of each six-class emotion, as
    ``folder/train_aus.csv`` (what the comparison tests fit the models on)."""
    aus = pd.read_csv(FER2013_AUS)
    aus = aus[(aus["Usage"] == "Training") & (aus["emotion"] != "fear")].groupby("emotion").head(per_emotion)
    path = folder / "train_aus.csv"
    aus.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def live_engine(seed_run):
    """The live mode's models, loaded once (YuNet, the AU estimator, the seed logit, the CNN)."""
    pytest.importorskip("fastapi", reason="the live extra: pip install -e '.[cnn,live]'")
    pytest.importorskip("tensorflow", reason="the cnn extra (the live mode runs the CNN stage's models)")
    from live.engine import LiveEngine

    return LiveEngine(seed_run.results_dir / "model.json")


@pytest.fixture(scope="session")
def live_server(live_engine, tmp_path_factory):
    """A real live server (uvicorn on a free loopback port) around ``live_engine``."""
    from live.app import AppSettings
    from live.server import start_in_thread

    # the team's OpenFace build has the CLNF model only (as every OpenFace test here passes it)
    settings = AppSettings(out=tmp_path_factory.mktemp("live-reports"), openface_args=OPENFACE_TEST_ARGS)
    running = start_in_thread(live_engine, settings)
    yield running
    running.stop()
