"""The token-generation driver against closed forms: memory-bound decode, scaling, conservation."""

import itertools
import math

import pytest

from sim.core.errors import CapacityError
from sim.core.units import PS_PER_S
from sim.experiments.run import RunSpec, execute
from sim.model.spec import load_model
from sim.requests.record import Request
from sim.serving.mapping import mapping_from, plan
from sim.system.spec import system_from_mapping


def gpu(chips=1, stacks=2, memory="hbm3", extra=None, mapping=None):
    data = {
        "system": {"name": "t", "chips": chips},
        "chip": {"compute": {}, "memory": {"hbm": {"preset": memory, "stacks": stacks}}},
        "fabric": {"topology": {"kind": "fully_connected", "k": chips}, "flit_bytes": "256B"},
        "mapping": mapping or {"tp": chips},
    }
    if extra:
        data["chip"]["memory"].update(extra)
    return system_from_mapping(data)


@pytest.fixture(scope="module")
def llama8b():
    return load_model("llama-3.1-8b")


def decode_bytes(model, tp, batch, context, dtype="bf16"):
    """Bytes one chip moves in one decode step: weights (1/tp) + KV read + KV write (1/min(tp, kv)).

    Decode reads every weight except the embedding table, of which it gathers one row per token.
    """
    assert not model.tie_embeddings
    table = model.vocab * model.hidden * 2
    weights = model.weight_bytes(dtype) - table
    kv_tok = model.kv_bytes_per_token_layer("bf16") * model.layers / min(tp, model.kv_heads)
    return weights / tp + batch * (context - 1) * kv_tok + batch * kv_tok


@pytest.mark.parametrize(("batch", "context"), [(1, 128), (4, 1024), (16, 2048)])
def test_small_batch_decode_is_memory_bound_at_the_closed_form(llama8b, batch, context):
    system = gpu(stacks=2)
    summary, _drv, _ = execute(
        RunSpec(llama8b, system, mapping_from(system), None, batch=batch, context=context, steps=3)
    )
    peak = system.memories["hbm"].peak_bandwidth_Bps()
    bound_ms = decode_bytes(llama8b, 1, batch, context + 1) / peak * 1e3
    step = summary["step_time_ms"]["mean"]
    assert step >= bound_ms * (1 - 1e-6)  # never faster than bytes / peak bandwidth
    assert step <= bound_ms * 1.05  # streaming reaches peak; compute hides under memory
    assert summary["stall_breakdown"]["memory bandwidth (hbm)"] > 0.9


def test_tensor_parallelism_divides_the_memory_time(llama8b):
    one = gpu(chips=1, stacks=2)
    two = gpu(chips=2, stacks=2)
    s1, _, _ = execute(RunSpec(llama8b, one, mapping_from(one), None, batch=1, context=256, steps=2))
    s2, _, _ = execute(RunSpec(llama8b, two, mapping_from(two), None, batch=1, context=256, steps=2))
    mem1 = s1["step_time_ms"]["mean"] * s1["stall_breakdown"]["memory bandwidth (hbm)"]
    mem2 = s2["step_time_ms"]["mean"] * s2["stall_breakdown"]["memory bandwidth (hbm)"]
    assert mem2 == pytest.approx(mem1 / 2, rel=0.03)
    assert s2["stall_breakdown"]["collective (allreduce)"] > 0


def test_every_request_gets_exactly_its_output_tokens(llama8b):
    system = gpu(stacks=2)
    reqs = [Request(i, i * 2_000_000_000, 50 + 10 * i, 5 + i % 4) for i in range(12)]
    summary, drv, _ = execute(RunSpec(llama8b, system, mapping_from(system), reqs, batching={"max_batch": 4}))
    assert summary["requests_finished"] == len(reqs)
    assert summary["tokens"] == sum(r.output_tokens for r in reqs)
    for rec in drv.records.values():
        assert rec.generated == rec.request.output_tokens
        assert rec.first_token_ps >= rec.request.arrival_ps
    # iterations never overlap and tile the busy time
    its = drv.iterations
    assert all(a.end_ps <= b.start_ps for a, b in itertools.pairwise(its))


def test_weights_on_flash_stream_through_prefetch_windows(llama8b):
    system = gpu(
        stacks=1,
        extra={"flash": {"preset": "hbf-gen1", "stacks": 1}},
        mapping={"tp": 1, "weights": "flash", "kv": "hbm"},
    )
    summary, _, _ = execute(
        RunSpec(llama8b, system, mapping_from(system), None, batch=1, context=128, steps=3)
    )
    flash_peak = system.memories["flash"].peak_bandwidth_Bps()
    weights = decode_bytes(llama8b, 1, 0, 1)  # weights only (the KV is on HBM)
    assert summary["step_time_ms"]["mean"] >= weights / flash_peak * 1e3
    # with next-tensor prefetch the flash stays busy across layers: within 5% of its peak
    assert summary["step_time_ms"]["mean"] <= weights / flash_peak * 1e3 * 1.05
    assert any(k.startswith("memory bandwidth (flash)") for k in summary["stall_breakdown"])


def test_a_model_that_does_not_fit_names_the_memory_and_the_overflow():
    system = gpu(stacks=1)  # 16 GiB
    with pytest.raises(CapacityError, match=r"weights overflow memory 'hbm'.*over by"):
        plan(load_model("llama-3.1-70b"), system, mapping_from(system))


