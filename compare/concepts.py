"""The geometric concepts of every FER2013 face (``data/fer2013_openface/fer2013_concepts.csv.gz``).

The vendored OpenFace table (``data/fer2013_openface/``) was made before the runner measured the
concepts (``analysis.concepts``: distances between OpenFace's 2D landmarks, in inter-ocular
distances). ``make fer2013-concepts`` makes them: every FER2013 image written as a 48×48 PNG named
after its ``image`` stem, OpenFace through the runner (staged as the data team staged them:
192×192 bicubic plus a 48 px replicated border, ``-au_static``; resumable), and the table
``image`` + ``CONCEPT_COLUMNS`` (4 decimals) of the faces it found, gzipped reproducibly.
``make compare`` joins them to the AU rows by ``image`` (``compare.data.with_concepts``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.au_table import FER2013_CONCEPTS
from analysis.concepts import CONCEPT_COLUMNS
from analysis.files import write_csv

IMAGES = Path("data/openface/fer2013_images")
RUNNER_TABLE = IMAGES.parent / "fer2013_images_au.csv"
RUN_DIR = RUNNER_TABLE.with_name(RUNNER_TABLE.name + ".run")  # the runner's default: raw outputs kept
DIGITS = 4


def write_images(fer2013: str | Path, folder: Path = IMAGES) -> int:
    """Every FER2013 face as ``<folder>/<image>.png`` (48×48 grey, 0-255); existing files are
    kept (a rerun writes nothing new). Returns the number of images.

    Raises:
        FER2013Error: an unreadable FER2013 file (``cnn_baseline.data.load_fer2013``).
        CompareError: a row without an ``image`` stem (the join key).
    """
    import cv2

    from cnn_baseline.data import load_fer2013
    from compare.data import CompareError

    faces = load_fer2013(fer2013)
    if (faces["image"] == "").any():
        raise CompareError(f"{fer2013}: rows without an 'image' stem; the concepts are joined by it")
    folder.mkdir(parents=True, exist_ok=True)
    for name, pixels in zip(faces["image"], faces["pixels"], strict=True):
        path = folder / f"{name}.png"
        if not path.is_file():
            cv2.imwrite(str(path), pixels)
    return int(faces["image"].nunique())


def concept_table(au_table: str | Path) -> pd.DataFrame:
    """``image`` (the file stem) and the ``CONCEPT_COLUMNS`` of the runner's table ``au_table``,
    rows without concepts left out, rounded to ``DIGITS`` decimals, sorted by ``image``.

    Raises:
        CompareError: the table has no concept columns (a runner older than the concepts).
    """
    from compare.data import CompareError

    table = pd.read_csv(au_table, keep_default_na=True)
    missing = [c for c in ("image", *CONCEPT_COLUMNS) if c not in table]
    if missing:
        raise CompareError(f"{au_table}: no {', '.join(missing)}: run it again with this runner")
    table["image"] = [Path(name).stem for name in table["image"]]
    kept = table.dropna(subset=list(CONCEPT_COLUMNS))[["image", *CONCEPT_COLUMNS]]
    return kept.round(DIGITS).sort_values("image").reset_index(drop=True)


def build_concepts(fer2013: str | Path, backend, workers: int | None, out: Path = FER2013_CONCEPTS) -> dict:
    """Images, OpenFace (``openface_runner.runner.run_openface`` with ``backend``), the table.

    Returns:
        ``{"images", "faces", "path"}``.
    """
    from openface_runner.runner import run_openface

    images = write_images(fer2013)
    run_openface(IMAGES, RUNNER_TABLE, backend, workers=workers)
    concepts = concept_table(RUNNER_TABLE)
    write_csv(out, concepts)  # a .gz path: gzipped without a time stamp or name
    return {"images": images, "faces": len(concepts), "path": out}
