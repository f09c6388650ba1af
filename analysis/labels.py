"""Emotion labels: the workbench's names and one mapping per source.

The six-class analysis uses ``EMOTIONS``; fear is a known label (FER2013 has it)
but is excluded from the six-class analysis, never silently mapped elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "happy", "neutral", "sad", "surprise")
FEAR = "fear"
KNOWN_LABELS: tuple[str, ...] = (*EMOTIONS, FEAR)

# Codes of the seed AU data (`data/seed_au/emotion_all.csv`): alphabetical, no fear.
SEED_CODES: Mapping[int, str] = dict(enumerate(EMOTIONS))

# FER2013 codes (Goodfellow et al. 2013, the Kaggle ``fer2013.csv``).
FER2013_CODES: Mapping[int, str] = {
    0: "angry",
    1: "disgust",
    2: "fear",
    3: "happy",
    4: "sad",
    5: "surprise",
    6: "neutral",
}

# Folder and file names met in the wild (the seed repository spells neutral "nutral").
NAME_ALIASES: Mapping[str, str] = {
    "anger": "angry",
    "disgusted": "disgust",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "nutral": "neutral",
    "fearful": "fear",
}

CODINGS: Mapping[str, Mapping[int, str]] = {"seed": SEED_CODES, "fer2013": FER2013_CODES}


def name_for(value: object, coding: str) -> str | None:
    """Map one raw label to a workbench name, or ``None`` when it is unknown.

    ``coding`` is ``"seed"`` (0-5), ``"fer2013"`` (0-6) or ``"name"`` (text such as
    ``"Happy"`` or a folder name; case and surrounding spaces are ignored).

    Raises:
        ValueError: for an unknown ``coding``.
    """
    if coding == "name":
        text = str(value).strip().lower()
        text = NAME_ALIASES.get(text, text)
        return text if text in KNOWN_LABELS else None
    if coding not in CODINGS:
        raise ValueError(f"unknown label coding {coding!r}; use one of: name, {', '.join(CODINGS)}")
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if not number.is_integer():
        return None
    return CODINGS[coding].get(int(number))
