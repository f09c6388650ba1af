"""Face crops from images and video frames by OpenFace's face box, as the CNN sees faces.

The box (``face_x, face_y, face_w, face_h``, pixels of the original image or frame) is the
bounding box of OpenFace's 68 2D landmarks (``-2Dfp``): brows to chin. FER2013's faces, which
the CNN was trained on, are looser (forehead and some background), so the crop is a square of
side ``MARGIN`` x the box's longer side, centred on the box and shifted up by ``LIFT`` x its
height, replicated at the image's border (``cv2.BORDER_REPLICATE``), made grey and brought to
48x48 (``cv2.INTER_AREA``), as ``cnn_baseline.predict`` brings a detected face to FER2013's size.

Video frames are decoded with ``cv2.VideoCapture`` one by one (never all in memory); OpenFace
numbers frames from 1 in the order the capture returns them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SIDE = 48
MARGIN = 1.4
LIFT = 0.12


def square_box(x: float, y: float, w: float, h: float, margin: float = MARGIN) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in pixels of the square crop around a landmark box (may pass the image's edges)."""
    side = max(w, h) * margin
    cx, cy = x + w / 2, y + h / 2 - LIFT * h
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    return x0, y0, x0 + s, y0 + s


def crop_face(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """The face of ``image`` (grey (h, w) or BGR (h, w, 3), uint8) in ``box`` as (48, 48) grey uint8.

    Returns None for a box that is not finite, has no area, or lies wholly outside the image.
    """
    import cv2

    x, y, w, h = (float(v) for v in box)
    if not all(np.isfinite([x, y, w, h])) or w <= 1 or h <= 1:
        return None
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    height, width = grey.shape
    x0, y0, x1, y1 = square_box(x, y, w, h)
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return None
    pad = max(0, -x0, -y0, x1 - width, y1 - height)
    if pad:
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    return cv2.resize(grey[y0:y1, x0:x1], (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def read_image(path: str | os.PathLike[str]) -> np.ndarray | None:
    """An image file as grey pixels (OpenCV, bytes read by Python so any file name works); None
    when it cannot be read or decoded."""
    import cv2

    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not data:
        return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    return image if image is not None and image.size else None


def video_frames(
    path: str | os.PathLike[str], wanted: set[int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame, grey pixels)`` of a video, frames numbered from 1 as OpenFace numbers them;
    only the frames in ``wanted`` (all when None); stops after the last wanted frame. A folder
    is an image sequence: its image files in name order, as the runner hands them to OpenFace."""
    import cv2

    if Path(path).is_dir():
        yield from _sequence_frames(Path(path), wanted)
        return
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        return
    last = max(wanted) if wanted else None
    number = 0
    try:
        while True:
            ok = capture.grab()
            if not ok:
                break
            number += 1
            if wanted is not None and number not in wanted:
                if last is not None and number >= last:
                    break
                continue
            ok, frame = capture.retrieve()
            if not ok:
                break
            yield number, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            if last is not None and number >= last:
                break
    finally:
        capture.release()


def _sequence_frames(folder: Path, wanted: set[int] | None) -> Iterator[tuple[int, np.ndarray]]:
    """The frames of an image-sequence folder (``openface_runner.video.discover_sequences``'s
    order: image files sorted by name), numbered from 1; unreadable ones are skipped."""
    from openface_runner.inputs import IMAGE_SUFFIXES

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    for number, file in enumerate(files, start=1):
        if wanted is not None and number not in wanted:
            continue
        grey = read_image(file)
        if grey is not None:
            yield number, grey