def test_kv_capacity_follows_from_free_memory(llama8b):
    system = gpu(stacks=2)
    p = plan(llama8b, system, mapping_from(system))
    free = system.memories["hbm"].capacity_bytes() - p.weight_bytes_per_chip
    per_token = llama8b.kv_bytes_per_token_layer("bf16") * llama8b.layers
    assert p.kv_capacity_tokens == math.floor(free * p.mapping.kv_budget / per_token)
    assert PS_PER_S  # keep import honest


def pnm(placement, shard_limit="0B", units=32):
    near = {"placement": placement, "units": units}
    if shard_limit != "0B":
        near["shard_limit"] = shard_limit
    if placement == "in":  # PIM reads at the banks: 4x the stack's interface (Samsung HBM-PIM's claim)
        near["local_bandwidth"] = "13107.2GB/s"
    return system_from_mapping(
        {
            "system": {"name": "pnm", "chips": 1},
            "chip": {
                "compute": {},
                "memory": {"dram": {"preset": "dram3d-logic", "stacks": 1, "near_memory": near}},
            },
            "fabric": {"topology": {"kind": "fully_connected", "k": 1}},
            "mapping": {"tp": 1, "compute": "near_memory"},
        }
    )


def test_near_memory_gemv_reads_weights_at_the_memory_bandwidth(llama8b):
    """PNM: the GEMV runs beside the memory, so a decode step costs weights / internal bandwidth."""
    system = pnm("near")
    summary, _, _ = execute(
        RunSpec(llama8b, system, mapping_from(system), None, batch=1, context=128, steps=2)
    )
    internal = system.memories["dram"].peak_bandwidth_Bps()
    weights = decode_bytes(llama8b, 1, 0, 1)
    step = summary["step_time_ms"]["mean"]
    assert step >= weights / internal * 1e3
    assert step <= weights / internal * 1e3 * 1.10  # plus the KV stream on the same memory
    # a batch-1 GEMV on the units is bound by its weight stream, which the blame names as such
    shares = summary["stall_breakdown"]
    assert max(shares, key=shares.get) == "memory bandwidth (dram)"


def test_processing_in_memory_rejects_shards_larger_than_a_bank(llama8b):
    """PIM: a 4096 x 14336 bf16 FFN matrix (117 MB) over 32 bank units is 3.7 MB per unit: fits 64 MiB;
    with 1 unit it does not (the paper's 32-64 MB bank-shard argument)."""
    plan(llama8b, pnm("in", "64MiB", units=32), mapping_from(pnm("in", "64MiB", units=32)))
    with pytest.raises(CapacityError, match="per bank unit"):
        system = pnm("in", "64MiB", units=1)
        plan(llama8b, system, mapping_from(system))


def test_near_memory_macs_cut_the_bytes_crossing_to_the_die(llama8b):
    """Only result vectors leave the memory when the GEMVs run beside it (PNM)."""
    system = pnm("near")
    die, _, _ = execute(
        RunSpec(
            llama8b, system, mapping_from(system, {"compute": "die"}), None, batch=2, context=256, steps=2
        )
    )
    near, _, _ = execute(RunSpec(llama8b, system, mapping_from(system), None, batch=2, context=256, steps=2))
    weights = decode_bytes(llama8b, 1, 0, 1)
    assert die["memory_to_die_bytes_per_token"] >= weights / 2  # two tokens share one weight read
    assert near["memory_to_die_bytes_per_token"] < die["memory_to_die_bytes_per_token"] / 50


def test_wider_prefetch_windows_cut_flash_stalls_until_bandwidth_x_latency(llama8b):
    """Little's law on the flash: a window below peak x latency (1.64 TB/s x ~10 us = 16 MB per stack)
    cannot keep the stack busy; beyond it the step time flattens at weights / peak."""
    steps = {}
    for window in ("2MiB", "8MiB", "32MiB", "64MiB"):
        flash = {
            "preset": "hbf-gen1",
            "stacks": 1,
            "params": {"controller_sram": "64MiB"},
            "prefetch": {"window": window, "policy": "next_tensor"},
        }
        system = gpu(stacks=1, extra={"flash": flash}, mapping={"tp": 1, "weights": "flash", "kv": "hbm"})
        s, _, _ = execute(RunSpec(llama8b, system, mapping_from(system), None, batch=1, context=128, steps=2))
        steps[window] = s["step_time_ms"]["mean"]
    peak_ms = decode_bytes(llama8b, 1, 0, 1) / system.memories["flash"].peak_bandwidth_Bps() * 1e3
    assert steps["2MiB"] > steps["8MiB"] > steps["32MiB"] * 1.02  # below the product: stalls shrink
    assert steps["32MiB"] == pytest.approx(steps["64MiB"], rel=0.02)  # above it: flat
    assert steps["64MiB"] == pytest.approx(peak_ms, rel=0.05)
    assert steps["2MiB"] > peak_ms * 1.5


def test_same_seed_gives_byte_identical_summaries(llama8b):
    import json

    system = gpu(stacks=2)
    reqs = [Request(i, i * 1_000_000_000, 40 + i, 4) for i in range(6)]

    def once():
        s, _, _ = execute(RunSpec(llama8b, system, mapping_from(system), list(reqs), seed=3))
        for volatile in ("wall_s", "events_per_s", "sim_s_per_wall_s"):
            s.pop(volatile)
        return json.dumps(s, sort_keys=True)

    assert once() == once()
