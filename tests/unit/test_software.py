"""The serving software stack is its own component: its host time is reported apart from the
hardware's, and `software=none` removes exactly that time."""

import pytest

from sim.experiments.run import build_run, execute
from sim.system.spec import load_system


def run(batch=4, steps=3, **sets):
    spec, _ = build_run({"system": "default", "batch": batch, "context": 256, "steps": steps, "set": sets})
    summary, driver, _ = execute(spec)
    return summary, driver


def test_default_reports_software_overhead_and_none_removes_exactly_it():
    sw = load_system("default").software
    with_sw, drv = run()
    bare, _ = run(software="none")
    assert "software overhead" in with_sw["stall_breakdown"]
    assert "software overhead" not in bare["stall_breakdown"] and bare["software_s"] == 0
    host_ps = sw.iteration + sw.per_sequence * 4  # synchronous engine: nothing hidden
    assert with_sw["software_s"] == pytest.approx(3 * host_ps / 1e12)
    for a, b in zip(drv.iterations, run(software="none")[1].iterations, strict=True):
        assert a.step_ps - b.step_ps == host_ps


def test_asynchronous_scheduling_hides_host_time_behind_the_previous_step():
    sync, _ = run(software="vllm-v0-sync")
    overlapped, drv = run(software="vllm-v0.6-async")
    sw = load_system("default", {"software": "vllm-v0.6-async"}).software
    host = sw.iteration + sw.per_sequence * 4
    first = drv.iterations[0]
    # nothing to hide behind before the first step; later ones hide overlap x host (less than a step)
    assert overlapped["software_s"] == pytest.approx((host + 2 * (host - host * sw.overlap)) / 1e12)
    assert overlapped["tpot_ms"]["mean"] < sync["tpot_ms"]["mean"]
    assert first.step_ps > drv.iterations[1].step_ps


def test_eager_mode_pays_a_launch_per_kernel():
    graphs, drv = run(software="vllm-v0-sync", steps=1)
    eager, _ = run(software="vllm-v0-eager", steps=1)
    kernels = drv.hardware.chips[0].die.stat.kernels.value
    gap = load_system("default", {"software": "vllm-v0-eager"}).software.kernel_gap
    assert eager["software_s"] - graphs["software_s"] == pytest.approx(kernels * gap / 1e12)


def test_software_is_a_preset_or_a_table():
    s = load_system("default", {"software.per_sequence": "10us"})
    assert s.software.per_sequence == 10_000_000 and s.software.iteration == 2_000_000_000
    from sim.core.errors import ConfigError

    with pytest.raises(ConfigError, match="software"):
        load_system("default", {"software": "hbm3"})  # a preset of another kind
