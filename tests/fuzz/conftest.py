"""Fuzz-suite plumbing: the size knob, one tally for the session, and its table at the end.

python -m pytest tests/fuzz                          # the default size (CI): >= 2,000 cases
MEMWALL_FUZZ_SCALE=10 python -m pytest tests/fuzz    # ten times as many
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fuzzlib import Tally

TALLY = Tally()


def scale() -> float:
    return float(os.environ.get("MEMWALL_FUZZ_SCALE", "1"))


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if TALLY.counts:
        terminalreporter.write_sep("=", f"memwall fuzz suite (MEMWALL_FUZZ_SCALE={scale():g})")
        terminalreporter.write_line(TALLY.table())
        for bug in TALLY.bugs[:10]:
            terminalreporter.write_line(bug.describe())
