"""Data-quality findings on an AU table, and the policy that handles them.

Findings (all counted on the AU intensity vector, the model's only input):

- exact duplicates: the same AU vector and label as an earlier row;
- conflicting duplicates: the same AU vector under two or more labels;
- all-zero rows: every AU intensity 0, typical of a failed or degenerate fit.

Policies: ``"drop"`` (default) keeps the first of each exact duplicate, drops every row
of a conflicting vector and every all-zero row; ``"keep"`` uses all rows. Both report the
same findings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analysis.au_table import LABEL

POLICIES = ("drop", "keep")


@dataclass(frozen=True)
class QualityReport:
    """Counts of data-quality findings and of rows each policy step removed."""

    policy: str
    rows_in: int
    exact_duplicate_rows: int
    conflicting_vectors: int
    conflicting_rows: int
    all_zero_rows: int
    rows_dropped: int
    rows_out: int

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def apply_quality_policy(
    table: pd.DataFrame, au_columns: list[str], policy: str = "drop"
) -> tuple[pd.DataFrame, QualityReport]:
    """Find quality issues in ``table`` and apply ``policy``.

    Args:
        table: an AU table (n rows) with a ``label`` column.
        au_columns: the AU columns that define a row's vector.
        policy: ``"drop"`` or ``"keep"``.

    Returns:
        The kept rows (original index preserved) and a ``QualityReport``.

    Raises:
        ValueError: for an unknown policy.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown quality policy {policy!r}; use one of {', '.join(POLICIES)}")
    vectors = table[au_columns]
    exact = table.duplicated(subset=[*au_columns, LABEL], keep="first")
    labels_per_vector = table.groupby(au_columns, sort=False)[LABEL].transform("nunique")
    conflicting = labels_per_vector > 1
    all_zero = (vectors == 0).all(axis=1)

    drop = (exact | conflicting | all_zero) if policy == "drop" else pd.Series(False, index=table.index)
    kept = table[~drop]
    n_conflicting_vectors = int(table[conflicting].drop_duplicates(subset=au_columns).shape[0])
    report = QualityReport(
        policy=policy,
        rows_in=len(table),
        exact_duplicate_rows=int(exact.sum()),
        conflicting_vectors=n_conflicting_vectors,
        conflicting_rows=int(conflicting.sum()),
        all_zero_rows=int(all_zero.sum()),
        rows_dropped=int(drop.sum()),
        rows_out=len(kept),
    )
    return kept, report


def repeats_training_face(train: pd.DataFrame, test: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """(len(test),) True where a test row's AU values all equal some training row's.

    FER2013 repeats images across its splits and OpenFace gives a repeated image the same
    AUs, so such a test face is (almost surely) a training image again: a model that
    memorises its training rows scores high on it. Values are compared rounded to 4 decimals.
    """
    seen = pd.MultiIndex.from_frame(train[columns].round(4))
    return pd.MultiIndex.from_frame(test[columns].round(4)).isin(seen)
