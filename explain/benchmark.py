"""``make benchmark-explain``: seconds and peak memory of ``make explain`` on a 1-hour video's table.

A 1-hour video at 30 frames/s is 108,000 frames. The table is made by repeating real OpenFace
2.2.0 recordings (``tests/fixtures/openface/video/recorded/``: ``FeatureExtraction`` on
``default_30.avi``, 30 frames, and face 1 of ``FaceLandmarkVidMulti`` on ``multi_face_20.avi``,
20 frames, one of them with ``success = 0``) as one track, frames renumbered from 1, timestamps
``(frame - 1) / 30`` s. The stage then runs as a user runs it, in its own process
(``python -m explain run --aus <table> --no-cnn``: no OpenFace, no face crops, so no CNN), and
the benchmark prints its wall time and peak resident memory (``resource.getrusage
(RUSAGE_SELF).ru_maxrss`` read by the child as it ends: its high-water mark, interpreter and
libraries included).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import write_sequence_table

RECORDED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "openface" / "video" / "recorded"
FPS = 30.0
LIMIT_S = 120.0
LIMIT_MIB = 2048.0
# The child: the stage's own CLI, then its peak resident memory (KiB) on stderr.
_CHILD = (
    "import resource, sys\n"
    "from explain.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def long_table(rows: int, path: Path) -> Path:
    """Write a sequence AU table of ``rows`` frames (one track) made of repeated real recordings."""
    single = pd.read_csv(RECORDED / "FeatureExtraction" / "default_30.csv", skipinitialspace=True)
    multi = pd.read_csv(RECORDED / "FaceLandmarkVidMulti" / "multi_face_20.csv", skipinitialspace=True)
    block = pd.concat([single, multi[multi["face_id"] == 1]], ignore_index=True)
    block.columns = [c.strip() for c in block.columns]
    keep = [c for c in block.columns if not c.startswith(("x_", "y_"))]
    table = block[keep].iloc[np.arange(rows) % len(block)].reset_index(drop=True)
    table["frame"] = np.arange(1, rows + 1)
    table["face_id"] = 0
    table["timestamp"] = np.round((table["frame"] - 1) / FPS, 3)
    table.insert(0, "video", "one_hour.avi")
    write_sequence_table(table, path)
    return path


def benchmark(rows: int = 108_000, model: Path | None = None, out: Path | None = None) -> int:
    """Print the table's size and the stage's seconds and peak memory for each saved AU model.

    Returns 0, or 1 when a run failed or passed 2 minutes or 2 GiB.
    """
    from explain.models import GLASSBOX_MODEL, LOGIT_MODEL

    models = (
        [model]
        if model
        else [p for p in (Path("reports") / GLASSBOX_MODEL, Path("reports") / LOGIT_MODEL) if p.is_file()]
    )
    if not models:
        print("error: no saved AU model; run `make fit-logit` first", file=sys.stderr)
        return 2
    status = 0
    with tempfile.TemporaryDirectory(prefix="explain-benchmark-") as tmp:
        table = long_table(rows, Path(tmp) / "one_hour.csv")
        masked = int((pd.read_csv(table, usecols=["success"])["success"] == 0).sum())
        hours, mib = rows / FPS / 3600, table.stat().st_size / 2**20
        print(
            f"table: {rows:,} frames ({hours:.2f} h at {FPS:g} fps), "
            f"{masked:,} with success = 0, {mib:.1f} MiB"
        )
        for path in models:
            reports = Path(out) if out else Path(tmp) / f"reports-{path.parent.name}"
            command = [sys.executable, "-c", _CHILD, "run", "--aus", str(table), "--model", str(path)]
            command += ["--no-cnn", "--out", str(reports)]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            peaks = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("PEAK_KIB ")]
            if done.returncode != 0 or not peaks:
                print(f"{path}: failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
                status = 1
                continue
            peak_mib = int(peaks[-1]) / 1024  # ru_maxrss is in KiB on Linux
            ok = seconds <= LIMIT_S and peak_mib <= LIMIT_MIB
            status = status if ok else 1
            page_mib = (reports / "explain.html").stat().st_size / 2**20
            frames_mib = (reports / "explain" / "frames.csv").stat().st_size / 2**20
            print(
                f"{path}: {seconds:.1f} s, peak memory {peak_mib:,.0f} MiB; page {page_mib:.1f} MiB, "
                f"frames.csv {frames_mib:.1f} MiB; within 2 min and 2 GiB: {'yes' if ok else 'NO'}"
            )
    return status
