"""``make compare IN=<labelled folder>``: another labelled dataset, scored by the models trained on FER2013.

The faces of the new dataset become a :class:`compare.data.CompareData` whose ``train`` part is
FER2013 Training (what every model was fitted on) and whose ``test`` part is the new images, so
that :func:`compare.run.compute_comparison` scores them exactly as it scores FER2013 PrivateTest.

- **Images**: every image file below the folder (``IMAGE_SUFFIXES``), its path below the folder
  as ``image``. Its label is its first-level folder's name mapped by ``analysis.labels.name_for``
  (``anger``, ``sadness``, ``happiness``, ``nutral`` ...); a folder name that names no emotion
  (``contempt``) is reported as unknown and its images are left out; fear is left out (six
  classes, as on FER2013). A file that OpenCV cannot decode is left out and counted.
- **AUs**: the AU table of the OpenFace runner (``explain.openface.extract``: staged and cached
  in a run folder, so a rerun is quick) or a table made elsewhere (``AUS=``). An image with no
  row has no face for the AU models (an error end to end, as on FER2013).
- **What the CNNs see** (``CROP_RULE``, the same rule for every image): an image of exactly
  48x48 grey pixels is a FER2013-style face crop and is used whole; else the square crop around
  OpenFace's landmark box (``explain.faces.crop_face``); else, where OpenFace found no face, the
  largest face of OpenCV's Haar cascade (``cnn_baseline.predict.find_face``); else the whole
  image; each brought to 48x48 grey.
- **Subjects** (``SUBJECT=<regex>``): the regex is searched in each file name; its first group
  (else the whole match) is the subject. Checked on the folder listing before any work.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import LABEL, one_face_per_image, read_au_table
from analysis.labels import EMOTIONS, FEAR, name_for
from compare.data import CompareData, CompareError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SIDE = 48
CROP_RULE = (
    "an image of exactly 48×48 grey pixels is a face crop and is used whole; otherwise the square crop "
    "around OpenFace's 68-landmark box (1.4× its longer side, lifted by 0.12× its height, explain.faces); "
    "where OpenFace found no face, the largest face found by OpenCV's Haar cascade; where neither found "
    "one, the whole image. Every crop is made grey and brought to 48×48 (cv2.INTER_AREA)."
)
CROP_KINDS = ("whole 48x48 crop", "OpenFace landmarks", "Haar cascade", "whole image")


@dataclass
class DatasetInfo:
    """What the page says about the dataset (``metrics.json`` ``dataset``)."""

    name: str
    source: str
    n_files: int = 0
    unknown: dict[str, int] = field(default_factory=dict)  # folder name -> images left out
    n_fear: int = 0
    unreadable: list[str] = field(default_factory=list)
    crops: dict[str, int] = field(default_factory=dict)
    subject_regex: str | None = None
    n_subjects: int | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "n_files": self.n_files,
            "unknown_labels": self.unknown,
            "n_unknown": int(sum(self.unknown.values())),
            "n_fear": self.n_fear,
            "n_unreadable": len(self.unreadable),
            "unreadable_examples": self.unreadable[:5],
            "crops": self.crops,
            "crop_rule": CROP_RULE,
            "subject_regex": self.subject_regex,
            "n_subjects": self.n_subjects,
        }


def safe_name(text: str) -> str:
    """A dataset name usable in a file name (``compare-<name>.html``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._-")[:60]
    return name or "dataset"


def list_images(folder: Path) -> list[str]:
    """Image files below ``folder`` (sorted, paths relative to it, ``/``-separated; hidden ones and
    run folders left out)."""
    out = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(p.startswith(".") or p.endswith(".run") for p in relative.parts):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            out.append(relative.as_posix())
    return out


def raw_label(image: str) -> str:
    """The first-level folder's name of a path below the dataset folder ("" for a flat file)."""
    parts = Path(image).parts
    return parts[0] if len(parts) > 1 else ""


def check_folder(folder: Path, subject: str | None) -> tuple[list[str], dict[str, str]]:
    """The images of ``folder`` with a six-class label, and their subjects; checked before any work.

    Raises:
        CompareError: no such folder, no image, no image with a known label, one class only,
            a ``subject`` regex that does not compile, misses a file name or finds one subject.
    """
    if not folder.is_dir():
        raise CompareError(
            f"{folder}: no such folder (IN= or IMAGES= must be a folder of emotion subfolders)"
        )
    images = list_images(folder)
    if not images:
        raise CompareError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) below it")
    labels = {i: name_for(raw_label(i), "name") for i in images}
    known = [i for i in images if labels[i] in EMOTIONS]
    if not known:
        names = sorted({raw_label(i) or "(no subfolder)" for i in images})
        raise CompareError(
            f"{folder}: no image in a folder named after one of the six emotions "
            f"({', '.join(EMOTIONS)}); found: {', '.join(names[:8])}"
        )
    classes = sorted({labels[i] for i in known})
    if len(classes) < 2:
        raise CompareError(f"{folder}: only one emotion ({classes[0]}); a comparison needs at least two")
    return known, subjects_of(known, subject)


