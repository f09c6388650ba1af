"""OpenFace command lines, built in one place for both backends.

``FaceLandmarkImg`` processes still images: ``-fdir <folder>`` runs every image of a
folder, ``-out_dir <folder>`` receives ``<stem>.csv`` (one row per face) and
``<stem>_of_details.txt`` per image, and ``-aus`` restricts the output to Action Units
(intensities ``AU*_r`` 0-5 and presences ``AU*_c``). Image mode always uses OpenFace's
static AU models. Source: OpenFace wiki, "Command line arguments" and "Action Units"
(https://github.com/TadasBaltrusaitis/OpenFace/wiki/Command-line-arguments,
https://github.com/TadasBaltrusaitis/OpenFace/wiki/Action-Units).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

EXECUTABLE = "FaceLandmarkImg"
# Where the algebr/openface image keeps its binaries (the seed project ran them from here).
DOCKER_BIN_DIR = "/home/openface-build/build/bin"
AU_FLAGS: tuple[str, ...] = ("-aus",)


def split_extra(extra: str | Sequence[str] | None) -> list[str]:
    """User-supplied extra arguments (``"-mloc model/main_clnf_general.txt"``) as a list."""
    if extra is None:
        return []
    return shlex.split(extra) if isinstance(extra, str) else list(extra)


def face_landmark_img(executable: str, in_dir: str, out_dir: str, extra: Sequence[str] = ()) -> list[str]:
    """The full ``FaceLandmarkImg`` command for one input folder.

    Returns:
        ``[executable, "-fdir", in_dir, "-out_dir", out_dir, "-aus", *extra]``.
    """
    return [executable, "-fdir", in_dir, "-out_dir", out_dir, *AU_FLAGS, *extra]
