"""Shared fixtures of the end-to-end tests: a small two-chip system file."""

import pytest

TWO_GPUS = """
[system]
name = "two-gpus"
chips = 2
[chip.compute]
[chip.memory.hbm]
preset = "hbm3"
stacks = 2
[fabric]
flit_bytes = "256B"
[fabric.topology]
kind = "fully_connected"
k = 2
[mapping]
tp = 2
[batching]
policy = "continuous"
max_batch = 8
"""


@pytest.fixture(scope="session")
def two_gpus_system(tmp_path_factory):
    """Path (str) of the two-chip system file, written once per test session."""
    path = tmp_path_factory.mktemp("systems") / "two-gpus.toml"
    path.write_text(TWO_GPUS)
    return str(path)


@pytest.fixture
def system_file(two_gpus_system):
    return two_gpus_system
