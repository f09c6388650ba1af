"""Command-line arguments checked by the parser, before any work, with one clear line.

Shared by ``python -m analysis`` and ``python -m compare``: the argparse ``type=`` functions
below reject a bad value while the command line is parsed (a fit never starts on ``--folds 1``,
and an unwritable ``--out`` fails before the fit, not after it), and :class:`OneLineParser`
prints every such error as one line, ``error: argument --folds: ...``, exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from analysis.au_models import ModelFileError
from analysis.au_table import AUTableError
from analysis.logit import FitError
from analysis.results import ResultsError

# numpy's and scikit-learn's ``random_state`` take a seed in 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1

PROJECT_ERRORS: tuple[type[Exception], ...] = (AUTableError, FitError, ResultsError, ModelFileError)
"""The project's own errors: a CLI prints them as ``error: <message>`` and exits 2. Anything
else is a bug and shows its traceback."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``error: <message> (see <prog> --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM received (``signum``): raised in the main thread, so that a command stops
    its OpenFace calls and writes nothing partial."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, _frame) -> None:
    raise Interrupted(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread while the block runs.

    SIGTERM would otherwise end the process at once, without cleaning up. SIGINT gets Python's
    handler back: a job started in the background by a shell without job control inherits SIGINT
    ignored, and ``kill -INT`` would then be lost. Both handlers are restored afterwards.
    """
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def signal_number(exc: KeyboardInterrupt) -> int:
    """The signal behind ``exc`` (SIGINT for a plain ``KeyboardInterrupt``)."""
    return exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)


def print_error(error: Exception) -> int:
    """Print a project error as one line on stderr; return the exit status 2."""
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    return 2


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def folds(text: str) -> int:
    """Cross-validation folds: a whole number, at least 2."""
    value = _integer(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{value} folds: cross-validation needs at least 2")
    return value


def seed(text: str) -> int:
    """A random seed: a whole number in 0 .. 2**32 - 1 (what numpy accepts)."""
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is not a seed; use a whole number from 0 to {MAX_SEED}")
    return value


def positive(text: str) -> int:
    """A whole number, at least 1 (resamples, repeats)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return value


def positive_number(text: str) -> float:
    """A finite number above 0 (a learning rate, a time limit in seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite number above 0")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1) (label smoothing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a number from 0 up to (not including) 1")
    return value


def jobs(text: str) -> int:
    """Processes in joblib's convention: 1, 2, ... or -1 (all CPUs), -2 (all but one) ...; not 0."""
    value = _integer(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 processes; use 1 or more, or -1 for all CPUs")
    return value


def positive_list(text: str) -> list[int]:
    """Comma-separated positive whole numbers, e.g. ``1,100`` or ``932,1``."""
    values = [positive(part.strip()) for part in text.split(",")]
    return values


def input_file(text: str) -> Path:
    """An existing, readable file (not a folder)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder, not a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{path}: no permission to read it")
    return path


def output_folder(text: str) -> Path:
    """A folder that exists and is writable, or can be created in a writable parent.

    Nothing is created here; the check only makes a write that would fail after minutes of
    fitting fail now.
    """
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{path}: no permission to write in {existing}")
    return path
