"""The runner's error types.

``RunnerError`` and its subclasses are the expected failures of a run (a missing folder, an
engine that is not running, a corrupt image): the command line prints their one-line
message as ``error: ...`` and exits 2. Anything else is a bug and shows its traceback.
"""

from __future__ import annotations


class RunnerError(Exception):
    """An expected failure of the OpenFace stage; its message says what to do."""


class InputError(RunnerError, ValueError):
    """The input folder or output location cannot be used (missing, not a folder, unwritable)."""


class StageError(RunnerError, ValueError):
    """One image cannot be staged (unreadable, corrupt, too large); recorded as its failure."""


class BackendError(RunnerError, RuntimeError):
    """OpenFace cannot be run with this backend; the message says why and what to do."""


class OutputError(RunnerError, ValueError):
    """An OpenFace output file that cannot be used.

    Attributes:
        problem: what is wrong, without the file's path (the failure reason of its image).
    """

    def __init__(self, path: object, problem: str):
        super().__init__(f"{path}: {problem}")
        self.problem = problem


class InvariantError(RuntimeError):
    """A runtime invariant of the runner does not hold: a bug, shown with its traceback."""
