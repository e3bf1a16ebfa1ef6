"""Iteration reuse (sim.driver.reuse): replayed iterations conserve what they replay, a check of
every hit is the full simulation, and the totals stay within the reported error of reuse off."""

from pathlib import Path

import pytest

from sim.experiments.run import build_run, execute

TRACE = "traces/splitwise_conv_200.csv"


def run(**sets):
    spec, _ = build_run({"system": "default", "trace": TRACE, "limit": 16, "set": sets})
    summary, driver, _ = execute(spec)
    return summary, driver


@pytest.fixture(scope="module")
def on():
    return run()


@pytest.fixture(scope="module")
def off():
    return run(**{"driver.reuse": False})


def test_every_iteration_is_a_shape_seen_first_or_a_hit(on):
    summary, driver = on
    reuse = summary["reuse"]
    assert reuse["hits"] > 0 and reuse["shapes"] > 0
    assert summary["iterations"] == reuse["shapes"] + reuse["hits"]
    replayed = sum(it.reused for it in driver.iterations)
    assert replayed == reuse["hits"] - reuse["sampled"]
    assert reuse["sampled"] == reuse["hits"] // 100  # every 100th hit simulated in full (the default)


def test_reuse_conserves_tokens_and_stays_within_its_error_of_the_full_run(on, off):
    a, _ = on
    b, _ = off
    assert b["reuse"] == {"enabled": False}
    assert a["tokens"] == b["tokens"] and a["requests_finished"] == b["requests_finished"]
    assert a["iterations"] == b["iterations"]
    for key in ("ttft_ms", "tpot_ms", "e2e_latency_ms"):
        assert a[key]["mean"] == pytest.approx(b[key]["mean"], rel=0.01)
    assert a["energy_j"] == pytest.approx(b["energy_j"], rel=0.01)
    for name, joules in b["energy_by_component_j"].items():
        assert a["energy_by_component_j"][name] == pytest.approx(joules, rel=0.01), name
    assert a["memory_to_die_bytes_per_token"] == pytest.approx(b["memory_to_die_bytes_per_token"], rel=0.01)
    assert a["reuse"]["max_rel_error"] < 0.01


def test_checking_every_hit_is_the_full_simulation(off):
    b, full = off
    a, checked = run(**{"driver.reuse_check": 1})
    assert a["reuse"]["hits"] == a["reuse"]["sampled"] > 0
    assert not any(it.reused for it in checked.iterations)
    assert [it.step_ps for it in checked.iterations] == [it.step_ps for it in full.iterations]
    assert a["energy_j"] == pytest.approx(b["energy_j"], rel=1e-12)


def fixed(steps=6, **sets):
    spec, _ = build_run({"system": "default", "batch": 4, "context": 256, "steps": steps, "set": sets})
    summary, driver, _ = execute(spec)
    return summary, driver


def test_a_replay_is_its_shapes_stored_time_moved_by_the_context_it_has_beyond_it():
    summary, driver = fixed()
    its = driver.iterations
    per_token, _ = driver.reuse.slopes
    assert per_token > 0
    assert [it.reused for it in its] == [False] + [True] * 5
    # four decodes: the batch's cached context grows by 4 tokens an iteration
    assert [it.step_ps for it in its[1:]] == [its[0].step_ps + round(per_token * 4 * i) for i in range(1, 6)]
    assert summary["reuse"]["shapes"] == 1


def test_the_context_slope_is_the_kv_cache_read_time_of_a_token():
    _, driver = fixed(steps=1)
    model, chip = driver.model, driver.chips[0]
    per_layer = model.kv_bytes_per_token_layer(driver.plan.mapping.kv_dtype)
    kv_bytes = per_layer * model.layers / driver.lowering.kv_split  # on one chip
    peak = chip.memories[driver.plan.kv_memory].peak
    per_token, _ = driver.reuse.slopes
    # the kernel model reads the KV cache at its bandwidth efficiency (<= 1) of the memory's peak
    assert per_token >= kv_bytes / peak * 1e12
    assert per_token == pytest.approx(kv_bytes / peak * 1e12, rel=0.25)