def subjects_of(images: list[str], subject: str | None) -> dict[str, str]:
    """``image -> subject`` by ``subject`` (a regex searched in the file name); {} without one.

    Raises:
        CompareError: the regex does not compile, does not match some file name, or finds
            fewer than two subjects.
    """
    if not subject:
        return {}
    try:
        pattern = re.compile(subject)
    except re.error as error:
        raise CompareError(f"SUBJECT={subject!r} is not a regular expression ({error})") from None
    out, missed = {}, []
    for image in images:
        match = pattern.search(Path(image).name)
        if match is None:
            missed.append(image)
            continue
        out[image] = match.group(1) if pattern.groups else match.group(0)
    if missed:
        raise CompareError(
            f"SUBJECT={subject!r} matches {'no' if len(missed) == len(images) else len(missed)} of the "
            f"{len(images)} file names, e.g. {Path(missed[0]).name}"
        )
    if len(set(out.values())) < 2:
        raise CompareError(
            f"SUBJECT={subject!r} finds one subject ({next(iter(out.values()))!r}) in {len(images)} files; "
            "subject-level intervals need at least two"
        )
    return out


def load_dataset(
    table: Path,
    images: Path,
    train: pd.DataFrame,
    name: str,
    source: str,
    subject: str | None = None,
) -> tuple[CompareData, DatasetInfo]:
    """The new dataset's faces as ``CompareData`` (``train``: FER2013 Training AU rows).

    Raises:
        CompareError: see :func:`check_folder`; OpenFace found no face in any image; every
            image unreadable; the table's image names match no file.
        AUTableError: the AU table is not usable.
    """
    listed = list_images(images) if images.is_dir() else []
    known, subjects = check_folder(images, subject)
    info = DatasetInfo(name=name, source=source, n_files=len(listed), subject_regex=subject or None)
    unknown = Counter(
        raw_label(i) or "(no subfolder)" for i in listed if name_for(raw_label(i), "name") is None
    )
    info.unknown = dict(sorted(unknown.items()))
    info.n_fear = sum(name_for(raw_label(i), "name") == FEAR for i in listed)

    aus = _read_aus(table, set(known))
    if aus.empty:
        raise CompareError(
            f"OpenFace found no face in any of the {len(known)} labelled images of {images} "
            f"(no row of the AU table {table} names one of them; its 'image' column holds paths below the "
            "folder, e.g. happy/face1.jpg); nothing to compare"
        )
    test = pd.DataFrame({"image": known, LABEL: [name_for(raw_label(i), "name") for i in known]})
    test = test.join(aus.drop(columns=[LABEL], errors="ignore").set_index("image"), on="image")
    test.insert(2, "has_face", test["image"].isin(set(aus["image"])))
    if "confidence" not in test:
        test["confidence"] = np.nan

    pixels, kinds = [], []
    keep = np.ones(len(test), bool)
    for position, row in enumerate(test.itertuples(index=False)):
        face, kind = face_crop(images / row.image, row._asdict(), bool(row.has_face))
        if face is None:
            keep[position] = False
            info.unreadable.append(row.image)
            continue
        pixels.append(face)
        kinds.append(kind)
    test = test[keep].reset_index(drop=True)
    if test.empty:
        raise CompareError(f"{images}: OpenCV could not read any of the {len(known)} labelled images")
    test["crop"] = kinds
    info.crops = {k: int(sum(c == k for c in kinds)) for k in CROP_KINDS}
    groups = None
    if subjects:
        test["subject"] = [subjects[i] for i in test["image"]]
        info.n_subjects = int(test["subject"].nunique())
        groups = test["subject"].to_numpy()
        if info.n_subjects < 2:
            raise CompareError(f"SUBJECT={subject!r}: one subject left among the readable images")
    if test[LABEL].nunique() < 2:
        raise CompareError(f"{images}: only one emotion among the readable images; a comparison needs two")
    data = CompareData(train, test, np.stack(pixels)[..., None], groups=groups)
    return data, info


