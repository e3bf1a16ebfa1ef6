"""HBF parameters (checks name the key), presets (cited numbers reproduce the paper) and registration."""

from __future__ import annotations

import dataclasses

import pytest

import sim.memory.presets_hbf  # noqa: F401  (registers the presets)
from sim.core.errors import ConfigError
from sim.core.registry import REGISTRY
from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S, transfer_ps
from sim.memory.hbf import HBFParams, HighBandwidthFlash
from sim.memory.prefetch import NextTensor, OnDemand, SequentialAhead

GiB = 2**30


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("planes_per_die", 0),
        ("channels", 0),
        ("dies_per_channel", -1),
        ("tR", "-5us"),
        ("tPROG", 0),
        ("tBERS", "0ms"),
        ("page_size", "0B"),
        ("channel_rate", "-1GB/s"),
        ("interface_rate", 0),
        ("endurance", 0),
        ("read_energy_per_bit", "-1pJ"),
        ("tR", "fast"),
        ("fidelity", "cycle"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(key, value):
    with pytest.raises(ConfigError) as info:
        HBFParams(**{key: value})
    assert info.value.where == key


def test_cross_field_checks_name_the_key():
    with pytest.raises(ConfigError) as info:
        HBFParams(planes_per_die=4, multiplane=8)
    assert info.value.where == "multiplane"
    with pytest.raises(ConfigError) as info:
        HBFParams(page_size="16KiB", sector_size="3KiB")
    assert info.value.where == "sector_size"


def test_unknown_key_is_rejected_with_its_path():
    with pytest.raises(ConfigError) as info:
        HBFParams.from_mapping({"tRR": "1us"}, where="dev.toml: device.params")
    assert info.value.where == "dev.toml: device.params.tRR"


def test_every_parameter_has_a_unit_doc_and_source_hint():
    for name, spec, _default in HBFParams.specs():
        assert spec.doc.strip(), name
        if name != "fidelity":
            assert spec.dimension is not None, name
            assert "default" in spec.doc, name


def test_units_parse():
    p = HBFParams(tR="30us", page_size="8KiB", sector_size="2KiB", interface_rate="1.2TB/s")
    assert p.tR == 30_000_000 and p.page_size == 8192 and p.interface_rate == 1.2e12


def test_modules_register_their_names():
    assert REGISTRY.entries["memory"]["hbf"] is HighBandwidthFlash
    policies = REGISTRY.entries["prefetch_policy"]
    assert policies["on_demand"] is OnDemand
    assert policies["sequential"] is SequentialAhead
    assert policies["next_tensor"] is NextTensor
    assert {"hbf-gen1", "nand-tlc"} <= set(REGISTRY.entries["preset"])


def preset_device(name: str, **overrides) -> HighBandwidthFlash:
    preset = REGISTRY.entries["preset"][name]
    assert preset.kind == "hbf"
    params = preset.params(HBFParams, overrides)
    return HighBandwidthFlash(Simulation(0), "dev", params)


@pytest.mark.parametrize("name", ["hbf-gen1", "nand-tlc"])
def test_every_preset_value_has_a_source_and_covers_every_parameter(name):
    preset = REGISTRY.entries["preset"][name]
    declared = {n for n, _, _ in HBFParams.specs()} - {"fidelity"}
    assert set(preset.values) == declared
    for key, (_value, source) in preset.values.items():
        assert len(source.strip()) > 10, key


def test_hbf_gen1_reproduces_table_3():
    dev = preset_device("hbf-gen1")
    p = dev.params
    # 512 GB per stack, read as 16 dies x 256 Gb = 512 GiB.
    assert dev.n_dies == 16
    assert dev.capacity_bytes == 16 * 256 * GiB // 8 == 512 * GiB
    # 1,638 GB/s read per stack (Table 3), with the interface the binding limit.
    array = dev.n_dies * p.planes_per_die * p.page_size * PS_PER_S / p.tR
    assert array >= p.interface_rate
    assert dev.peak_bandwidth_Bps() == pytest.approx(1638.4e9)
    assert p.channels * p.channel_rate >= p.interface_rate
    # 1,024-bit interface: per-pin rate implied by the bandwidth.
    assert p.interface_rate * 8 / 1024 == pytest.approx(12.8e9)
    assert p.sector_size == 4096  # Table 3 bytes per read
    assert p.endurance == 100_000  # H3
    # Full-page read energy stays under Table 3's 80 W at 1,638 GB/s.
    pj_per_bit = p.read_energy_per_bit + p.channel_energy_per_bit + p.interface_energy_per_bit
    assert pj_per_bit * 1e-12 * 8 * dev.peak_bandwidth_Bps() < 80.0


def test_hbf_gen1_unloaded_read_latency_is_microseconds():
    dev = preset_device("hbf-gen1")
    p = dev.params
    lat = dev.unloaded_latency_ps(p.page_size)
    bus = transfer_ps(p.page_size, p.channel_rate)
    assert lat == p.tR + bus + transfer_ps(p.page_size, p.interface_rate) + p.base_latency
    assert 1_000_000 <= lat <= 100_000_000  # Table 3: "1,000s of ns"; text: 10s of us at most


def test_nand_tlc_is_the_table_3_flash_card():
    dev = preset_device("nand-tlc")
    p = dev.params
    assert dev.capacity_bytes == 4 * 2**40
    assert dev.peak_bandwidth_Bps() == pytest.approx(4e9)  # Table 3: 4 GB/s read
    assert p.channels * p.channel_rate == pytest.approx(8 * 2.4e9)
    lat = dev.unloaded_latency_ps(p.page_size)
    assert 10_000_000 <= lat < 100_000_000  # Table 3: "10,000s" of ns


def test_presets_accept_overrides_and_stay_frozen():
    dev = preset_device("hbf-gen1", tR="20us", fidelity="detailed")
    assert dev.params.tR == 20_000_000 and dev.params.fidelity == "detailed"
    with pytest.raises(dataclasses.FrozenInstanceError):
        dev.params.tR = 1  # type: ignore[misc]
