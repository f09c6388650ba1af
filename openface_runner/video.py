"""Run OpenFace over videos and image sequences: one row per frame and face in a sequence AU table.

Inputs (``discover_sequences``): a video file, or a folder below which every video file is one
input and every folder holding image files is one image sequence (its frames in name order).
Each input is one OpenFace call, ``FeatureExtraction`` (one face; sequence mode, with the
dynamic AU models and person-specific normalisation) or ``FaceLandmarkVidMulti`` (``multi``:
several faces), on either backend; inputs run in parallel over ``workers``.

Output: the sequence AU table (``analysis.au_table.write_sequence_table``: ``video, frame,
face_id, timestamp`` (s), ``confidence, success`` (OpenFace's own), the face box ``face_x,
face_y, face_w, face_h`` (the 2D landmarks' bounding box in frame pixels, empty where
``success`` is 0), 17 ``AU*_r`` (0-5), 18 ``AU*_c``) and ``<table>.failures.csv`` (``video,
reason``). Every input has rows in the table, a failure, or both (a truncated video: the
frames OpenFace read are kept and the failure says how many of the declared frames were
missing). Failures: an empty file, a file
OpenFace cannot open, an OpenFace call that failed (exit code, signal, time limit), no face
in any frame, an output out of range.

Resumable per input: a finished input's outputs are in ``done/`` under a key derived from its
path and content, so a rerun processes only what is missing (or replaced). OpenFace wiki,
"Output Format" and "Command line arguments"
(https://github.com/TadasBaltrusaitis/OpenFace/wiki/Output-Format).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS, BOX_COLUMNS, SEQUENCE_META, write_sequence_table
from analysis.files import write_csv
from openface_runner.backends import DockerBackend, NativeBackend, RunFolders, exit_reason
from openface_runner.errors import BackendError, InputError, InvariantError, OutputError
from openface_runner.flags import AU_FLAGS, VIDEO_SUFFIXES, sequence_command, sequence_tool
from openface_runner.folders import RUN_MARKER, check_settings, link
from openface_runner.inputs import IMAGE_SUFFIXES, Rejected, shown_name
from openface_runner.native import CommandBuilder
from openface_runner.parse import check_ranges, landmark_measures, numeric
from openface_runner.runner import check_output_location, cpu_shares, failures_path

FAILURE_COLUMNS = ["video", "reason"]
EMPTY_FILE = "empty file (0 bytes)"
NOT_OPENED = "OpenFace could not open it (not a video, or unreadable); see {log}"
NO_FACE = "no face found in any frame"
# A video is called truncated when OpenFace read fewer frames than its header declares, by
# more than this share and more than MISSING_FRAMES_OK frames (a WMV's declared count is an
# estimate from its duration: changeLighting.wmv declares 90 frames and holds 88).
MISSING_SHARE_OK = 0.05
TRUNCATED = "truncated or damaged video: "
"""How the failures file's reason of a video read in part begins (its rows are in the table)."""
MISSING_FRAMES_OK = 2
PROGRESS = re.compile(rb"\b(\d{1,3})% ")  # FeatureExtraction's progress on stdout: "0% 10% ... 100% "
POLL_S = 0.5


@dataclass(frozen=True)
class InputSequence:
    """One video file or folder of frames.

    Attributes:
        path: the file or folder.
        relative: its name in the table's ``video`` column (posix path below the input
            folder; the file's name when the input is one file).
        key: ASCII name in OpenFace's folders, from the path and the content's SHA-256.
        frames: frames declared by the video's header (OpenCV), or image files of a sequence;
            0 when OpenCV cannot tell.
        files: a sequence's image files, in name order (empty for a video).
    """

    path: Path
    relative: str
    key: str
    frames: int
    files: tuple[Path, ...] = ()

    @property
    def is_video(self) -> bool:
        return not self.files

    @property
    def batch(self) -> str:
        """Folder name of its OpenFace call: ``<key><suffix>`` for a video (see ``sequence_command``)."""
        return self.key + self.path.suffix.lower() if self.is_video else self.key


