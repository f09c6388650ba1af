"""Find the inputs of a run: every entry below the input folder becomes an image or a rejection.

Nothing is skipped silently: hidden files are inputs like any other; a dangling symbolic link,
a FIFO, a socket or a device, a file that cannot be read and a name that cannot go into a UTF-8
CSV (not valid UTF-8, or holding a control character such as ``\\r``) are each rejected with
the reason. Symbolic links to folders are followed unless they lead back into a folder being
walked (a loop). FIFOs are never opened (reading one would block the run).

The run's own outputs are the exception: paths passed as ``exclude`` (the run folder, the table
and its failures file when ``OUT`` lies inside ``IN``) and any folder holding a run marker
(``openface_runner.folders.RUN_MARKER``) are not inputs.

An image's ``key`` names it in OpenFace's folders; it is derived from its path *and* its
content (SHA-256), so an image replaced under the same name is processed again on resume.
"""

from __future__ import annotations

import hashlib
import os
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from analysis.labels import name_for
from openface_runner.errors import InputError, StageError
from openface_runner.folders import RUN_MARKER
from openface_runner.staging import stage, upscale_factor

__all__ = [
    "IMAGE_SUFFIXES",
    "InputError",
    "InputImage",
    "Rejected",
    "StageError",
    "discover",
    "shown_name",
    "stage",
    "upscale_factor",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
NOT_UTF8 = "file name is not valid UTF-8"
CONTROL_CHARACTER = "file name holds a control character"
BROKEN_LINK = "broken symbolic link (its target does not exist)"
LINK_LOOP = "symbolic link to a folder that contains it (a loop): not followed"
_KINDS = {
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


@dataclass(frozen=True)
class InputImage:
    """One input file: where it is, its name in the table, its label and its staging key."""

    path: Path
    relative: str  # posix path below the input folder, the AU table's ``image``
    label: str  # workbench emotion from the first-level folder, or "" for a flat folder
    key: str  # ASCII name in OpenFace's folders, from the path and the content's SHA-256


class Rejected(NamedTuple):
    """An input that is not processed: its name as shown (escaped), label and reason."""

    relative: str
    label: str
    reason: str


def shown_name(relative: str) -> str:
    """A file name fit for a UTF-8 CSV: invalid bytes as ``\\xff``, control characters as ``\\r``."""
    text = os.fsencode(relative).decode("utf-8", "backslashreplace")
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) == "Cc" else c for c in text
    )


def _name_problem(relative: str) -> str | None:
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return NOT_UTF8
    if any(unicodedata.category(c) == "Cc" for c in relative):
        return CONTROL_CHARACTER
    return None


def _content_key(path: Path, relative: str) -> str:
    """``img_`` + 24 hex digits of SHA-256(path below IN, content's SHA-256).

    Raises:
        OSError: the file cannot be read.
    """
    # O_NONBLOCK: should the file have become a FIFO since it was listed, open() returns at once.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        content = hashlib.file_digest(handle, "sha256").digest()
    return "img_" + hashlib.sha256(os.fsencode(relative) + b"\0" + content).hexdigest()[:24]


def discover(
    root: str | os.PathLike[str], exclude: Iterable[str | os.PathLike[str]] = ()
) -> tuple[list[InputImage], list[Rejected]]:
    """List every entry below ``root`` (recursively, sorted) as an image or a rejection.

    An image's label is its first-level folder's name when that names an emotion
    (``happy/``, ``Angry/``, ``nutral/``), else empty.

    Args:
        root: the input folder.
        exclude: files or folders that are not inputs (the run's own outputs).

    Returns:
        ``(images, rejected)``; every entry is in exactly one of them.

    Raises:
        InputError: the folder is missing, is not a folder, or holds no files.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    excluded = {os.path.realpath(p) for p in exclude}
    images: list[InputImage] = []
    rejected: list[Rejected] = []

    def label_of(parts: tuple[str, ...]) -> str:
        return (name_for(parts[0], "name") or "") if len(parts) > 1 else ""

    def walk(folder: Path, parts: tuple[str, ...], ancestors: frozenset[str]) -> None:
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            reason = f"unreadable folder ({exc.strerror})"
            rejected.append(Rejected(shown_name("/".join(parts) or "."), label_of(parts), reason))
            return
        if parts and any(e.name == RUN_MARKER for e in entries):
            return  # another run folder of this runner
        for entry in entries:
            _entry(Path(entry.path), (*parts, entry.name), ancestors)

    def _entry(path: Path, parts: tuple[str, ...], ancestors: frozenset[str]) -> None:
        relative = "/".join(parts)
        label = label_of(parts)
        real = os.path.realpath(path)
        if real in excluded:
            return
        try:
            info = path.stat()  # follows links
        except FileNotFoundError:
            rejected.append(Rejected(shown_name(relative), label, BROKEN_LINK))
            return
        except OSError as exc:
            rejected.append(Rejected(shown_name(relative), label, f"cannot be read ({exc.strerror})"))
            return
        if stat.S_ISDIR(info.st_mode):
            if real in ancestors:
                rejected.append(Rejected(shown_name(relative), label, LINK_LOOP))
            else:
                walk(path, parts, ancestors | {real})
            return
        problem = _name_problem(relative)
        if problem:
            rejected.append(Rejected(shown_name(relative), label, problem))
        elif not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "special file")
            rejected.append(Rejected(relative, label, f"not a regular file ({kind})"))
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            rejected.append(Rejected(relative, label, f"not an image file ({path.suffix or 'no suffix'})"))
        else:
            try:
                images.append(InputImage(path, relative, label, _content_key(path, relative)))
            except OSError as exc:
                rejected.append(Rejected(relative, label, f"unreadable file ({exc.strerror})"))

    walk(root, (), frozenset({os.path.realpath(root)}))
    if not images and not rejected:
        raise InputError(f"{root}: the folder holds no files")
    images.sort(key=lambda i: i.relative)
    rejected.sort(key=lambda r: r.relative)
    return images, rejected
