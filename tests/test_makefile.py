"""The Makefile is the map a newcomer reads first: `make help` names every target."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_phony_target() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.MULTILINE)
    assert phony is not None
    targets = set(phony.group(1).split()) - {"help"}
    done = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True)
    shown = done.stdout
    missing = sorted(t for t in targets if not re.search(rf"make {re.escape(t)}\b", shown))
    assert not missing, f"make help does not mention: {missing}"
