"""The batched stream model against the per-request one (the reference), and its event count.

The batched model walks the same prefetch window on a virtual clock and books each read when the
loop reaches its issue time; with no other traffic on the device it books the same reads at the same
times in the same order as the per-request model, so completion times are equal to the picosecond
(tolerance 0, measured: see benchmarks/bench_memory.py), and bytes, page senses and energy are equal
(the analytic level accounts a contiguous range at once but adds the same per-chunk terms in order).
"""

from __future__ import annotations

import pytest

from sim.core.simulation import Simulation
from sim.memory.factory import resolve_device
from sim.memory.prefetch import Prefetcher, PrefetchParams

MiB = 1 << 20
UNIT = MiB
# Tensors as the token driver streams them: unaligned bases, each hinting the next one.
TENSORS = [(3 * MiB + 12_345, 40 * MiB + 777), (50 * MiB + 4096, 24 * MiB), (90 * MiB + 100, 70 * MiB + 3)]
DEVICE_STATS = ("reads", "bytes_read", "pages_read", "register_hits", "channel_bytes", "interface_bytes")
PF_STATS = ("hits", "late_hits", "misses", "bytes", "bytes_requested", "wasted_bytes", "streams")


def stream_all(
    fidelity: str, model: str, tensors=TENSORS, window=32, policy="next_tensor", consume=0, unit=UNIT
):
    sim = Simulation(seed=5)
    dev = resolve_device("hbf-gen1", fidelity=fidelity).build(sim)
    pf = Prefetcher(
        sim, "pf", dev, PrefetchParams(policy=policy, window_pages=window, unit=unit, model=model)
    )
    reports = []

    def consumer():
        for k, (base, n) in enumerate(tensors):
            hint = tensors[k + 1] if k + 1 < len(tensors) else None
            reports.append((yield from pf.stream(k, base, n, hint_next=hint, consume_ps_per_page=consume)))

    sim.env.process(consumer())
    sim.run()
    sim.finalize()
    return sim, dev, pf, reports


@pytest.mark.parametrize("fidelity", ["analytic", "transaction"])
@pytest.mark.parametrize(
    "case",
    [
        dict(),  # bandwidth-bound window (32 x 1 MiB >= peak x latency): the fast-forwarded steady state
        dict(window=4),  # window-limited (Little's law): the FIFO idles between reads
        dict(policy="sequential"),
        dict(policy="on_demand"),
        dict(consume=300_000),  # a consumer slower than the device
        dict(unit=6 << 10, window=512, tensors=[(t[0], t[1] // 8) for t in TENSORS]),  # chunks share pages
    ],
    ids=["bw-bound", "window-4", "sequential", "on-demand", "slow-consumer", "sub-page-unit"],
)
def test_batched_stream_equals_the_per_request_stream(fidelity, case):
    ref = stream_all(fidelity, "requests", **case)
    got = stream_all(fidelity, "batched", **case)
    (_, dev_r, pf_r, rep_r), (_, dev_b, pf_b, rep_b) = ref, got
    # completion times, waits and hit classes: equal to the picosecond
    assert [(r.start_ps, r.end_ps, r.stall_ps, r.hits, r.late_hits, r.misses) for r in rep_b] == [
        (r.start_ps, r.end_ps, r.stall_ps, r.hits, r.late_hits, r.misses) for r in rep_r
    ]
    # bytes and page senses conserved
    for name in DEVICE_STATS:
        assert getattr(dev_b.stat, name).value == getattr(dev_r.stat, name).value, name
    for name in PF_STATS:
        assert getattr(pf_b.stat, name).value == getattr(pf_r.stat, name).value, name
    assert dev_b.stat.bytes_read.value == pf_b.stat.bytes_requested.value
    # energy: the same terms added in the same order
    for name in ("energy_pj", "array_energy_pj", "io_energy_pj"):
        assert getattr(dev_b.stat, name).value == getattr(dev_r.stat, name).value, name
    # latency and residence distributions, window occupancy over time
    for name in ("read_latency_ns",):
        a, b = getattr(dev_r.stat, name), getattr(dev_b.stat, name)
        assert (a.n, a.lo, a.hi) == (b.n, b.lo, b.hi) and b.mean == pytest.approx(a.mean, rel=1e-12)
    for name in ("residence_ns", "late_wait_ns", "miss_wait_ns"):
        a, b = getattr(pf_r.stat, name), getattr(pf_b.stat, name)
        assert (a.n, a.lo, a.hi) == (b.n, b.lo, b.hi) and b.mean == pytest.approx(a.mean, rel=1e-12)
    now = ref[0].now
    assert got[0].now == now
    occ_r, occ_b = pf_r.stat.window_occupancy, pf_b.stat.window_occupancy
    assert occ_b.hi == occ_r.hi and occ_b.value == occ_r.value
    assert occ_b.time_average(now) == pytest.approx(occ_r.time_average(now), rel=1e-12)


@pytest.mark.parametrize("fidelity", ["analytic", "transaction"])
def test_batched_stream_events_do_not_grow_with_bytes(fidelity):
    def events(model: str, scale: int) -> int:
        tensors = [(b, n * scale) for b, n in [(0, 8 * MiB + 5), (40 * MiB, 8 * MiB)]]
        return stream_all(fidelity, model, tensors=tensors)[0].env.events_processed

    one, two = events("batched", 1), events("batched", 2)
    assert two == one  # one timeout per stream, whatever it moves
    r1, r2 = events("requests", 1), events("requests", 2)
    assert r2 > 1.5 * r1  # the reference: events grow with the bytes (one or more per chunk)


def test_the_driver_gets_the_batched_model_for_flash_at_transaction_and_analytic_levels():
    for fidelity, batched in (("analytic", True), ("transaction", True), ("detailed", False)):
        sim = Simulation()
        dev = resolve_device("hbf-gen1", fidelity=fidelity).build(sim)
        pf = Prefetcher(sim, "pf", dev, PrefetchParams(unit=UNIT))
        assert (pf._reads is not None) == batched
