"""No op beats its physical bound, near-memory compute shares the memory it sits beside, and PIM
differs from PNM where the hardware does.

The driver checks every op as it runs (``bound_violations``); the suite runs in strict mode
(tests/conftest.py), so any violation in any test stops that test. Here the checks are aimed at the
cases that used to slip through: weights skipping the memory under near-memory compute, and random
systems, models, batches, contexts and placements.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sim.core.errors import CapacityError, ConfigError
from sim.experiments.run import build_run, execute
from sim.model.spec import load_model


def run(system, model, batch, context, steps=1, **sets):
    spec, _ = build_run(
        {"system": system, "model": model, "batch": batch, "context": context, "steps": steps, "set": sets}
    )
    return execute(spec)


def decode_weights(name: str, tp: int) -> float:
    """Weight bytes one chip reads per decode step: all but the embedding table (a row gather)."""
    m = load_model(name)
    return (m.weight_bytes("bf16") - m.vocab * m.hidden * 2) / tp


def test_pnm_decode_step_is_at_least_its_bytes_over_the_stack_bandwidth():
    """pnm-3d, Llama-3.1-70B, batch 8, context 32768: the weights and the KV cache both cross the
    stack's 3,276.8 GB/s TSVs, shared with the near-memory MACs: (10.74 GB + 8.69 GB) / 3.277 TB/s
    = 5.93 ms per step, even with no software overhead."""
    summary, _, _ = run("pnm-3d", "llama-3.1-70b", 8, 32768, steps=2, software="none")
    model = load_model("llama-3.1-70b")
    kv = 8 * model.kv_cache_bytes("bf16", 32768) / 8  # 8 sequences, split over 8 KV-head groups (tp 16)
    weights = model.weight_bytes("bf16") / 16
    bound_ms = (kv + weights) / 3276.8e9 * 1e3
    assert bound_ms == pytest.approx(5.93, rel=0.02)
    assert summary["step_time_ms"]["mean"] >= bound_ms
    assert summary["bound_violations"] == 0


@pytest.mark.parametrize("placement", ["near", "in"])
def test_near_memory_energy_counts_every_byte_read(placement):
    """Energy of the memory >= bytes read from it x its read energy per bit, whether the bytes went
    through the interface (PNM) or stayed inside it (PIM)."""
    sets = {"mapping.tp": 4}
    if placement == "in":
        sets |= {
            "chip.memory.dram.near_memory.placement": "in",
            "chip.memory.dram.near_memory.shard_limit": "64MiB",
            "chip.memory.dram.near_memory.local_bandwidth": "13107.2GB/s",
        }
    _, driver, _ = run("pnm-3d", "llama-3.1-8b", 4, 1024, steps=2, **sets)
    dev = driver.chips[0].memories["dram"].device
    read_bytes = dev.stat.bytes_read.value + dev.stat.internal_bytes_read.value
    assert (
        dev.stat.internal_bytes_read.value > 0
        if placement == "in"
        else dev.stat.internal_bytes_read.value == 0
    )
    assert dev.stat.energy_pj.value >= read_bytes * 8 * dev.params.read_energy_per_bit
    assert read_bytes >= 2 * decode_weights("llama-3.1-8b", 4)  # two steps read every weight they use


def test_pim_reads_at_the_banks_and_pnm_through_the_tsvs():
    """Same chip and model: PIM's weights stream at the bank-level 13.1 TB/s and skip the TSV energy;
    PNM's cross the 3.28 TB/s TSVs. Memory-bound decode is faster and cheaper with PIM."""
    pnm, _, _ = run("pnm-3d", "llama-3.1-8b", 1, 512, steps=2, software="none", **{"mapping.tp": 4})
    pim, driver, _ = run(
        "pnm-3d",
        "llama-3.1-8b",
        1,
        512,
        steps=2,
        software="none",
        **{
            "mapping.tp": 4,
            "chip.memory.dram.near_memory.placement": "in",
            "chip.memory.dram.near_memory.shard_limit": "64MiB",
            "chip.memory.dram.near_memory.local_bandwidth": "13107.2GB/s",
        },
    )
    assert pim["step_time_ms"]["mean"] < pnm["step_time_ms"]["mean"]
    assert pim["energy_by_component_j"]["memory.dram"] < pnm["energy_by_component_j"]["memory.dram"]
    near = driver.chips[0].memories["dram"].near
    # the units never read faster than their path: two steps of weights at 13.1 TB/s at least
    busy_s = near.timeline.busy_until_ps(driver.env.now) * 1e-12
    assert busy_s >= 2 * decode_weights("llama-3.1-8b", 4) / 13107.2e9


SYSTEMS = ["default", "gpu-hbm", "hbf-hybrid", "pnm-3d", "gpu-hbm-a100", "mobile"]
MODELS = ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen3-30b-a3b", "qwen3-32b"]
PIM = {
    "chip.memory.dram.near_memory.placement": "in",
    "chip.memory.dram.near_memory.units": 2048,
    "chip.memory.dram.near_memory.macs_per_cycle": 16,
    "chip.memory.dram.near_memory.clock": "300MHz",
    "chip.memory.dram.near_memory.shard_limit": "64MiB",
    "chip.memory.dram.near_memory.local_bandwidth": "13107.2GB/s",
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    system=st.sampled_from(SYSTEMS),
    model=st.sampled_from(MODELS),
    batch=st.sampled_from([1, 3, 16, 64]),
    context=st.sampled_from([16, 700, 4096]),
    compute=st.sampled_from(["die", "near_memory"]),
    tp=st.sampled_from([1, 2, 4, 8]),
    pp=st.sampled_from([1, 1, 2]),
    dtype=st.sampled_from(["bf16", "fp8", "fp4"]),
    placement=st.data(),
)
def test_no_op_beats_its_bound_anywhere(system, model, batch, context, compute, tp, pp, dtype, placement):
    """Systems x models x batch x context x placement (where weights and KV live, die or near-memory
    or in-memory compute, a prefetch buffer on any memory, weight type, pipeline stages)."""
    from sim.system.spec import load_system

    memories = list(load_system(system).memories)
    weights = placement.draw(st.sampled_from(memories), label="weights")
    kv = placement.draw(st.sampled_from(memories), label="kv")
    sets = {
        "mapping.tp": tp,
        "mapping.pp": pp,
        "mapping.compute": compute,
        "mapping.weights": weights,
        "mapping.kv": kv,
        "mapping.weight_dtype": dtype,
    }
    if placement.draw(st.booleans(), label="prefetch buffer on the die"):
        sets[f"chip.memory.{weights}.prefetch.window"] = "1MiB"
        sets[f"chip.memory.{weights}.prefetch.buffer"] = "die"
        if placement.draw(st.booleans(), label="fast die SRAM"):
            sets["chip.compute.sram_bandwidth"] = "20TB/s"
    if system == "pnm-3d" and compute == "near_memory" and placement.draw(st.booleans(), label="PIM"):
        sets.update(PIM)
    if model in ("mixtral-8x7b", "qwen3-30b-a3b"):
        sets["mapping.ep"] = 2
    try:
        summary, _, _ = run(system, model, batch, context, steps=1, **sets)
    except (CapacityError, ConfigError):
        assume(False)  # a mapping that does not fit, or a placement the system cannot take
    assert summary["bound_violations"] == 0
