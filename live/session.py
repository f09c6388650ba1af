"""Per connection: face ids that last while a face stays in view, and the recording.

Tracking: each frame's boxes are matched to the tracks of the frames before by intersection
over union (greedy, best pairs first, IoU >= ``MIN_IOU``); a face left unmatched starts a new
id, and a track unseen for ``MAX_MISSED`` frames ends (its id is never reused in the session).

Recording: the rows of a sequence AU table (``analysis.au_table.write_sequence_table``, the
contract of a video's table: ``video, frame, face_id, timestamp, confidence, success``, the face
box, ``AU*_r``) plus ``source`` (the AU estimator that gave the AUs, as ``explain.estimate``
names it): ``frame`` counts the frames analysed since the recording started, from 1;
``timestamp`` is seconds since then (server clock); ``confidence`` is the face detector's score
(0-1; no OpenFace fit exists); ``success`` 1; the box is the landmark box the crop came from
(``live.detector.landmark_box``). Frames without a face have no row. ``make explain AUS=<file>``
reads the file as it reads a video's table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS, BOX_COLUMNS
from analysis.concepts import CONCEPT_COLUMNS

MIN_IOU = 0.3
MAX_MISSED = 15


def iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes (0 when either has no area)."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = min(ax1, bx1) - max(a[0], b[0])
    h = min(ay1, by1) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Tracker:
    """IoU tracking of face boxes (see the module docstring)."""

    min_iou: float = MIN_IOU
    max_missed: int = MAX_MISSED
    _tracks: dict[int, tuple[list[float], int]] = field(default_factory=dict)  # id -> (box, missed)
    _next: int = 1

    def assign(self, boxes: list[list[float]]) -> list[int]:
        """The id of each box (same order)."""
        pairs = sorted(
            (
                (iou(box, track[0]), i, tid)
                for i, box in enumerate(boxes)
                for tid, track in self._tracks.items()
            ),
            reverse=True,
        )
        ids: dict[int, int] = {}
        taken: set[int] = set()
        for overlap, i, tid in pairs:
            if overlap < self.min_iou:
                break
            if i in ids or tid in taken:
                continue
            ids[i] = tid
            taken.add(tid)
        for i in range(len(boxes)):
            if i not in ids:
                ids[i] = self._next
                self._next += 1
        for tid, (box, missed) in list(self._tracks.items()):
            if tid not in taken:
                if missed + 1 > self.max_missed:
                    del self._tracks[tid]
                else:
                    self._tracks[tid] = (box, missed + 1)
        for i, box in enumerate(boxes):
            self._tracks[ids[i]] = (box, 0)
        return [ids[i] for i in range(len(boxes))]


@dataclass
class Recording:
    """A recording in progress: rows of a sequence AU table (see the module docstring)."""

    name: str
    source: str
    max_rows: int
    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    rows: list[dict] = field(default_factory=list)

    def add(
        self, faces: list[dict], crop_boxes: list[tuple[float, float, float, float]],
        timestamp: float | None = None,
    ) -> bool:  # fmt: skip
        """Add one analysed frame's faces (``timestamp``: seconds; default: since the start, server
        clock); False (nothing added) once ``max_rows`` is reached."""
        if len(self.rows) + len(faces) > self.max_rows:
            return False
        self.frames += 1
        if timestamp is None:
            timestamp = time.monotonic() - self.started
        for face, box in zip(faces, crop_boxes, strict=True):
            row = {
                "video": self.name,
                "frame": self.frames,
                "face_id": int(face["id"]),
                "timestamp": round(timestamp, 3),
                "confidence": face["score"],
                "success": 1,
                **dict(zip(BOX_COLUMNS, (round(float(v), 1) for v in box), strict=True)),
                **{c: face["aus"][c] for c in AU_R_COLUMNS},
                **face.get("presences", {}),  # the estimator's presences and concepts, when it gives them
                **face.get("concepts", {}),
                "source": self.source,
            }
            self.rows.append(row)
        return True

    def save(self, folder: Path) -> Path:
        """Write the table atomically to ``folder/<name>.csv``; return its path.

        Raises:
            AUTableError: no row (nothing to write), or a row breaks the contract.
        """
        import pandas as pd

        from analysis.au_table import SEQUENCE_META, AUTableError, write_sequence_table

        if not self.rows:
            raise AUTableError("nothing recorded: no face was seen while recording")
        extra = [c for c in (*AU_C_COLUMNS, *CONCEPT_COLUMNS) if c in self.rows[0]]
        columns = [*SEQUENCE_META, *BOX_COLUMNS, *AU_R_COLUMNS, *extra, "source"]
        path = folder / f"{self.name}.csv"
        write_sequence_table(pd.DataFrame(self.rows, columns=columns), path)
        return path


def recording_name(connection: int) -> str:
    """A name the server gives: ``live-<UTC date>-<time>-<connection>`` (never the client's)."""
    return f"live-{datetime.now(UTC):%Y%m%d-%H%M%S}-{connection}"
