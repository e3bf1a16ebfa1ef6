"""The simulator times the kernels that were measured: the lowering of a dense layer gives the same
kernels (shapes, FLOPs, bytes) the calibration timed; precision follows weights and activations;
and decode steps grow with the batch for the reasons the kernel model gives."""

import pytest

from sim.calibration.compute import OPERATORS
from sim.compute.kernels import DenseLayerShape, dense_layer_kernels
from sim.experiments.run import build_run, execute
from sim.model.spec import load_model
from sim.requests.record import Request
from sim.serving.lowering import Lowering
from sim.serving.mapping import mapping_from, plan
from sim.serving.scheduler import BatchEntry
from sim.system.spec import load_system

PROFILED = [op for op in OPERATORS if op != "emb"]  # one layer's operators, in order


@pytest.mark.parametrize("tokens", [1, 37, 512])
@pytest.mark.parametrize(("name", "tp"), [("llama-2-70b", 8), ("llama-3.1-8b", 1), ("llama-3.1-8b", 2)])
def test_a_dense_layer_lowers_to_the_profiled_kernels(tokens, name, tp):
    model = load_model(name)
    system = load_system("gpu-hbm")
    p = plan(model, system, mapping_from(system, {"tp": tp}))
    lowering = Lowering(model, p)
    entries = [BatchEntry(Request(i, 0, 100, 10), "decode", 1, 101, True) for i in range(tokens)]
    attn, ffn = lowering.layer_ops(3, entries)
    ours = [k for k in (*attn.kernels, *ffn.kernels) if not k.kind.startswith("attn_")]
    shape = DenseLayerShape(model.hidden, model.heads, model.kv_heads, model.head_dim, model.intermediate)
    theirs = [dense_layer_kernels(shape, tokens, tp)[name] for name in PROFILED]
    assert [k.kind for k in ours] == [k.kind for k in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert (a.m, a.k, a.n) == (b.m, b.k, b.n)
        assert a.flops == pytest.approx(b.flops)
        assert a.act_bytes == pytest.approx(b.act_bytes)
        # the op's norm weights ride with its GEMMs: within 0.1% of the bare matrices
        assert a.weight_bytes == pytest.approx(b.weight_bytes, rel=1e-3)
    assert sum(k.weight_bytes for k in ours) == pytest.approx(attn.weight_bytes + ffn.weight_bytes)


def test_gemms_run_at_fp8_only_when_weights_and_activations_are_fp8():
    model = load_model("llama-3.1-8b")
    system = load_system("default")
    entries = [BatchEntry(Request(0, 0, 100, 10), "decode", 1, 101, True)]
    for weights, acts, expected in (("bf16", "bf16", "bf16"), ("fp8", "bf16", "bf16"), ("fp8", "fp8", "fp8")):
        p = plan(model, system, mapping_from(system, {"weight_dtype": weights, "activation_dtype": acts}))
        attn, ffn = Lowering(model, p).layer_ops(0, entries)
        gemms = [k for k in (*attn.kernels, *ffn.kernels) if k.kind == "gemm"]
        assert {k.precision for k in gemms} == {expected}


def test_fp8_prefill_is_faster_where_it_is_compute_bound():
    from sim.compute.kernels import KernelModel, Sources

    model = load_model("llama-3.1-8b")
    system = load_system("default")
    km = KernelModel(system.compute)
    src = Sources(3.35e12, 3.35e12, 3.35e12)
    entries = [BatchEntry(Request(0, 0, 4096, 2), "prefill", 4096, 4096, True)]
    times = {}
    for dtype in ("bf16", "fp8"):
        p = plan(model, system, mapping_from(system, {"weight_dtype": dtype, "activation_dtype": dtype}))
        _, ffn = Lowering(model, p).layer_ops(0, entries)
        up = next(k for k in ffn.kernels if k.kind == "gemm")
        times[dtype] = km.time(up, src)
    assert times["bf16"].compute_ps > 0 and times["fp8"].compute_ps > 0
    assert times["fp8"].total_ps < 0.6 * times["bf16"].total_ps  # twice the math rate, minus fixed costs


def test_llama2_70b_tp8_decode_grows_with_the_batch_for_stated_reasons():
    """From batch 1 to 64 a decode step grows: more KV cache to read, bigger GEMMs, and per-request
    host work. Every microsecond of growth is accounted for by the blame chain's causes."""
    out = {}
    for batch in (1, 64):
        spec, _ = build_run(
            {"system": "gpu-hbm", "model": "llama-2-70b", "batch": batch, "context": 576, "steps": 2}
        )
        summary, driver, _ = execute(spec)
        out[batch] = (summary, driver)
    s1, s64 = out[1][0], out[64][0]
    growth = s64["step_time_ms"]["mean"] - s1["step_time_ms"]["mean"]
    assert growth > 0
    per_step = {
        b: {k: v / len(d.iterations) / 1e9 for k, v in d.blame.by_label().items()}
        for b, (_, d) in out.items()
    }
    delta = {
        k: per_step[64].get(k, 0.0) - per_step[1].get(k, 0.0) for k in set(per_step[1]) | set(per_step[64])
    }
    assert sum(delta.values()) == pytest.approx(growth, rel=1e-6)
    assert delta["memory bandwidth (hbm)"] > 0  # 64 sequences' KV cache
    assert delta["software overhead"] > 0  # per-request host work
    assert delta.get("compute die", 0.0) > 0  # larger GEMMs and attention