@dataclass
class VideoRunSummary:
    """Counts of one run over sequences; every input is in the table, the failures, or both.

    ``frames`` counts table rows (one per frame and face); ``frames_now`` the rows of the
    inputs processed by this run (for frames/s); ``openface_seconds`` the summed wall time of
    this run's OpenFace calls (over all workers).
    """

    inputs: int
    with_rows: int
    frames: int
    failures: int
    reasons: dict[str, int]
    processed_now: int
    frames_now: int
    seconds: float
    table: Path
    failures_file: Path
    run_dir: Path
    workers: int = 1
    calls: int = 0
    failed_calls: int = 0
    openface_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def every_call_failed(self) -> bool:
        return self.calls > 0 and self.failed_calls == self.calls


def declared_frames(path: Path) -> int:
    """Frames the video's header declares (OpenCV's ``CAP_PROP_FRAME_COUNT``); 0 if unknown."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT) if capture.isOpened() else 0
    finally:
        capture.release()
    return max(0, int(count)) if count == count else 0  # NaN-safe


def _digest(path: Path) -> bytes:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def _key(prefix: str, relative: str, contents: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256(os.fsencode(relative))
    for name, content in contents:
        digest.update(b"\0" + os.fsencode(name) + b"\0" + content)
    return f"{prefix}_{digest.hexdigest()[:24]}"


def is_sequence_input(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` is a video file or a folder with a video file somewhere below it."""
    root = Path(root)
    if root.is_file():
        return root.suffix.lower() in VIDEO_SUFFIXES
    if root.is_dir():
        return any(Path(p).suffix.lower() in VIDEO_SUFFIXES for _, _, files in os.walk(root) for p in files)
    return False


