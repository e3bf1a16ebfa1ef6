"""Shared test settings.

* Every simulation run by the tests checks its physical bounds strictly: an op that finishes
  faster than its bytes over the peak bandwidth of what they cross, or its FLOPs over the peak rate
  of what computes them, stops the run (``MEMWALL_STRICT_BOUNDS``), so ``bound_violations`` is 0 in
  every run of the suite or the suite fails. Subprocesses inherit the setting.
* ``validation_data`` is the measured data beside the repository (``../shared/data/validation``,
  see its SOURCES.md); CI always has it, a bare checkout skips the tests that need it.
"""

import os
from pathlib import Path

import pytest

os.environ["MEMWALL_STRICT_BOUNDS"] = "1"

VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "data" / "validation"


@pytest.fixture(scope="session")
def validation_data() -> Path:
    if not (VALIDATION / "vidur" / "profiling").is_dir():
        pytest.skip(f"no validation data at {VALIDATION}")
    return VALIDATION
