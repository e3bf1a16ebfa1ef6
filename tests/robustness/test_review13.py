"""Reproductions of the review of the serving features (issue 13), one test per finding fixed."""

from __future__ import annotations

import pytest

from sim.core.errors import ConfigError
from sim.experiments.run import build_run

T8 = {"trace": "traces/azure_conv_200.csv", "limit": 8}


def test_1_a_disagg_link_below_one_byte_per_second_is_refused_not_a_division_by_zero():
    with pytest.raises(ConfigError, match=r"disagg\.link_bandwidth.*>= 1 B/s"):
        build_run({**T8, "set": {"mapping.tp": 1, "disagg.link_bandwidth": "0.5B/s"}})


def test_3_a_collective_timeout_shorter_than_the_launch_blames_no_more_than_the_step():
    """Blame adds up to the step (to integer-ps rounding) and no fabric op ends before it starts."""
    from sim.experiments.run import execute

    sets = {"mapping.tp": 2, "driver.collective_timeout": "1ps", "driver.record_ops": "true"}
    summary, driver, _ = execute(*build_run({"batch": 4, "context": 256, "steps": 2, "set": sets}))
    for it in driver.iterations:
        assert sum(it.blame.by_cause.values()) <= it.step_ps + 1000
    assert all(o.end_ps >= o.start_ps for o in driver.op_log)
    assert summary["collective_timeout"]["timeouts"] == summary["collective_timeout"]["collectives"] > 0


@pytest.mark.parametrize(
    ("sets", "key"),
    [
        ({"mapping.tp": 1, "driver.collective_timeout": "1us"}, "driver.collective_timeout"),
        ({"mapping.tp": 1, "driver.straggler_delay": "1ms"}, "driver.straggler_delay"),
        ({"driver.straggler_probability": 0.5}, "driver.straggler_probability"),
        ({"driver.collective_timeout": "-1us"}, "--set driver.collective_timeout"),
    ],
)
def test_12_13_collective_settings_that_do_nothing_are_refused_by_their_full_key(sets, key):
    with pytest.raises(ConfigError) as err:
        build_run({**T8, "set": sets})
    assert key in str(err.value)


@pytest.mark.parametrize("flags", [["--timeline-ops", "5"], ["--timeline-keep", "spread"]])
def test_11_timeline_flags_without_a_timeline_are_refused(flags, capsys):
    from sim.cli import main

    assert main(["run", "--limit", "2", *flags]) == 2
    assert flags[0] in capsys.readouterr().err


def test_7_a_cut_timeline_of_replicas_names_each_replicas_own_budget_and_cut(tmp_path, capsys):
    from sim.cli import main

    argv = ["run", "default", "--limit", "8", "--set", "mapping.tp=4", "--set", "mapping.dp=2", "--quiet"]
    path = tmp_path / "t.json"
    assert main([*argv[:-1], "--timeline", str(path), "--timeline-ops", "1000"]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("memwall: timeline:")]
    assert [x.split(": ")[2] for x in lines] == ["replica 0", "replica 1"]
    assert all("budget of 500:" in x for x in lines)


@pytest.mark.parametrize(
    ("sets", "where"),
    [
        ({"disagg.decode_system": "nosuch"}, "--set disagg.decode_system"),
        ({"disagg.prefill_pp": 16}, "--set disagg.prefill_pp"),
    ],
)
def test_13_disagg_errors_name_the_key_that_was_set(sets, where):
    from sim.core.errors import MemwallError

    with pytest.raises(MemwallError) as err:
        build_run({**T8, "set": {"mapping.tp": 1, **sets}})
    assert err.value.where == where