def discover_sequences(
    root: str | os.PathLike[str], exclude: tuple[str | os.PathLike[str], ...] = ()
) -> tuple[list[InputSequence], list[Rejected]]:
    """Videos and image sequences below ``root`` (or ``root`` itself, a video file).

    Every video file is an input; every folder that directly holds image files is one image
    sequence; other files, empty files and unreadable ones are rejected with a reason.

    Returns:
        ``(inputs, rejected)``, each sorted by name (``Rejected.label`` is empty).

    Raises:
        InputError: ``root`` is missing, a file that is not a video, or a folder with no file.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(
                f"{root}: not a video file (expected one of {', '.join(sorted(VIDEO_SUFFIXES))}) or a folder"
            )
        inputs: list[InputSequence] = []
        rejected: list[Rejected] = []
        _add_video(root, root.name, inputs, rejected)
        return inputs, rejected
    excluded = {os.path.realpath(p) for p in exclude}
    inputs, rejected = [], []
    seen_any = False
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        if os.path.realpath(here) in excluded or (here != root and (here / RUN_MARKER).exists()):
            subfolders[:] = []
            continue
        subfolders[:] = sorted(d for d in subfolders if os.path.realpath(here / d) not in excluded)
        frames = []
        for name in sorted(files):
            path = here / name
            relative = path.relative_to(root).as_posix()
            if os.path.realpath(path) in excluded:
                continue
            seen_any = True
            suffix = path.suffix.lower()
            if not path.is_file():
                rejected.append(Rejected(shown_name(relative), "", "not a regular file or a broken link"))
            elif suffix in VIDEO_SUFFIXES:
                _add_video(path, shown_name(relative), inputs, rejected)
            elif suffix in IMAGE_SUFFIXES:
                frames.append(path)
            else:
                rejected.append(
                    Rejected(shown_name(relative), "", f"not a video or image file ({suffix or 'no suffix'})")
                )
        if frames:
            relative = here.relative_to(root).as_posix() if here != root else root.name
            try:
                contents = [(p.name, _digest(p)) for p in frames]
            except OSError as exc:
                rejected.append(Rejected(shown_name(relative), "", f"unreadable frame ({exc.strerror})"))
                continue
            key = _key("seq", relative, contents)
            inputs.append(InputSequence(here, shown_name(relative), key, len(frames), tuple(frames)))
    if not seen_any:
        raise InputError(f"{root}: the folder holds no files")
    inputs.sort(key=lambda s: s.relative)
    rejected.sort(key=lambda r: r.relative)
    return inputs, rejected


def _add_video(path: Path, relative: str, inputs: list[InputSequence], rejected: list[Rejected]) -> None:
    try:
        size = path.stat().st_size
        content = _digest(path) if size else b""
    except OSError as exc:
        rejected.append(Rejected(relative, "", f"unreadable file ({exc.strerror})"))
        return
    if not size:
        rejected.append(Rejected(relative, "", EMPTY_FILE))
        return
    inputs.append(
        InputSequence(path, relative, _key("vid", relative, [("", content)]), declared_frames(path))
    )


def sequence_backend(
    backend: NativeBackend | DockerBackend, multi: bool, live_progress: bool = True
) -> NativeBackend | DockerBackend:
    """The same backend running ``FeatureExtraction`` (or ``FaceLandmarkVidMulti``) on sequences.

    A native backend's binary names ``FaceLandmarkImg``; the sequence tools sit beside it
    (OpenFace builds all of them into one ``bin/`` folder). With ``live_progress`` native calls
    run under ``stdbuf -o0`` where coreutils has it (``unbuffered``); the benchmark's bare calls
    run without it.
    """
    tool = sequence_tool(multi)
    if isinstance(backend, NativeBackend):
        binary = str(Path(backend.binary).with_name(tool)) if backend.binary else None
        live = live_progress and shutil.which("stdbuf")
        build = unbuffered(sequence_command) if live else sequence_command
        return NativeBackend(binary, backend.extra, backend.timeout_s, build=build)
    return DockerBackend(
        backend.image,
        backend.extra,
        backend.progress,
        backend.timeout_s,
        backend.mem_limit,
        backend.pids_limit,
        executable=tool,
        build=sequence_command,
    )


def unbuffered(build: CommandBuilder) -> CommandBuilder:
    """``build`` under coreutils' ``stdbuf -o0``: OpenFace's progress (``0% 10% … 100%``, on
    stdout) then reaches the worker's log as it is printed, not at the end (a file is block
    buffered), so the progress bar can follow a long video."""

    def command(executable: str, in_dir: str, out_dir: str, extra: Sequence[str] = ()) -> list[str]:
        return ["stdbuf", "-o0", *build(executable, in_dir, out_dir, extra)]

    return command


def progress_share(log: Path, offset: int) -> float:
    """The last ``N%`` OpenFace printed to ``log`` after byte ``offset``, as a share (0-1); 0 if none."""
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            found = PROGRESS.findall(handle.read())
    except OSError:
        return 0.0
    return min(1.0, int(found[-1]) / 100) if found else 0.0


def parse_sequence_csv(path: Path) -> pd.DataFrame:
    """One OpenFace sequence CSV as ``frame, face_id, timestamp, confidence, success``, AU columns
    and, where OpenFace wrote 2D landmarks (``-2Dfp``), the face box ``face_x, face_y, face_w,
    face_h``: their bounding box in pixels of the video frame, not clipped to it (a face partly
    outside the frame has landmarks beyond its edge); NaN (no box) where ``success`` is 0.
    With the landmarks also the geometric concepts (``parse.landmark_measures``), NaN where
    ``success`` is 0.

    Raises:
        OutputError: unreadable, a missing column, non-numeric values, values out of the
            AU table's ranges (``parse.check_ranges``), ``success`` not 0/1.
    """
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise OutputError(path, f"unreadable OpenFace CSV ({' '.join(str(exc).split())})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    meta = list(SEQUENCE_META[1:])
    missing = [c for c in (*meta, *AU_R_COLUMNS) if c not in frame]
    if missing:
        raise OutputError(path, f"OpenFace CSV lacks column(s) {', '.join(missing)}")
    wanted = [*meta, *AU_R_COLUMNS, *[c for c in AU_C_COLUMNS if c in frame]]
    numbers = numeric(frame, wanted).reset_index(drop=True)
    if numbers.isna().any().any():
        raise OutputError(path, "non-numeric values in OpenFace CSV")
    check_ranges(numbers, path)
    bad = numbers.index[~numbers["success"].isin((0, 1))]
    if len(bad):
        raise OutputError(
            path, f"success = {numbers.at[bad[0], 'success']:g} in row {bad[0] + 1}, not 0 or 1"
        )
    numbers = numbers.astype({"frame": int, "face_id": int, "success": int})
    measures = landmark_measures(frame.reset_index(drop=True), path)
    if measures is not None:
        boxes, concepts = measures
        failed = numbers["success"] == 0  # a failed fit has no box and no measures
        boxes.loc[failed, list(BOX_COLUMNS)] = np.nan
        concepts.loc[failed] = np.nan
        numbers = pd.concat([numbers, boxes, concepts], axis=1)
    return numbers


def run_sequences(
    in_path: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    backend: NativeBackend | DockerBackend,
    multi: bool = False,
    workers: int | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    scheduler: str | None = None,
) -> VideoRunSummary:
    """OpenFace over every video and image sequence of ``in_path``; the sequence AU table to ``out_csv``.

    Args:
        in_path: a video file, or a folder of videos and/or image-sequence folders.
        out_csv: the table; failures go to ``<name>.failures.csv`` (``video, reason``).
        backend: an image backend (``make_backend``); its sequence twin is made here.
        multi: ``FaceLandmarkVidMulti`` (several faces) instead of ``FeatureExtraction``.
        workers: inputs processed in parallel (>= 1; default: CPU count).
        run_dir: work folder (default ``<out_csv>.run/``).
        progress: a progress bar in frames (declared frames of each input, counted as it ends).
        scheduler: None (local workers), ``local:N`` or a Dask scheduler address: each input
            is then a Dask task (``openface_runner.cluster``; ``workers`` is ignored).

    Raises:
        InputError: missing input, unusable output location, run folder in use.
        BackendError: OpenFace cannot be started.
        ValueError: ``workers`` below 1.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    started = time.perf_counter()
    out_csv = Path(os.path.abspath(out_csv))
    check_output_location(out_csv)
    folders = RunFolders(Path(run_dir) if run_dir else out_csv.with_name(out_csv.name + ".run"))
    tool_backend = sequence_backend(backend, multi)
    with folders.lock():
        return _run_locked(
            Path(in_path), out_csv, tool_backend, multi, folders, workers, progress, started, scheduler
        )


