"""Iteration reuse and GEMM tile quantisation: a decode shape's bucket never holds batches on both
sides of a tile edge (the 3.2% worst check of the full Azure replay: 64 decodes replayed from 65),
and the worst check is named."""

import pytest

from sim.driver.reuse import IterationReuse, batch_sums, significant
from sim.experiments.run import build_run, execute
from sim.serving.scheduler import Batch, BatchEntry


def decodes(n: int, context: int = 240_000) -> tuple[int, ...]:
    """The sums of a decode-only batch of ``n`` entries holding ``context`` cached tokens in all."""
    each = [context // n + (i < context % n) for i in range(n)]
    entries = [BatchEntry(None, "decode", 1, c + 1, True) for c in each]  # type: ignore[arg-type]
    return batch_sums(Batch(0, 0, tuple(entries)))


def reuse(tiles: tuple[int, ...]) -> IterationReuse:
    return IterationReuse([], [], bits=6, check_every=100, row_tiles=tiles)


def test_a_bucket_that_straddles_a_tile_edge_is_split_and_no_other():
    plain, tiled = reuse(()), reuse((64,))
    # at 6 bits, 64..127 fall in buckets of 2 and 128..255 in buckets of 4: each starts on a tile edge
    assert significant(65, 6) == 64 and significant(131, 6) == 128
    assert plain.key(decodes(64)) == plain.key(decodes(65))
    for edge in (64, 128, 192, 256):
        assert tiled.key(decodes(edge)) != tiled.key(decodes(edge + 1)), edge
    # buckets inside one tile keep their iterations together
    for a, b in ((66, 67), (129, 131), (60, 60), (193, 195)):
        assert plain.key(decodes(a)) == plain.key(decodes(b))
        assert tiled.key(decodes(a)) == tiled.key(decodes(b)), (a, b)
    # a tile of one row is no tile quantisation: the keys are the plain ones
    assert reuse((1,)).key(decodes(65)) == plain.key(decodes(65))


def test_prefill_shapes_keep_their_kernel_model_shift_key():
    prefill = BatchEntry(None, "prefill", 100, 100, True)  # type: ignore[arg-type]
    sums = batch_sums(Batch(0, 0, (prefill,)))
    r = IterationReuse([], [], 6, 100, prefill_bits=3, kernel_ps=lambda e: 0.0, row_tiles=(64,))
    assert r.key(sums) == (1, significant(100, 3), 0, 0)


@pytest.fixture(scope="module")
def steps():
    """Full-simulated decode step time of gpu-hbm's 70B at 64 and 65 decodes (reuse off)."""
    out = {}
    for n in (64, 65):
        spec, _ = build_run(
            {
                "system": "gpu-hbm",
                "model": "llama-3.1-70b",
                "batch": n,
                "context": 1248,
                "steps": 1,
                "set": {"driver.reuse": False},
            }
        )
        _, driver, _ = execute(spec)
        out[n] = driver
    return out


def test_the_tile_edge_is_a_step_in_the_full_simulation_and_the_driver_keys_it(steps):
    d64, d65 = steps[64], steps[65]
    tm = d64.chips[0].die.params.gemm_tile_m
    assert tm == 64
    # what the context shift could move a 65-decode shape to 64 decodes by: one entry's context
    per_token = d64._context_slopes()[0]
    step = d65.iterations[0].step_ps - d64.iterations[0].step_ps
    assert step > 10 * per_token * 1248
    # the driver's reuse keys on the die's tile rows, so the two never share a stored iteration
    spec, _ = build_run(
        {"system": "gpu-hbm", "model": "llama-3.1-70b", "batch": 64, "context": 1248, "steps": 1}
    )
    _, driver, _ = execute(spec)
    assert driver.reuse.row_tiles == (tm,)
    assert driver.reuse.key(decodes(64)) != driver.reuse.key(decodes(65))


def test_the_worst_check_is_named_with_its_batch_and_the_stored_one():
    spec, _ = build_run(
        {
            "system": "default",
            "trace": "traces/splitwise_conv_200.csv",
            "limit": 16,
            "set": {"driver.reuse_check": 1},
        }
    )
    summary, driver, _ = execute(spec)
    w = driver.reuse.worst
    assert summary["reuse"]["sampled"] > 0 and w is not None
    assert w["rel_error"] == summary["reuse"]["max_rel_error"]
    err = abs(w["replayed_device_ps"] - w["device_ps"]) / (w["host_ps"] + w["device_ps"])
    assert err == w["rel_error"]
    # the two batches share the shape the check was keyed on
    assert driver.reuse.key(tuple(w["sums"])) == driver.reuse.key(tuple(w["stored_sums"])) == tuple(w["key"])
