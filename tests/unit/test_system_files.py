"""The shipped system descriptions (topologies/*.toml with a [system] table) and their error messages.

Every file loads and validates; capacities and bandwidths per chip are what the comments derive;
the mapping and batching tables are accepted by their owners; every number carries a source
comment; and a broken file gives one ConfigError line naming the file and the key path.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim.core.errors import ConfigError
from sim.core.simulation import Simulation
from sim.fabric.message_network import MessageNetwork
from sim.model.spec import load_model
from sim.serving.batching import make_policy
from sim.serving.mapping import mapping_from, plan
from sim.shipped import shipped_dir
from sim.system.spec import load_system, system_files

GiB = 1 << 30
SYSTEMS = ("gpu-hbm", "gpu-hbm-a100", "hbf-hybrid", "pnm-3d", "mobile", "default")


def test_every_system_is_shipped():
    assert set(SYSTEMS) <= set(system_files())


@pytest.mark.parametrize("name", SYSTEMS)
def test_system_loads_and_validates(name):
    s = load_system(name)
    assert s.name == name
    assert len(s.topology.graph["terminals"]) == s.chips
    assert s.fabric_fidelity == "message"
    assert s.description
    # the resolved configuration written beside results is complete
    resolved = s.resolved()
    assert set(resolved["memories"]) == set(s.memories)
    # the fabric builds (routing chosen, every terminal attached)
    net = MessageNetwork(Simulation(), "net", s.topology, s.network, s.router)
    assert len(net.terminal_router) == s.chips


# name -> memory -> (kind, stacks, capacity per chip, peak bandwidth per chip in B/s)
EXPECTED = {
    # 5 x 16 GiB HBM3; 3.35e12 / (5 x 128 B) = 5.234 Gb/s per pin, the datasheet rate (no derating)
    "gpu-hbm": {"hbm": ("dram3d", 5, 80 * GiB, 5 * 1024 * 5.234e9 / 8)},
    "default": {"hbm": ("dram3d", 5, 80 * GiB, 5 * 1024 * 5.234e9 / 8)},
    "hbf-hybrid": {
        "hbm": ("dram3d", 3, 48 * GiB, 3 * 1024 * 5.234e9 / 8),
        "hbf": ("hbf", 3, 1536 * GiB, 3 * 1638.4e9),
    },
    # A100 80 GB: 5 x 16 GiB HBM2e at 2.039 TB/s (3.186 Gb/s per pin, the datasheet rate)
    "gpu-hbm-a100": {"hbm": ("dram3d", 5, 80 * GiB, 5 * 1024 * 3.186e9 / 8)},
    # 64 vaults x 128 TSVs x 3.2 Gb/s
    "pnm-3d": {"dram": ("dram3d", 1, 48 * GiB, 64 * 128 * 3.2e9 / 8)},
    "mobile": {
        "lpddr": ("dram3d", 1, 16 * GiB, 4 * 16 * 8.533e9 / 8),
        "flash": ("hbf", 1, 512 * GiB, 4.2e9),  # the UFS 4.0 link binds
    },
}


@pytest.mark.parametrize("name", SYSTEMS)
def test_capacity_and_bandwidth_per_chip(name):
    s = load_system(name)
    assert set(s.memories) == set(EXPECTED[name])
    for mem, (kind, stacks, capacity, bandwidth) in EXPECTED[name].items():
        m = s.memories[mem]
        assert (m.kind, m.stacks, m.capacity_bytes()) == (kind, stacks, capacity)
        assert m.peak_bandwidth_Bps() == pytest.approx(bandwidth, rel=1e-6)


def test_gpu_hbm_is_an_h100_node():
    s = load_system("gpu-hbm")
    assert s.chips == 8
    assert s.compute.peak("bf16") == pytest.approx(989e12)
    assert s.compute.peak("fp8") == pytest.approx(1979e12)
    # the datasheet's 3.35 TB/s: memories are not derated per system (the kernel model says what
    # kernels reach of it); the die is the calibrated H100 preset
    assert s.memories["hbm"].peak_bandwidth_Bps() == pytest.approx(3.35e12, rel=1e-3)
    assert s.compute.units == 132 and s.compute.gemm_tile_m == 64
    # NVSwitch as one switch: every chip one switch traversal from every other
    assert s.topology.number_of_nodes() == 1 and s.topology.graph["kind"] == "tree"
    # link bandwidth below NVLink4's 450 GB/s per direction (calibrated, see the validation test)
    assert 0.7 * 450e9 < s.network.flit_bytes * s.network.clock < 450e9
    assert s.mapping == {"tp": 8, "weights": "hbm", "kv": "hbm"}


def test_hbf_hybrid_differs_from_gpu_hbm_only_in_memory():
    gpu, hbf = load_system("gpu-hbm"), load_system("hbf-hybrid")
    assert hbf.compute == gpu.compute
    assert (hbf.network, hbf.router, hbf.chips) == (gpu.network, gpu.router, gpu.chips)
    assert hbf.memories["hbm"].params == gpu.memories["hbm"].params
    assert hbf.mapping["weights"] == "hbf" and hbf.mapping["kv"] == "hbm"
    # the paper's "10X memory capacity per node" (PF 2.1)
    per_node = {s.name: s.chips * sum(m.capacity_bytes() for m in s.memories.values()) for s in (gpu, hbf)}
    assert per_node["hbf-hybrid"] >= 10 * per_node["gpu-hbm"]


def test_default_is_gpu_hbm_run_as_shipped():
    gpu, d = load_system("gpu-hbm"), load_system("default")
    assert (d.chips, d.compute, d.mapping, d.batching) == (gpu.chips, gpu.compute, gpu.mapping, gpu.batching)
    assert (d.network, d.router, d.fabric_fidelity) == (gpu.network, gpu.router, gpu.fabric_fidelity)
    assert d.topology.graph["params"] == gpu.topology.graph["params"]
    assert set(d.memories) == set(gpu.memories) == {"hbm"}
    hbm, ref = d.memories["hbm"], gpu.memories["hbm"]
    assert hbm.params.fidelity == ref.params.fidelity == "transaction"
    assert hbm.params == ref.params
    assert (hbm.stacks, hbm.preset) == (ref.stacks, ref.preset)


def test_pnm_3d_runs_gemvs_near_memory_on_a_mesh():
    s = load_system("pnm-3d")
    assert s.topology.graph["kind"] == "mesh" and s.topology.graph["shape"] == (4, 4)
    nm = s.memories["dram"].near_memory
    assert nm is not None and nm.placement == "near"
    assert 2 * nm.units * nm.macs_per_cycle * nm.clock == pytest.approx(s.compute.peak("bf16"))
    assert s.mapping["compute"] == "near_memory"
    # one mesh hop at zero load: inject 200 + 2 x 4 pipeline + 50 link + eject 200 cycles of 1 ns
    sim = Simulation()
    net = MessageNetwork(sim, "net", s.topology, s.network, s.router)
    sim.start()
    done = net.transfer(0, 1, s.network.flit_bytes)
    sim.run(until=done)
    assert sim.now == (200 + 2 * 4 + 50 + 200) * 1000


def test_mobile_is_one_chip_with_near_flash_compute():
    s = load_system("mobile")
    assert s.chips == 1 and s.topology.number_of_nodes() == 1
    # a transfer to itself still works (inject + one router + eject)
    sim = Simulation()
    net = MessageNetwork(sim, "net", s.topology, s.network, s.router)
    sim.start()
    sim.run(until=net.transfer(0, 0, 64))
    assert sim.now > 0
    flash = s.memories["flash"]
    assert flash.near_memory is not None and flash.near_memory.local_bandwidth == pytest.approx(9.6e9)
    assert s.mapping["weights"] == "flash" and s.mapping["compute"] == "near_memory"
    assert s.batching["max_batch"] == 1


# model each system's [mapping] must hold (default: llama-3.1-8b in BF16, the `memwall run` model)
MUST_FIT = {
    "default": "llama-3.1-8b",
    "gpu-hbm": "llama-3.1-70b",
    "gpu-hbm-a100": "llama-2-70b",
    "hbf-hybrid": "llama-3.1-405b",
    "pnm-3d": "llama-3.1-70b",
    "mobile": "llama-3.1-8b",
}


@pytest.mark.parametrize("name", SYSTEMS)
def test_mapping_fits_its_model(name):
    s = load_system(name)
    model = load_model(MUST_FIT[name])
    p = plan(model, s, mapping_from(s))
    assert p.chips == s.chips
    assert p.weights_memory == s.mapping["weights"] and p.kv_memory == s.mapping["kv"]
    assert p.kv_capacity_tokens > 0


def test_default_holds_llama_8b_in_bf16():
    s = load_system("default")
    p = plan(load_model("llama-3.1-8b"), s, mapping_from(s, {"weight_dtype": "bf16"}))
    assert p.weight_bytes_per_chip < 3 * GiB  # ~16 GB over tp = 8


@pytest.mark.parametrize("name", SYSTEMS)
def test_batching_table_is_accepted(name):
    s = load_system(name)
    table = dict(s.batching)
    policy = table.pop("policy")
    make_policy(policy, table, kv_capacity_tokens=1 << 20, where=f"{name}.toml: batching")


# -- every number has a source -------------------------------------------------------------------------
@pytest.mark.parametrize("name", SYSTEMS)
def test_every_number_has_a_source_comment(name):
    """A line assigning a number carries a comment, or follows a comment line that explains it."""
    lines = (shipped_dir("topologies") / f"{name}.toml").read_text().splitlines()
    missing = []
    for i, line in enumerate(lines):
        text = line.strip()
        if not text or text.startswith(("#", "[")):
            continue
        key, _, rest = text.partition("=")
        if key.strip() in ("name", "description"):
            continue
        value = rest.split("#", 1)[0]
        if re.search(r"\d", value) and "#" not in rest and not lines[i - 1].strip().startswith("#"):
            missing.append(f"{name}.toml:{i + 1}: {text}")
    assert not missing, "\n".join(missing)


# -- errors: one line naming the file and the key path ----------------------------------------------
BASE = """
[system]
chips = 2
[chip.memory.hbm]
preset = "hbm3"
stacks = 5
[fabric.topology]
kind = "tree"
radix = 2
levels = 1
"""


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_system(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_base_of_the_error_cases_is_valid(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(BASE)
    assert load_system(str(path)).memories["hbm"].capacity_bytes() == 80 * GiB


def test_unknown_key_in_a_memory_table(tmp_path):
    msg = _error(tmp_path, BASE.replace("stacks = 5", "stacks = 5\nstack = 4"))
    assert "chip.memory.hbm.stack" in msg and "unknown key 'stack'" in msg


def test_unknown_device_parameter(tmp_path):
    msg = _error(tmp_path, BASE + '[chip.memory.hbm.params]\ntsv_rates = "5Gb/s"\n')
    assert "chip.memory.hbm.params.tsv_rates" in msg


def test_unknown_preset(tmp_path):
    msg = _error(tmp_path, BASE.replace('"hbm3"', '"hbm9"'))
    assert "chip.memory.hbm.preset" in msg and "hbm9" in msg


def test_preset_of_another_kind(tmp_path):
    msg = _error(tmp_path, BASE.replace('preset = "hbm3"', 'preset = "hbm3"\nkind = "hbf"'))
    assert "chip.memory.hbm.preset" in msg


def test_topology_terminals_must_equal_chips(tmp_path):
    msg = _error(tmp_path, BASE.replace("chips = 2", "chips = 8"))
    assert "fabric.topology" in msg and "(8)" in msg and "found 2" in msg


def test_one_chip_fabric(tmp_path):
    # mobile.toml's fully_connected k = 1, and the default topology (fully_connected, k = chips)
    # when a 1-chip file has no [fabric.topology]
    s = load_system("mobile")
    assert s.topology.graph["kind"] == "fully_connected" and s.topology.number_of_edges() == 0
    path = tmp_path / "one.toml"
    path.write_text(BASE.replace("chips = 2", "chips = 1").split("[fabric.topology]")[0])
    g = load_system(str(path)).topology
    assert (g.number_of_nodes(), g.graph["terminals"]) == (1, [0])


def test_bad_near_memory_table(tmp_path):
    msg = _error(tmp_path, BASE + '[chip.memory.hbm.near_memory]\nplacement = "in"\n')
    assert "chip.memory.hbm.near_memory" in msg and "shard_limit" in msg


def test_bad_fabric_parameter(tmp_path):
    msg = _error(tmp_path, BASE + '[fabric]\nflit_bytes = "-3B"\n')
    assert "fabric.flit_bytes" in msg


def test_unknown_system_name():
    with pytest.raises(ConfigError) as info:
        load_system("no-such-system")
    assert "gpu-hbm" in str(info.value) and "\n" not in str(info.value)
