"""Per video and tracked face: smoothed probabilities over time, summary, peak frames, driving AUs.

Masking: a frame whose ``success`` is 0 (OpenFace's landmark fit failed; its AUs are 0) gets
no prediction (NaN); it is never interpolated. Smoothing: a centred moving average over
``window`` frames of the frames with success 1 inside the window (pandas ``rolling(center=True,
min_periods=1)``, which skips NaN); a masked frame stays NaN after smoothing. The window is
given in seconds and turned into frames with the track's frame rate, the median step of
OpenFace's ``timestamp`` (image sequences without timestamps: ``DEFAULT_WINDOW_FRAMES``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.labels import EMOTIONS

DEFAULT_WINDOW_S = 0.5
DEFAULT_WINDOW_FRAMES = 15
PEAKS_PER_EMOTION = 1
MAX_GALLERY = 24


def frame_rate(timestamps: np.ndarray) -> float | None:
    """Frames per second from OpenFace's ``timestamp`` (s): 1 / the median positive step; None
    when the timestamps do not advance (an image sequence without ``-fps``)."""
    steps = np.diff(np.asarray(timestamps, dtype=float))
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if len(steps) else None


def window_frames(window_s: float, fps: float | None) -> int:
    """The smoothing window in frames: ``window_s`` x ``fps`` rounded to an odd count >= 1
    (centred windows need an odd length); ``DEFAULT_WINDOW_FRAMES`` without a frame rate."""
    if fps is None:
        return DEFAULT_WINDOW_FRAMES
    n = max(1, int(round(window_s * fps)))
    return n if n % 2 else n + 1


def smooth(values: np.ndarray, window: int, masked: np.ndarray) -> np.ndarray:
    """Centred moving average of (n, k) ``values`` over ``window`` frames, NaN (masked) frames
    skipped inside the window and left NaN themselves."""
    frame = pd.DataFrame(np.where(masked[:, None], np.nan, values))
    out = frame.rolling(window, center=True, min_periods=1).mean().to_numpy(copy=True)
    out[masked] = np.nan
    return out


def summary_row(track: pd.DataFrame, au: np.ndarray, cnn: np.ndarray, used: np.ndarray) -> dict:
    """One track's summary: frames total and used, seconds, mean confidence (used frames), and the
    share of used frames whose smoothed most probable emotion is each emotion (AU model, CNN).

    ``au``/``cnn``: (n, 6) smoothed probabilities in ``EMOTIONS`` order (NaN where masked or,
    for the CNN, where no crop was classified)."""
    n_used = int(used.sum())
    row = {
        "video": track["video"].iloc[0],
        "face_id": int(track["face_id"].iloc[0]),
        "frames_total": int(len(track)),
        "frames_used": n_used,
        "seconds": float(track["timestamp"].max() - track["timestamp"].min()),
        "mean_confidence": float(track["confidence"].to_numpy()[used].mean()) if n_used else np.nan,
    }
    for prefix, values in (("au", au), ("cnn", cnn)):
        valid = used & np.all(np.isfinite(values), axis=1)
        top = values[valid].argmax(axis=1) if valid.any() else np.array([], dtype=int)
        counts = np.bincount(top, minlength=len(EMOTIONS))
        for i, emotion in enumerate(EMOTIONS):
            row[f"{prefix}_share_{emotion}"] = counts[i] / valid.sum() if valid.any() else np.nan
        row[f"{prefix}_frames"] = int(valid.sum())
        row[f"{prefix}_top"] = EMOTIONS[int(counts.argmax())] if valid.any() else ""
    return row


def peak_positions(
    smoothed: np.ndarray, per_emotion: int = PEAKS_PER_EMOTION, min_gap: int = 1
) -> list[tuple[int, int]]:
    """(position, emotion index) of each emotion's peak frames: where the smoothed AU-model
    probability of the emotion is highest among the frames where it is the most probable one,
    up to ``per_emotion`` per emotion at least ``min_gap`` frames apart."""
    out = []
    valid = np.all(np.isfinite(smoothed), axis=1)
    if not valid.any():
        return out
    top = np.full(len(smoothed), -1)
    top[valid] = smoothed[valid].argmax(axis=1)
    for k in range(smoothed.shape[1]):
        where = np.flatnonzero(top == k)
        chosen: list[int] = []
        for position in where[np.argsort(-smoothed[where, k], kind="stable")]:
            if all(abs(position - c) >= min_gap for c in chosen):
                chosen.append(int(position))
            if len(chosen) == per_emotion:
                break
        out.extend((c, k) for c in chosen)
    return out


def bounded_gallery(candidates: pd.DataFrame, limit: int = MAX_GALLERY) -> pd.DataFrame:
    """At most ``limit`` gallery frames: per emotion in turn, the most probable peak not yet
    taken (so every emotion that peaks anywhere is shown before any emotion twice)."""
    if len(candidates) <= limit:
        return candidates.sort_values(["video", "face_id", "frame"]).reset_index(drop=True)
    ranked = candidates.sort_values("peak_probability", ascending=False, kind="stable")
    ranked = ranked.assign(turn=ranked.groupby("peak_emotion").cumcount())
    chosen = ranked.sort_values(["turn", "peak_probability"], ascending=[True, False], kind="stable").head(
        limit
    )
    return chosen.drop(columns="turn").sort_values(["video", "face_id", "frame"]).reset_index(drop=True)
