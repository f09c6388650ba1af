"""Geometric concepts: named face measures a reader understands, from OpenFace's 68 2D landmarks.

Each measure is a distance in **inter-ocular distances** (IOD: between the centres of the two
eyes, the mean of each eye's six landmarks), so it does not depend on the image's size or the
face's distance to the camera; vertical measures are taken along the face's own vertical axis
(perpendicular to the line through the eye centres), so a tilted head (roll) does not change them.
Landmark numbering: the 68-point iBUG scheme OpenFace uses, from 0 (OpenFace wiki, "Output
Format": ``x_0 … x_67, y_0 … y_67`` in pixels); right and left are the person's.

========================  ===================================================================
column                    measure (IOD; which Action Units move it, FACS)
========================  ===================================================================
``mouth_open``            inner-lip gap: mean of 61-67, 62-66, 63-65 (AU25 lips part, AU26
                          jaw drop, AU27 mouth stretch)
``mouth_width``           lip corner to lip corner, 48-54 (AU20 lip stretcher, AU12 lip
                          corner puller widen it; AU18, AU23 narrow it)
``lip_corner_raise``      how far the lip corners (48, 54) sit above the mouth's centre (mean
                          of 62, 66); positive above (AU12 lip corner puller), negative below
                          (AU15 lip corner depressor)
``brow_raise``            brow (mean of 17-21, 22-26) above its eye's centre, both sides'
                          mean (AU1 inner, AU2 outer brow raiser raise it; AU4 brow lowerer)
``eye_open``              eyelid gap: mean of 37-41 and 38-40, 43-47 and 44-46 (AU5 upper lid
                          raiser opens; AU6, AU7, AU43/45 close)
``nose_lip_gap``          nose tip (33) to the top of the upper lip (51) (shortened by AU9
                          nose wrinkler and AU10 upper lip raiser)
========================  ===================================================================
"""

from __future__ import annotations

import numpy as np

CONCEPT_COLUMNS = ("mouth_open", "mouth_width", "lip_corner_raise", "brow_raise", "eye_open", "nose_lip_gap")
CONCEPT_NAMES = {
    "mouth_open": "mouth opening",
    "mouth_width": "mouth width",
    "lip_corner_raise": "lip-corner height",
    "brow_raise": "eyebrow height",
    "eye_open": "eye opening",
    "nose_lip_gap": "nose-to-lip gap",
}
CONCEPT_UNIT = "inter-ocular distances"
LANDMARKS = 68
MIN_IOD_PX = 1.0  # below this the eyes are not apart: no fitted face (OpenFace writes zeros)

_RIGHT_EYE, _LEFT_EYE = range(36, 42), range(42, 48)
_RIGHT_BROW, _LEFT_BROW = range(17, 22), range(22, 27)


def concepts_from_landmarks(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The measures of ``CONCEPT_COLUMNS`` for each face.

    Args:
        xs, ys: (n, 68) landmark coordinates in pixels (``x_0..x_67``, ``y_0..y_67``), any
            uniform scale and offset (a staged, upscaled copy gives the same measures).

    Returns:
        (n, 6) float, in inter-ocular distances, columns in ``CONCEPT_COLUMNS`` order; a row
        whose eye centres are less than ``MIN_IOD_PX`` apart (no fitted face) is NaN.

    Raises:
        ValueError: ``xs`` or ``ys`` is not (n, 68).
    """
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if xs.ndim != 2 or xs.shape[1] != LANDMARKS or ys.shape != xs.shape:
        raise ValueError(f"landmarks of shape {xs.shape} and {ys.shape}, not (n, {LANDMARKS}) each")
    points = np.stack([xs, ys], axis=-1)  # (n, 68, 2)
    right_eye, left_eye = points[:, _RIGHT_EYE].mean(axis=1), points[:, _LEFT_EYE].mean(axis=1)
    across = left_eye - right_eye
    iod = np.linalg.norm(across, axis=1)
    valid = iod >= MIN_IOD_PX
    safe = np.where(valid, iod, 1.0)
    horizontal = across / safe[:, None]
    down = np.stack([-horizontal[:, 1], horizontal[:, 0]], axis=1)  # image y grows downwards

    def height(i: int | range) -> np.ndarray:  # position along the face's vertical axis, pixels
        point = points[:, i].mean(axis=1) if isinstance(i, range) else points[:, i]
        return np.einsum("nk,nk->n", point, down)

    mouth_open = np.mean(
        [height(lower) - height(upper) for upper, lower in ((61, 67), (62, 66), (63, 65))], axis=0
    )
    mouth_width = np.linalg.norm(points[:, 54] - points[:, 48], axis=1)
    centre = (height(62) + height(66)) / 2
    lip_corner_raise = centre - (height(48) + height(54)) / 2
    eye_heights = {
        "right": np.einsum("nk,nk->n", right_eye, down),
        "left": np.einsum("nk,nk->n", left_eye, down),
    }
    brow_raise = (
        (eye_heights["right"] - height(_RIGHT_BROW)) + (eye_heights["left"] - height(_LEFT_BROW))
    ) / 2
    eye_open = np.mean(
        [height(lower) - height(upper) for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46))], axis=0
    )
    nose_lip_gap = height(51) - height(33)
    measures = np.stack(
        [mouth_open, mouth_width, lip_corner_raise, brow_raise, eye_open, nose_lip_gap], axis=1
    )
    out = measures / safe[:, None]
    out[~valid] = np.nan
    return out
