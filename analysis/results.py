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
    """
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.new"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in target.parent.glob(f".{target.name}.*.old"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        yield staging
        _write_manifest(staging, stage)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "previous")
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


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