def _run_locked(
    in_path: Path,
    out_csv: Path,
    backend: NativeBackend | DockerBackend,
    multi: bool,
    folders: RunFolders,
    workers: int | None,
    progress: bool,
    started: float,
    scheduler: str | None = None,
) -> VideoRunSummary:
    own = (folders.root, out_csv, failures_path(out_csv))
    inputs, rejected = discover_sequences(in_path, exclude=own)
    done_dir = folders.root / "done"
    done_dir.mkdir(parents=True, exist_ok=True)
    check_settings(
        folders.root,
        {"tool": sequence_tool(multi), "openface_flags": list(AU_FLAGS), "openface_args": backend.extra},
    )

    pending = [s for s in inputs if not (done_dir / f"{s.key}.done").exists()]
    if pending and (scheduler is None or scheduler.startswith("local:")):
        backend.check(folders)  # on a remote cluster each worker checks its own OpenFace
    workers = max(1, min(workers or os.cpu_count() or 1, len(pending) or 1))
    if pending and scheduler is not None:
        from openface_runner.cluster import process_sequences

        call_failures, calls, failed_calls, openface_s, workers = process_sequences(
            scheduler, pending, backend, sequence_tool(multi), folders, done_dir, progress
        )
    elif pending:
        call_failures, calls, failed_calls, openface_s = _process(
            pending, backend, sequence_tool(multi), folders, done_dir, workers, progress
        )
    else:
        call_failures, calls, failed_calls, openface_s = {}, 0, 0, 0.0

    failures: list[dict[str, str]] = [{"video": r.relative, "reason": r.reason} for r in rejected]
    tables: list[pd.DataFrame] = []
    keys: list[str] = []  # the input of each table
    with_rows = 0
    for sequence in inputs:
        reason = call_failures.get(sequence.key) or _outcome(sequence, done_dir, folders)
        if isinstance(reason, str):
            failures.append({"video": sequence.relative, "reason": reason})
            continue
        table, note = reason
        tables.append(table.assign(video=sequence.relative))
        keys.append(sequence.key)
        with_rows += 1
        if note:
            failures.append({"video": sequence.relative, "reason": note})
    failure_rows = pd.DataFrame(sorted(failures, key=lambda r: r["video"]), columns=FAILURE_COLUMNS)
    accounted = {f["video"] for f in failures} | {t["video"].iloc[0] for t in tables}
    expected = {s.relative for s in inputs} | {r.relative for r in rejected}
    if accounted != expected:
        raise InvariantError(f"inputs {sorted(expected ^ accounted)} are neither in the table nor failed")
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if not table.empty:
        write_sequence_table(table, out_csv)
    write_csv(failures_path(out_csv), failure_rows)
    now = {s.key for s in pending}
    summary = VideoRunSummary(
        inputs=len(inputs) + len(rejected),
        with_rows=with_rows,
        frames=len(table),
        failures=len(failure_rows),
        reasons=failure_rows["reason"].value_counts().to_dict(),
        processed_now=len(pending),
        frames_now=sum(len(t) for key, t in zip(keys, tables, strict=True) if key in now),
        seconds=time.perf_counter() - started,
        table=out_csv,
        failures_file=failures_path(out_csv),
        run_dir=folders.root,
        workers=workers,
        calls=calls,
        failed_calls=failed_calls,
        openface_seconds=openface_s,
    )
    if table.empty:
        summary.notes.append("no input gave a face in any frame: no AU table was written")
    return summary


