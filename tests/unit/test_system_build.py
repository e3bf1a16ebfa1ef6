"""The system builder and what memory kinds declare about themselves."""

import pytest

from sim.core.errors import CapacityError, ConfigError
from sim.core.registry import lookup, names
from sim.core.simulation import Simulation
from sim.experiments.run import build_run
from sim.memory.device import MemoryDevice
from sim.model.spec import load_model
from sim.serving.mapping import mapping_from, plan
from sim.system.build import build_system
from sim.system.spec import load_system, system_from_mapping


def one_chip(memory, extra_memory=None, compute=None):
    mems = {"m": memory, **(extra_memory or {})}
    return system_from_mapping(
        {
            "system": {"name": "t", "chips": 1},
            "chip": {"compute": compute or {}, "memory": mems},
            "fabric": {"topology": {"kind": "fully_connected", "k": 1}},
            "mapping": {"tp": 1},
        }
    )


@pytest.mark.parametrize("kind", ["hbf", "dram3d"])
def test_capacity_and_peak_come_from_the_parameters_alone(kind):
    cls = lookup("memory", kind)
    params = cls.Params()
    device = cls(Simulation(), "d", params=params)
    assert cls.capacity_of(params) == device.capacity_bytes
    assert cls.peak_bandwidth_of(params) == device.peak_bandwidth_Bps()
    assert cls.peak_bandwidth_of(params, write=True) == device.peak_bandwidth_Bps(write=True)


def test_hbf_peak_closed_form():
    """dies x planes x page / tR, capped by the channels and the interface (DESIGN.md)."""
    cls = lookup("memory", "hbf")
    p = cls.Params.from_mapping({"channels": 4, "dies_per_channel": 2, "planes_per_die": 4, "tR": "10us"})
    array = 4 * 2 * 4 * p.page_size / 10e-6
    assert cls.peak_bandwidth_of(p) == pytest.approx(min(array, 4 * p.channel_rate, p.interface_rate))


def test_every_memory_kind_declares_its_cost_classes():
    for name in names("memory"):
        cls = lookup("memory", name)
        assert issubclass(cls, MemoryDevice)
        assert cls.price_class and cls.carbon_class, name


def test_builder_gives_each_memory_the_parts_it_owns():
    system = load_system("hbf-hybrid")
    sim = Simulation()
    built = build_system(sim, system, chips=2, network=True)
    assert [c.name for c in built.chips] == ["stage0", "stage1"]
    hbf, hbm = built.chips[0].memories["hbf"], built.chips[0].memories["hbm"]
    assert hbf.prefetcher is not None and hbm.prefetcher is None  # flash takes one by default
    assert hbf.prefetcher.window == 32 * 2**20 // 2**20  # 32 MiB in 1 MiB requests
    assert built.network is not None and built.network.path == "system.fabric"
    assert hbf.peak == pytest.approx(system.memories["hbf"].peak_bandwidth_Bps())
    assert build_system(Simulation(), system).network is None


def test_prefetch_table_sets_window_and_any_memory_can_have_one():
    system = one_chip({"preset": "hbm3", "stacks": 2, "prefetch": {"window": "4MiB", "buffer": "die"}})
    pf = system.memories["m"].prefetch
    assert pf.window == 4 * 2**20 and pf.buffer == "die" and pf.policy == "next_tensor"
    built = build_system(Simulation(), system)
    assert built.chips[0].memories["m"].prefetcher.window == 4
    off = one_chip({"preset": "hbf-gen1", "prefetch": {"enabled": False}})
    assert off.memories["m"].prefetch is None


def test_prefetch_buffers_count_against_sram_and_overflow_is_refused():
    model = load_model("llama-3.1-8b")
    die = one_chip(
        {"preset": "hbm3", "stacks": 4, "prefetch": {"window": "8MiB", "buffer": "die"}},
        compute={"sram": "50MiB"},
    )
    p = plan(model, die, mapping_from(die))
    assert p.capacity_report()["sram"] == {"used_bytes": 32 * 2**20, "total_bytes": 50 * 2**20}
    with pytest.raises(CapacityError) as err:  # refused when the system is read, whatever the mapping
        one_chip(
            {"preset": "hbm3", "stacks": 4, "prefetch": {"window": "16MiB", "buffer": "die"}},
            compute={"sram": "50MiB"},
        )
    assert err.value.where.endswith("chip.memory.m.prefetch.window") and "64MiB" in str(err.value)
    flash = one_chip({"preset": "hbf-gen1", "stacks": 3})
    report = plan(model, flash, mapping_from(flash)).capacity_report()
    assert report["m.controller_sram"] == {"used_bytes": 3 * 32 * 2**20, "total_bytes": 3 * 32 * 2**20}
    with pytest.raises(CapacityError, match="controller SRAM"):  # an explicit buffer that cannot fit
        one_chip({"preset": "hbf-gen1", "prefetch": {"window": "64MiB"}})


def test_a_flash_kind_gets_its_default_buffer_only_where_it_fits():
    assert one_chip({"preset": "hbf-gen1"}).memories["m"].prefetch is not None
    assert one_chip({"preset": "nand-tlc"}).memories["m"].prefetch is None  # an SSD keeps no buffer
    assert one_chip({"kind": "hbf"}).memories["m"].prefetch is None  # no controller SRAM declared
    with_sram = one_chip({"kind": "hbf", "params": {"controller_sram": "32MiB"}})
    assert with_sram.memories["m"].prefetch.window == 32 * 2**20


def test_prefetch_table_values_are_checked_where_they_are_written():
    with pytest.raises(ConfigError) as err:
        one_chip({"preset": "hbf-gen1", "prefetch": {"policy": "psychic"}})
    assert err.value.where.endswith("chip.memory.m.prefetch.policy")
    with pytest.raises(ConfigError, match="whole units"):
        one_chip({"preset": "hbf-gen1", "prefetch": {"window": "1536KiB"}})


def test_prefetch_window_is_a_system_setting_and_changes_results():
    base = {"system": "hbf-hybrid", "model": "llama-3.1-8b", "batch": 1, "context": 128, "steps": 1}
    spec, _ = build_run({**base, "set": {"chip.memory.hbf.prefetch.window": "2MiB"}})
    assert spec.system.memories["hbf"].prefetch.window == 2 * 2**20


@pytest.mark.parametrize("key", ["driver.prefetch_window", "prefetch_window", "driver.prefetch_policy"])
def test_old_driver_prefetch_keys_point_to_the_new_ones(key):
    with pytest.raises(ConfigError) as err:
        build_run({"batch": 1, "set": {key: "8MiB"}})
    assert "chip.memory.NAME.prefetch." in str(err.value)
    assert err.value.where == f"--set {key}"


def test_queueing_cause_is_the_devices_own():
    sim = Simulation()
    dram = lookup("memory", "dram3d")
    assert dram(sim, "a", params=dram.Params()).queueing_cause() == "TSV busy / bank conflict"
    assert dram(sim, "b", params=dram.Params(fidelity="analytic")).queueing_cause() == "memory queueing"
    hbf = lookup("memory", "hbf")
    assert hbf(sim, "c", params=hbf.Params()).queueing_cause() == "memory queueing"
