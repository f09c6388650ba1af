"""Results folders written as a unit: staged beside, swapped in, checked by a manifest.

Every stage writes its machine-readable results under ``reports/<stage>/``. A run killed
while writing must never leave a mix of two runs, so a stage writes into a staging folder
beside the target and swaps it in at the end, with ``manifest.json`` listing the SHA-256 of
every file. Report commands call :func:`verify_results` before they render: a missing,
truncated, changed or foreign file is an error naming the file, never a page.

The run id is derived from the files' hashes: the same files give the same manifest (a
stage that records its timings in ``metrics.json`` gets a new run id each run).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


class ResultsError(Exception):
    """A results folder is missing, incomplete or does not match its manifest."""


class UnwritableError(ResultsError):
    """A file or folder cannot be written (read-only, a full disk, no permission); ``reason``:
    the system's words (``no space left on device``)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def results_unit(folder: str | os.PathLike[str], stage: str) -> Iterator[Path]:
    """Yield an empty staging folder; on success, write its manifest and swap it onto ``folder``.

    Args:
        folder: the results folder, e.g. ``reports/logit``; replaced as a whole.
        stage: the stage's name, recorded in the manifest (``fit-logit``, ``compare`` ...).

    On an exception the staging folder is removed and ``folder`` is left as it was.
    Leftovers of a killed earlier run (hidden ``.<name>.*.new`` / ``.old`` folders) are removed.

    Raises:
        ResultsError: ``folder`` or its parent cannot be written (read-only, a full disk, no
            permission): checked before the caller's work where it can be, else when writing or
            swapping; one line naming the folder, nothing partial or hidden left behind.
    """
    target = Path(folder)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("new", "old"):
            for stale in target.parent.glob(f".{target.name}.*.{suffix}"):
                shutil.rmtree(stale, ignore_errors=True)
        check_writable(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent))
    except OSError as error:
        raise _unwritable(target, error) from None
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        try:
            yield staging
            _write_manifest(staging, stage)
        except UnwritableError as error:  # a full disk while writing the files
            raise _unwritable(target, error.reason) from None
        except OSError as error:
            raise _unwritable(target, error) from None
        _swap(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def check_writable(folder: str | os.PathLike[str]) -> None:
    """Fail now, before any work, where ``folder`` (a results folder, replaced as a whole)
    could not be swapped in: its parent, or the folder itself when it exists, is not writable
    (a read-only file system or folder; a directory is moved only by who can write it).

    Raises:
        ResultsError: one line naming the folder.
    """
    target = Path(folder)
    for path in (target.parent, target) if target.exists() else (target.parent,):
        if path.exists() and not os.access(path, os.W_OK):
            raise _unwritable(target, "read-only file system" if _read_only_fs(path) else "permission denied")


def _swap(staging: Path, target: Path) -> None:
    """Move ``staging`` onto ``target``; on failure ``target`` is as it was and no ``.old`` stays."""
    if not target.exists():
        try:
            os.replace(staging, target)
        except OSError as error:
            raise _unwritable(target, error) from None
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    try:
        os.replace(target, old / "previous")
    except OSError as error:
        shutil.rmtree(old, ignore_errors=True)
        raise _unwritable(target, error) from None
    try:
        os.replace(staging, target)
    except OSError as error:
        os.replace(old / "previous", target)  # put the previous results back
        shutil.rmtree(old, ignore_errors=True)
        raise _unwritable(target, error) from None
    shutil.rmtree(old, ignore_errors=True)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _unwritable(target: Path, error: OSError | str) -> UnwritableError:
    reason = (error if isinstance(error, str) else error.strerror or str(error)).lower()
    return UnwritableError(
        f"{target}: cannot write the results ({reason}); nothing was changed there: free space or "
        "make the folder writable, or choose another with OUT=",
        reason,
    )


def verify_results(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Check every file of a results folder against its manifest; return the manifest.

    Raises:
        ResultsError: the folder or its manifest is missing or unreadable, a listed file is
            missing or its SHA-256 differs (truncated, edited, from another run), or a file
            not in the manifest is present. The message names the folder and the file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ResultsError(f"{root}: no results folder; run the stage that writes it first")
    path = root / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except FileNotFoundError:
        raise ResultsError(
            f"{root}: no {MANIFEST}; the results are incomplete or were written by an older "
            "version; run the stage again"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ResultsError(f"{path}: unreadable manifest ({error}); run the stage again") from None
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {MANIFEST}
    for name, expected in sorted(files.items()):
        if name not in present:
            raise ResultsError(f"{root / name}: listed in {MANIFEST} but missing; run the stage again")
        if file_sha256(root / name) != expected:
            raise ResultsError(
                f"{root / name}: does not match {MANIFEST} (truncated, edited or from another run); "
                "run the stage again"
            )
    foreign = sorted(present - set(files))
    if foreign:
        raise ResultsError(
            f"{root / foreign[0]}: not written by run {manifest.get('run_id')}; "
            "remove it or run the stage again"
        )
    return manifest


def _write_manifest(folder: Path, stage: str) -> None:
    files = {
        p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }
    run_id = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    manifest = {"stage": stage, "run_id": run_id, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
