"""3D DRAM parameters and presets: bad values name their key; presets resolve with a source per value."""

from __future__ import annotations

import pytest

from sim.core.errors import ConfigError
from sim.core.simulation import Simulation
from sim.memory.dram3d import Dram3D
from sim.memory.dram_timing import ROUNDED, DramTiming, round_to_clock
from sim.memory.presets_dram import PRESETS

Params = Dram3D.Params


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"banks_per_group": 0}, "banks_per_group"),
        ({"bank_groups": -1}, "bank_groups"),
        ({"channels": 0}, "channels"),
        ({"tRCD": "-1ns"}, "tRCD"),
        ({"tFAW": "0ns"}, "tFAW"),
        ({"tRC": "-5ns"}, "tRC"),
        ({"tRC": "10ns"}, "tRC"),  # shorter than tRAS
        ({"tsv_rate": "-6.4Gb/s"}, "tsv_rate"),
        ({"tsv_rate": "6.4GHz"}, "tsv_rate"),
        ({"row_bytes": "100B"}, "row_bytes"),
        ({"tsv_width_bits": 63}, "tsv_width_bits"),
        ({"refresh_mode": "sometimes"}, "refresh_mode"),
        ({"page_policy": "ajar"}, "page_policy"),
        ({"address_mapping": "CoRoBaBgPcCh"}, "address_mapping"),
        ({"refresh_mode": "all_bank", "tRFC": "5us"}, "tRFC"),
        ({"act_energy": "-1pJ"}, "act_energy"),
        ({"fidelity": "exact"}, "fidelity"),
    ],
)
def test_bad_parameters_are_config_errors_naming_the_key(changes, key):
    with pytest.raises(ConfigError) as err:
        Params(**changes)
    assert err.value.where == key


def test_unknown_keys_are_rejected_with_the_key_path():
    with pytest.raises(ConfigError) as err:
        Params.from_mapping({"tRCDX": "3ns"}, where="device.params")
    assert err.value.where == "device.params.tRCDX"


def test_timings_are_rounded_up_to_whole_clocks():
    p = Params(tCK="0.625ns", tCL="14ns", tRC="0ns", tRAS="34ns", tRP="14ns")
    t = DramTiming.from_params(p)
    for name in ROUNDED:
        value = getattr(t, name)
        assert value % p.tCK == 0 and value >= getattr(p, name)
    assert t.tCL == 23 * 625  # 14 ns -> 23 cycles of 625 ps (JEDEC rounding)
    assert t.tRC == t.tRAS + t.tRP  # tRC = 0 means tRAS + tRP
    assert round_to_clock(0, 625) == 0 and round_to_clock(625, 625) == 625


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_value_has_a_source_and_resolves(preset):
    assert preset.kind == "dram3d"
    for key, (_, source) in preset.values.items():
        assert source.strip(), key
    params = preset.params(Params)
    dev = Dram3D(Simulation(0), "d", params)
    assert dev.capacity_bytes > 0 and dev.peak_bandwidth_Bps() > 0


@pytest.mark.parametrize(
    ("name", "peak_Bps", "capacity"),
    [
        # channels x TSV width (bits) x per-pin rate (bits/s) / 8
        ("hbm3", 16 * 64 * 6.4e9 / 8, 16 * 2**30),
        ("hbm3e", 16 * 64 * 9.6e9 / 8, 24 * 2**30),
        ("hbm4", 32 * 64 * 6.4e9 / 8, 48 * 2**30),
        ("lpddr5x", 4 * 16 * 8.533e9 / 8, 16 * 2**30),
        ("dram3d-logic", 64 * 128 * 3.2e9 / 8, 48 * 2**30),
    ],
)
def test_preset_peak_is_width_times_rate_and_capacity_matches(name, peak_Bps, capacity):
    preset = next(p for p in PRESETS if p.name == name)
    dev = Dram3D(Simulation(0), "d", preset.params(Params))
    assert dev.peak_bandwidth_Bps() == pytest.approx(peak_Bps, rel=1e-12)
    assert dev.capacity_bytes == capacity


def test_paper_table3_hbm4_numbers():
    hbm4 = next(p for p in PRESETS if p.name == "hbm4")
    dev = Dram3D(Simulation(0), "d", hbm4.params(Params))
    assert dev.peak_bandwidth_Bps() == pytest.approx(1638.4e9)  # 2048 bit x 6.4 Gb/s
    assert dev.capacity_bytes == 48 * 2**30


def test_preset_overrides_are_validated_with_their_key():
    hbm3 = next(p for p in PRESETS if p.name == "hbm3")
    with pytest.raises(ConfigError) as err:
        hbm3.params(Params, {"tRP": "-2ns"}, where="--set")
    assert err.value.where == "--set tRP"
