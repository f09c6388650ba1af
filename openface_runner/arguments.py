"""Argument types of the command line: each rejects a bad value with one clear line.

``argparse`` calls them on the raw text and turns an ``ArgumentTypeError`` into
``error: argument --x: <message>`` with exit 2, before any work.
"""

from __future__ import annotations

import argparse
import math

from openface_runner.staging import MAX_BORDER


def upscale(text: str) -> float | None:
    """``auto`` (None) or a finite factor >= 1 (1 = no upscaling)."""
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a factor >= 1, got {text!r}") from None
    if not math.isfinite(value) or value < 1:
        raise argparse.ArgumentTypeError(f"expected auto or a finite factor >= 1, got {text}")
    return value


def border(text: str) -> int | None:
    """``auto`` (None) or a border in px, 0 to ``MAX_BORDER``."""
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number of px, got {text!r}") from None
    if not 0 <= value <= MAX_BORDER:
        raise argparse.ArgumentTypeError(f"expected auto or 0 to {MAX_BORDER} px, got {value}")
    return value
