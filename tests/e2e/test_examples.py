"""Every script in examples/ runs as a user would run it, and its figures follow from its inputs."""

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def test_there_are_examples():
    names = {p.stem for p in SCRIPTS}
    assert {"hbf_device", "run_system", "custom_memory", "custom_batching"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_runs_as_a_script_from_anywhere(script, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def example():
    """Each example's main() results, run once in this process (examples register names)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")["main"]()
        return cache[name]

    return get


def test_hbf_device_follows_littles_law(example):
    rows = {r["in_flight"]: r for r in example("hbf_device")}
    few = rows[4]
    # latency-bound: N requests of 64 KiB per unloaded latency
    assert few["achieved_Bps"] == pytest.approx(4 * 65536 / (few["unloaded_latency_us"] * 1e-6), rel=0.02)
    assert rows[512]["fraction_of_peak"] > 0.8
    assert all(r["achieved_Bps"] <= r["peak_Bps"] * (1 + 1e-9) for r in rows.values())


def test_run_system_is_memory_bound_at_its_closed_form(example):
    from sim.model.spec import load_model

    out = example("run_system")
    # a decode step reads every weight but the embedding table (one row per token), split over tp 2,
    # from 2 HBM3 stacks of 819.2 GB/s per chip: it cannot beat bytes / peak
    model = load_model("llama-3.1-8b")
    weights_per_chip = (model.weight_bytes("bf16") - model.vocab * model.hidden * 2) / 2
    peak = 2 * 819.2e9
    assert out["tpot_ms"] >= weights_per_chip / peak * 1e3
    assert out["stall_breakdown"]["memory bandwidth (hbm)"] > 0.9
    assert out["capacity"]["sram"]["used_bytes"] == 2 * 8 * 2**20  # two stacks' 8 MiB windows on the die


def test_custom_memory_is_priced_by_its_declared_class(example):
    s = example("custom_memory")
    gb = 4 * 16 * 2**30 / 1e9  # four 16 GiB stacks, charged as DRAM at the default $15/GB
    assert s["capital_usd"] == pytest.approx(25_000 + gb * 15.0)
    assert s["stall_breakdown"]["memory bandwidth (mram)"] > 0.9


def test_custom_batching_policy_changes_the_order_not_the_work(example):
    out = example("custom_batching")
    fcfs, spf = out["continuous"], out["shortest_prompt_first"]
    assert spf["tokens"] == fcfs["tokens"]  # every request generates all its tokens either way
    assert spf["ttft_ms"]["p50"] < fcfs["ttft_ms"]["p50"]  # short prompts stop waiting behind long ones
