"""Additive terms over AU columns and the design matrix they make.

A term is one AU (its intensity ``AU12_r`` or presence ``AU12_c``), entered linearly or as a
cubic B-spline (a GAM's shape function), or the product of two AU intensities (an
interaction such as the Duchenne pair AU06 x AU12). Each term owns a block of design
columns, so a linear model's prediction splits exactly into one contribution per term.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.preprocessing import SplineTransformer, StandardScaler

from analysis.au_table import AU_R_COLUMNS, INTENSITY_RANGE, au_code


@dataclass(frozen=True)
class Term:
    """``columns``: the AU column(s) it reads; ``kind``: ``linear``, ``spline`` or ``product``."""

    columns: tuple[str, ...]
    kind: str

    @property
    def name(self) -> str:
        """``AU12_r``, ``AU12_r (spline)`` or ``AU06 x AU12``."""
        if self.kind == "product":
            return " x ".join(au_code(c) for c in self.columns)
        return self.columns[0] + (" (spline)" if self.kind == "spline" else "")


def make_terms(
    intensities: list[str], presences: list[str] = (), splines: bool = False, pairs: bool = False
) -> list[Term]:
    """Main-effect terms (linear or spline intensities, linear presences), then all intensity pairs."""
    kind = "spline" if splines else "linear"
    terms = [Term((c,), kind) for c in intensities] + [Term((c,), "linear") for c in presences]
    if pairs:
        terms += [Term(pair, "product") for pair in itertools.combinations(intensities, 2)]
    return terms


def _spline_input(rows: pd.DataFrame, column: str) -> np.ndarray:
    """A spline term's values: AU intensities clipped to 0-5 (OpenFace's scale); other columns (the
    geometric concepts, in inter-ocular distances, signed) as they are, the spline constant beyond
    its outer knots."""
    values = rows[column].to_numpy(dtype=float)
    return np.clip(values, *INTENSITY_RANGE) if column in AU_R_COLUMNS else values


class TermDesign:
    """Design matrix of a list of terms, standardised column by column.

    Splines: cubic B-splines with 5 knots spread uniformly over the intensities seen in
    training, constant beyond (scikit-learn ``SplineTransformer``); products: the two
    intensities multiplied.
    ``blocks[i]`` is the slice of design columns that belongs to ``terms[i]``.
    """

    def __init__(self, terms: list[Term], n_knots: int = 5):
        self.terms = terms
        self.n_knots = n_knots

    def fit(self, rows: pd.DataFrame) -> TermDesign:
        # Knots spread over the intensities seen in training; beyond them the effect stays
        # constant, so a rare high intensity cannot extrapolate a cubic piece.
        self.splines_ = {
            t.columns[0]: SplineTransformer(n_knots=self.n_knots, degree=3, extrapolation="constant").fit(
                _spline_input(rows, t.columns[0])[:, None]
            )
            for t in self.terms
            if t.kind == "spline"
        }
        scaler = StandardScaler().fit(self._raw(rows))
        self.center_, self.scale_ = scaler.mean_, scaler.scale_
        return self

    def transform(self, rows: pd.DataFrame) -> np.ndarray:
        """(n, n_columns) standardised design matrix (``StandardScaler``'s arithmetic)."""
        return (self._raw(rows) - self.center_) / self.scale_

    @property
    def knots(self) -> dict[str, list[float]]:
        """The spline knots of each spline column (the 5 base knots, before extension)."""
        return {column: [float(v) for v in s.bsplines_[0].t[3:-3]] for column, s in self.splines_.items()}

    @classmethod
    def fitted(
        cls, terms: list[Term], knots: dict[str, np.ndarray], center: np.ndarray, scale: np.ndarray
    ) -> TermDesign:
        """A fitted design from saved state: spline knots per column, column centres and scales.

        ``SplineTransformer`` with explicit knots rebuilds the same B-spline basis as the one
        fitted on data (tested: identical predictions after a JSON round trip).
        """
        design = cls(terms, n_knots=len(next(iter(knots.values()))) if knots else 5)
        design.splines_ = {
            column: SplineTransformer(knots=np.asarray(k, dtype=float)[:, None], degree=3,
                                      extrapolation="constant").fit(np.asarray(k, dtype=float)[:, None])
            for column, k in knots.items()
        }  # fmt: skip
        design.center_, design.scale_ = np.asarray(center, dtype=float), np.asarray(scale, dtype=float)
        return design

    @property
    def blocks(self) -> list[slice]:
        """``blocks[i]``: the design columns of ``terms[i]``."""
        if not hasattr(self, "blocks_"):
            columns = sorted({c for t in self.terms for c in t.columns})
            self._raw(pd.DataFrame(0.0, index=[0], columns=columns))
        return self.blocks_

    def _raw(self, rows: pd.DataFrame) -> np.ndarray:
        parts, blocks, start = [], [], 0
        for term in self.terms:
            if term.kind == "spline":
                part = self.splines_[term.columns[0]].transform(_spline_input(rows, term.columns[0])[:, None])
            elif term.kind == "product":
                part = (
                    rows[term.columns[0]].to_numpy(dtype=float) * rows[term.columns[1]].to_numpy(dtype=float)
                )[:, None]
            else:
                part = rows[term.columns[0]].to_numpy(dtype=float)[:, None]
            parts.append(part)
            blocks.append(slice(start, start + part.shape[1]))
            start += part.shape[1]
        self.blocks_ = blocks
        return np.hstack(parts)
