"""Data-quality findings on the seed data match its README; both policies are honoured."""

from __future__ import annotations

import pytest

from analysis.au_table import AU_R_COLUMNS, read_au_table
from analysis.quality import apply_quality_policy


@pytest.fixture(scope="module")
def seed_table(seed_csv):
    return read_au_table(seed_csv, label_coding="seed")


def test_findings_match_the_documented_defects(seed_table):
    kept, report = apply_quality_policy(seed_table, list(AU_R_COLUMNS), "drop")
    assert report.exact_duplicate_rows == 19  # 3 angry + 1 disgust + 2 happy + 13 surprise
    assert report.conflicting_vectors == 2 and report.conflicting_rows == 4  # angry vs neutral
    assert report.all_zero_rows == 1
    assert report.rows_dropped == 24 and len(kept) == report.rows_out == 4449
    assert not kept.duplicated(subset=list(AU_R_COLUMNS)).any()
    assert not (kept[list(AU_R_COLUMNS)] == 0).all(axis=1).any()


def test_keep_policy_reports_but_keeps(seed_table):
    kept, report = apply_quality_policy(seed_table, list(AU_R_COLUMNS), "keep")
    assert len(kept) == 4473 and report.rows_dropped == 0 and report.exact_duplicate_rows == 19


def test_unknown_policy(seed_table):
    with pytest.raises(ValueError, match="unknown quality policy"):
        apply_quality_policy(seed_table, list(AU_R_COLUMNS), "fix")