def _outcome(
    sequence: InputSequence, done_dir: Path, folders: RunFolders
) -> str | tuple[pd.DataFrame, str | None]:
    """A processed input's failure reason, or its rows and an optional truncation note."""
    csv = done_dir / f"{sequence.key}.csv"
    if not csv.exists():
        return NOT_OPENED.format(log=folders.logs)
    try:
        rows = parse_sequence_csv(csv)
    except OutputError as exc:
        return f"unusable OpenFace output: {exc.problem}"
    if rows.empty or not rows["success"].any():
        return NO_FACE
    read = int(rows["frame"].nunique())
    missing = sequence.frames - read
    note = None
    if sequence.is_video and missing > max(MISSING_FRAMES_OK, MISSING_SHARE_OK * sequence.frames):
        note = (
            f"{TRUNCATED}OpenFace read {read} of the {sequence.frames} frames its header "
            f"declares; the {read} read are in the table"
        )
    return rows, note


def _process(
    pending: list[InputSequence],
    backend: NativeBackend | DockerBackend,
    tool: str,
    folders: RunFolders,
    done_dir: Path,
    workers: int,
    progress: bool,
) -> tuple[dict[str, str], int, int, float]:
    """Each input one OpenFace call, ``workers`` at a time (one backend session per worker).

    A call that ends normally moves its outputs to ``done/`` and marks the input done
    (``<key>.done``, written last); a failed call (exit code, signal, time limit, backend
    error) leaves nothing there, so the next run retries it. Ctrl-C or SIGTERM stops the
    running calls (``backend.cancel()``) and propagates. Each worker's OpenFace is confined to
    its own CPUs when there are no more workers than CPUs (``runner.cpu_shares``).

    Returns:
        ``(reason per failed input key, calls run, calls failed, seconds in OpenFace calls)``.
    """
    from tqdm.auto import tqdm

    queue = list(pending)
    lock = threading.Lock()
    stop = threading.Event()
    failures: dict[str, str] = {}
    counts = {"calls": 0, "failed": 0, "seconds": 0.0}
    bar = tqdm(
        total=sum(s.frames for s in pending),
        desc=f"OpenFace {tool} ({backend.name}, {workers} workers)",
        unit="frame",
        disable=not progress,
    )

    shares = cpu_shares(workers)

    def work(worker: int) -> None:
        with backend.session(worker, folders, cpus=shares[worker] if shares else None) as process:
            while not stop.is_set():
                with lock:
                    if not queue:
                        return
                    sequence = queue.pop(0)
                name = sequence.batch
                _stage_call(folders, sequence, name)
                log = folders.log(worker)
                offset = log.stat().st_size if log.exists() else 0
                shown = [0]  # frames of this input already on the bar
                ended = threading.Event()

                watcher = threading.Thread(
                    target=_follow, args=(log, offset, sequence.frames, ended, shown, bar, lock), daemon=True
                )
                watcher.start()
                called = time.perf_counter()
                try:
                    code = process(name)
                    reason = exit_reason(code, backend.timeout_s, log) if code else None
                except BackendError as exc:
                    reason = f"OpenFace could not run ({exc}); see {log}"
                finally:
                    ended.set()
                    watcher.join()
                if stop.is_set():
                    return
                _end_call(folders, done_dir, sequence, name, reason)
                with lock:
                    counts["calls"] += 1
                    counts["seconds"] += time.perf_counter() - called
                    if reason:
                        counts["failed"] += 1
                        failures[sequence.key] = reason
                    bar.update(max(0, sequence.frames - shown[0]))

    pool = ThreadPoolExecutor(workers)
    try:
        for future in [pool.submit(work, w) for w in range(workers)]:
            future.result()
    except BaseException:
        stop.set()
        backend.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
    return failures, counts["calls"], counts["failed"], counts["seconds"]


