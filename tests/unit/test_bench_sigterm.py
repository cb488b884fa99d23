"""A benchmark sent SIGTERM stops the processes it started (its ``finally`` blocks run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, signal, sys, time
from bench.common import stop_cleanly_on_sigterm
stop_cleanly_on_sigterm()
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
finally:
    print("stopped what it started", flush=True)
"""


def test_sigterm_runs_the_finally_blocks() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert "stopped what it started" in done.stdout
    assert done.returncode != 0  # it still ends as interrupted
