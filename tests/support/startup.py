"""What starting the CLI costs right now, to tell a slow start-up on a busy machine from a hang."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import ROOT


def startup_seconds() -> float:
    """`python -m extract --help`: the interpreter and every import, no work."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "extract", "--help"], cwd=ROOT, capture_output=True, check=True)
    return time.monotonic() - began
