"""Benchmark of the whole logit fit on the seed table and on resampled copies of it.

Each scale runs in a fresh process, so its peak memory (``ru_maxrss``) is its own: the
main process, and separately the largest likelihood-ratio worker process.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def benchmark(input_path: Path, scales: list[int], seed: int = 0, n_jobs: int | None = None) -> list[dict]:
    """Print and return time (seconds) and peak memory (MiB) per resampling factor.

    A factor k draws k x n rows with replacement (``numpy`` generator, ``seed``) from the
    n-row seed-coded table, then runs the fit (MNLogit, marginal effects, LR tests, VIF)
    and, separately timed, the 5-fold cross-validation.
    """
    rows = []
    print(f"{'rows':>9} {'fit s':>7} {'CV s':>6} {'total s':>8} {'main MiB':>9} {'worker MiB':>11}")
    for scale in scales:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            row = pool.submit(_one, str(input_path), scale, seed, n_jobs).result()
        print(
            f"{row['rows']:>9,} {row['fit_seconds']:>7.1f} {row['cv_seconds']:>6.1f} "
            f"{row['total_seconds']:>8.1f} {row['peak_main_mib']:>9.0f} {row['peak_worker_mib']:>11.0f}"
        )
        rows.append(row)
    return rows


def _one(input_path: str, scale: int, seed: int, n_jobs: int | None) -> dict:
    import numpy as np
    from joblib.externals.loky import get_reusable_executor

    from analysis.au_table import AU_R_COLUMNS, read_au_table, six_class_rows
    from analysis.cv_scores import cross_validated_scores
    from analysis.logit import fit_logit

    table = six_class_rows(read_au_table(input_path, label_coding="seed"))
    if scale > 1:
        index = np.random.default_rng(seed).integers(0, len(table), len(table) * scale)
        table = table.iloc[index].reset_index(drop=True)
    features = list(AU_R_COLUMNS)
    start = time.perf_counter()
    fit = fit_logit(table, features, n_jobs=n_jobs)
    fitted = time.perf_counter()
    cross_validated_scores(table, features, fit.model.classes, seed=seed, n_jobs=n_jobs)
    done = time.perf_counter()
    get_reusable_executor().shutdown(wait=True)  # reap workers so RUSAGE_CHILDREN sees them
    kib = 1024
    return {
        "rows": len(table),
        "fit_seconds": fitted - start,
        "cv_seconds": done - fitted,
        "total_seconds": done - start,
        "peak_main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
        "peak_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
    }
