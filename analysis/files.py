"""Atomic file output: a reader never sees a half-written results file."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.results import UnwritableError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only on success.

    The temporary file lives in the same folder so that ``os.replace`` is atomic;
    on an exception it is removed and ``path`` is left as it was.

    Raises:
        UnwritableError: the folder cannot be written (read-only, full, no permission): one line
            naming the file.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise _unwritable(target, error) from None
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
    try:
        try:
            yield tmp
            os.replace(tmp, target)
        except OSError as error:  # a full disk while writing: the file keeps its previous content
            raise _unwritable(target, error) from None
    finally:
        tmp.unlink(missing_ok=True)


def _unwritable(target: Path, error: OSError) -> UnwritableError:
    reason = (error.strerror or str(error)).lower()
    return UnwritableError(f"{target}: cannot write it ({reason}); it was left as it was", reason)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON atomically (NaN is written as ``null``)."""
    write_text(path, json.dumps(_json_safe(data), indent=2, allow_nan=False) + "\n")


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame, index: bool = False) -> None:
    """Write a DataFrame as CSV atomically; a ``.gz`` path is gzipped reproducibly (no time or name)."""
    with atomic_path(path) as tmp:
        if str(path).endswith(".gz"):
            tmp.write_bytes(gzip.compress(frame.to_csv(index=index).encode("utf-8"), mtime=0))
        else:
            frame.to_csv(tmp, index=index)


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value
