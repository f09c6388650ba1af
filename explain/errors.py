"""The stage's own error: a message of one line, printed as ``error: ...`` (exit status 2)."""

from __future__ import annotations


class ExplainError(ValueError):
    """Inputs the stage cannot explain (a table without AU columns, no OpenFace, ...)."""


OPENFACE_HELP = (
    "get OpenFace 2.2.0 as the Docker image algebr/openface (`docker pull algebr/openface:latest`, "
    "then BACKEND=docker) or build it natively "
    "(https://github.com/TadasBaltrusaitis/OpenFace/wiki/Unix-Installation; then BACKEND=native "
    "OPENFACE_BIN=<...>/bin/FaceLandmarkImg), or explain a table extracted elsewhere with AUS=<AU table>"
)
"""How to get OpenFace, appended to every error about running it."""
