"""OpenFace command lines, built in one place for both backends.

``FaceLandmarkImg`` processes still images: ``-fdir <folder>`` runs every image of a
folder, ``-out_dir <folder>`` receives ``<stem>.csv`` (one row per face) and
``<stem>_of_details.txt`` per image, and ``-aus`` restricts the output to Action Units
(intensities ``AU*_r`` 0-5 and presences ``AU*_c``); ``-2Dfp`` adds the 68 2D landmarks
(``x_0..x_67, y_0..y_67``, pixels of the image read), whose bounding box is the face box of
the AU table. Image mode always uses OpenFace's
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
AU_FLAGS: tuple[str, ...] = ("-aus", "-2Dfp")
"""Output flags of every OpenFace call (both tools, both backends); recorded in a run folder's
``settings.json`` (``openface_flags``) so that outputs made with other flags are not mixed."""


def split_extra(extra: str | Sequence[str] | None) -> list[str]:
    """User-supplied extra arguments (``"-mloc model/main_clnf_general.txt"``) as a list."""
    if extra is None:
        return []
    return shlex.split(extra) if isinstance(extra, str) else list(extra)


def face_landmark_img(executable: str, in_dir: str, out_dir: str, extra: Sequence[str] = ()) -> list[str]:
    """The full ``FaceLandmarkImg`` command for one input folder.

    Returns:
        ``[executable, "-fdir", in_dir, "-out_dir", out_dir, "-aus", "-2Dfp", *extra]``.
    """
    return [executable, "-fdir", in_dir, "-out_dir", out_dir, *AU_FLAGS, *extra]


# Sequences (videos and folders of frames): ``FeatureExtraction`` follows one face with the
# dynamic AU models and person-specific normalisation (each AU's neutral level estimated over
# the whole sequence); ``FaceLandmarkVidMulti`` follows several faces. Both read a video with
# ``-f <file>`` or an image sequence with ``-fdir <folder>`` and write ``<stem>.csv`` (one row
# per frame and face) and ``<stem>_of_details.txt``. OpenFace wiki, "Command line arguments"
# and "Action Units" (dynamic models, person-specific calibration).
FEATURE_EXTRACTION = "FeatureExtraction"
VID_MULTI = "FaceLandmarkVidMulti"
VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".m4v", ".mov", ".mkv", ".wmv", ".mpg", ".mpeg", ".webm", ".flv"})


def sequence_tool(multi: bool) -> str:
    """``FaceLandmarkVidMulti`` when several faces are to be followed, else ``FeatureExtraction``."""
    return VID_MULTI if multi else FEATURE_EXTRACTION


def sequence_command(executable: str, in_dir: str, out_dir: str, extra: Sequence[str] = ()) -> list[str]:
    """The OpenFace command for one sequence staged in ``in_dir``.

    A folder named like a video file (``vid_<key>.avi``) holds that one video (``-f
    in_dir/<name>``); any other folder is an image sequence (``-fdir in_dir``). OpenFace names
    its outputs after the file's stem or the folder's name.
    """
    name = in_dir.rstrip("/").rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    source = ["-f", f"{in_dir}/{name}"] if suffix in VIDEO_SUFFIXES else ["-fdir", in_dir]
    return [executable, *source, "-out_dir", out_dir, *AU_FLAGS, *extra]