def _stage_call(folders: RunFolders, sequence: InputSequence, name: str) -> None:
    """Fresh ``batches/<name>/`` (the input, linked) and ``outputs/<name>/`` for one call."""
    in_dir, out_dir = folders.batches / name, folders.outputs / name
    for folder in (in_dir, out_dir):
        shutil.rmtree(folder, ignore_errors=True)  # a killed run's partial call
        folder.mkdir(parents=True)
    if sequence.is_video:
        link(sequence.path, in_dir / name)
    else:
        for frame in sequence.files:
            link(frame, in_dir / frame.name)


def _end_call(
    folders: RunFolders, done_dir: Path, sequence: InputSequence, name: str, reason: str | None
) -> None:
    """After a call: on success its outputs to ``done/`` and the ``.done`` mark (last); folders removed."""
    in_dir, out_dir = folders.batches / name, folders.outputs / name
    if reason is None:
        stem = Path(name).stem if sequence.is_video else name
        for suffix in (".csv", "_of_details.txt"):
            produced = out_dir / f"{stem}{suffix}"
            if produced.exists():
                os.replace(produced, done_dir / f"{sequence.key}{suffix}")
        (done_dir / f"{sequence.key}.done").write_text(f"{sequence.relative}\n", encoding="utf-8")
    shutil.rmtree(in_dir, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)


def run_sequence(
    backend: NativeBackend | DockerBackend,
    process: Callable[[str], int],
    folders: RunFolders,
    worker: int | str,
    done_dir: Path,
    sequence: InputSequence,
    attempt: str,
) -> str | None:
    """One OpenFace call over ``sequence`` in folders of its own (``<key>-<attempt>``), as a
    Dask task does (``openface_runner.cluster``); the failure reason, None on success."""
    suffix = sequence.path.suffix.lower() if sequence.is_video else ""
    name = f"{sequence.key}-{attempt}{suffix}"
    _stage_call(folders, sequence, name)
    log = folders.log(worker)  # type: ignore[arg-type]
    try:
        code = process(name)
        reason = exit_reason(code, backend.timeout_s, log) if code else None
    except BackendError as exc:
        reason = f"OpenFace could not run ({exc}); see {log}"
    _end_call(folders, done_dir, sequence, name, reason)
    return reason


def _follow(
    log: Path, offset: int, frames: int, ended: threading.Event, shown: list[int], bar, lock: threading.Lock
) -> None:
    """Until ``ended``: move ``bar`` to the frames OpenFace reports done in ``log`` (native backend).

    ``shown[0]`` holds the frames of this input already on the bar (shared with the worker)."""
    while not ended.wait(POLL_S):
        reached = int(progress_share(log, offset) * frames)
        with lock:
            if reached > shown[0]:
                bar.update(reached - shown[0])
                shown[0] = reached
