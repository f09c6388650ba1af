"""Shared fixtures: the bundled real data and one fit-logit run reused by many tests."""

from __future__ import annotations

from pathlib import Path

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
