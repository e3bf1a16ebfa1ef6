"""Reproductions of the review of the serving features (issue 13), one test per finding fixed."""

from __future__ import annotations

import pytest

from sim.core.errors import ConfigError
from sim.experiments.run import build_run

T8 = {"trace": "traces/azure_conv_200.csv", "limit": 8}


def test_1_a_disagg_link_below_one_byte_per_second_is_refused_not_a_division_by_zero():
    with pytest.raises(ConfigError, match=r"disagg\.link_bandwidth.*>= 1 B/s"):
        build_run({**T8, "set": {"mapping.tp": 1, "disagg.link_bandwidth": "0.5B/s"}})