def test_a_replay_waits_for_its_own_host_time():
    # async scheduling hides host time behind the previous step: none before the first one
    from sim.system.spec import load_system

    summary, driver = fixed(software="vllm-v0.6-async")
    its = driver.iterations
    assert [it.reused for it in its] == [False] + [True] * 5
    sw = load_system("default", {"software": "vllm-v0.6-async"}).software
    host = sw.iteration + sw.per_sequence * 4
    hidden = host * sw.overlap
    assert its[0].step_ps - its[1].step_ps == pytest.approx(hidden - driver.reuse.slopes[0] * 4, abs=1)
    assert summary["software_s"] == pytest.approx((host + 5 * (host - hidden)) / 1e12)
    assert summary["reuse"]["shapes"] == 1


def test_recording_ops_simulates_every_iteration():
    spec, _ = build_run(
        {"system": "default", "batch": 4, "context": 256, "steps": 4, "set": {"driver.record_ops": True}}
    )
    summary, driver, _ = execute(spec)
    assert summary["reuse"] == {"enabled": False}
    assert {op.iteration for op in driver.op_log} == {0, 1, 2, 3}


def test_a_collective_replayed_on_the_idle_fabric_is_the_simulated_one():
    def go(memo):
        spec, _ = build_run(
            {
                "system": "gpu-hbm",
                "model": "llama-3.1-70b",
                "batch": 4,
                "context": 512,
                "steps": 2,
                "set": {
                    "driver.collectives": "simulated",
                    "driver.collective_memo": memo,
                    "driver.reuse": False,
                },
            }
        )
        return execute(spec)

    memo, with_memo, _ = go(True)
    full, without, _ = go(False)
    assert memo["events"] < full["events"] / 10
    assert [it.step_ps for it in with_memo.iterations] == [it.step_ps for it in without.iterations]
    assert memo["energy_by_component_j"] == full["energy_by_component_j"]
    for a, b in zip(with_memo._fabric_counters, without._fabric_counters, strict=True):
        assert a.value == pytest.approx(b.value, rel=1e-12)


def test_prefill_heavy_iterations_replay_the_bytes_and_energy_of_their_own_batches(tmp_path):
    # long prompts while a crowd of decodes rides along, then short ones: iterations with the same
    # chunk count and tokens but very different KV reads must not share a shape's counters
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    t = 0.0
    for prompt, output, n in ((8000, 60, 16), (1900, 1, 30)):
        for _ in range(n):
            t += 0.02
            rows.append(f"2023-11-16 18:00:{t:010.7f},{prompt},{output}")
    trace = tmp_path / "mix.csv"
    trace.write_text("\n".join(rows) + "\n")

    def go(**sets):
        spec, _ = build_run({"system": "default", "trace": str(trace), "format": "azure", "set": sets})
        return execute(spec)[0]

    a, b = go(), go(**{"driver.reuse": False})
    assert a["reuse"]["hits"] > 0
    for name, joules in b["energy_by_component_j"].items():
        assert a["energy_by_component_j"][name] == pytest.approx(joules, rel=0.01), name
    assert a["memory_to_die_bytes_per_token"] == pytest.approx(b["memory_to_die_bytes_per_token"], rel=0.01)


def test_dram_at_the_command_level_is_never_skipped():
    tiny = Path(__file__).resolve().parents[1] / "robustness" / "corpus" / "tiny_llama_config.json"
    spec, _ = build_run(
        {
            "system": "default",
            "model": str(tiny),
            "batch": 2,
            "context": 64,
            "steps": 3,
            "set": {"chip.memory.hbm.fidelity": "detailed", "mapping.tp": 1},
        }
    )
    summary, driver, _ = execute(spec)
    assert summary["reuse"] == {"enabled": False} and not any(it.reused for it in driver.iterations)


def test_kernel_launch_gaps_keep_their_blame_on_replays():
    a, _ = fixed(steps=12, software="vllm-v0-eager")
    b, _ = fixed(steps=12, software="vllm-v0-eager", **{"driver.reuse": False})
    assert a["reuse"]["hits"] > 0
    for cause, share in b["stall_breakdown"].items():
        assert a["stall_breakdown"][cause] == pytest.approx(share, rel=1e-3), cause