def _read_aus(table: Path, wanted: set[str]) -> pd.DataFrame:
    """The AU rows of ``wanted`` images (one face each), validated by ``read_au_table``; the label
    column is replaced by the folder names' emotions (a table's own labels may be empty or unknown)."""
    raw = pd.read_csv(table, dtype=str, keep_default_na=False)
    if "image" not in raw:
        raise CompareError(f"{table}: no 'image' column (paths below the image folder)")
    raw["image"] = [table_image(name, wanted) for name in raw["image"]]
    raw = raw[raw["image"].isin(wanted)].copy()
    if raw.empty:
        return pd.DataFrame(columns=["image", LABEL])
    raw = raw.drop(columns=[c for c in ("label", "emotion") if c in raw])
    raw.insert(1, LABEL, [name_for(raw_label(i), "name") for i in raw["image"]])
    found = raw[LABEL].value_counts()
    if len(found) < 2:  # the AU models would be scored on one class: nothing to compare
        raise CompareError(
            f"OpenFace found faces of one emotion only ({found.index[0]}: {int(found.iloc[0])} of the "
            f"{len(wanted)} labelled images); the AU models need faces of at least two emotions to compare"
        )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / table.name.removesuffix(".gz")
        raw.to_csv(path, index=False)
        try:
            aus = read_au_table(path, label_coding="name")
        except ValueError as error:  # AUTableError: name the user's file, not the copy
            raise type(error)(str(error).replace(str(path), str(table))) from None
    # every row is a face, success = 0 included, as in FER2013's comparison (data/fer2013_openface/)
    return one_face_per_image(aus.reset_index(drop=True)) if "confidence" in aus else aus


def table_image(name: str, wanted: set[str]) -> str:
    """The image of ``wanted`` an AU table's ``image`` value names: the value itself, byte for byte,
    where it is one (a file name may hold a ``\\``: ``a\\b.jpg`` is a file, not a folder); else,
    for a table written on Windows, the value with ``\\`` read as the folder separator; else the
    value unchanged (it names no labelled image)."""
    if name in wanted:
        return name
    posix = name.replace("\\", "/")
    return posix if posix in wanted else name


def face_crop(path: Path, row: dict, has_face: bool) -> tuple[np.ndarray | None, str]:
    """The 48x48 grey face the CNNs see (``CROP_RULE``) and how it was taken; None if unreadable."""
    import cv2

    from cnn_baseline.errors import CNNError
    from cnn_baseline.predict import find_face, is_fer_crop, read_grey
    from explain.faces import crop_face

    try:
        grey = read_grey(path)
    except (CNNError, ValueError, OSError):
        return None, ""
    if is_fer_crop(path, grey):
        return grey, CROP_KINDS[0]
    box = tuple(row.get(c, np.nan) for c in ("face_x", "face_y", "face_w", "face_h"))
    if has_face and all(pd.notna(v) for v in box):
        crop = crop_face(grey, box)
        if crop is not None:
            return crop, CROP_KINDS[1]
    try:
        face = find_face(grey)
        return cv2.resize(face, (SIDE, SIDE), interpolation=cv2.INTER_AREA), CROP_KINDS[2]
    except (CNNError, ValueError):
        return cv2.resize(grey, (SIDE, SIDE), interpolation=cv2.INTER_AREA), CROP_KINDS[3]
