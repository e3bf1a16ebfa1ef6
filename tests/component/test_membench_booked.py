"""membench's booked closed loop gives the results of its event-per-request loop, every stat included.

On a device that books requests at arrival (HBF at the transaction level) membench keeps its own
queue of completions instead of a SimPy process per worker and a timeout per request. The two loops
must agree on everything but the event count: the same requests, the same times, the same stats in
the same order (float sums included).
"""

from __future__ import annotations

import json

import pytest

from sim.core.simulation import Simulation
from sim.experiments.membench import MembenchParams, run_membench
from sim.memory.device import MemRequest
from sim.memory.factory import resolve_device
from sim.memory.hbf import HighBandwidthFlash

SPEED = ("events", "wall_s", "events_per_s", "sim_s_per_wall_s", "simulated_bytes_per_wall_s")

CASES = {
    "seq-4k": ({}, dict(pattern="seq", request_size=4096, concurrency=512, total_bytes=8 << 20)),
    "random-4k-writes": (
        {},
        dict(pattern="random", request_size=4096, concurrency=96, total_bytes=4 << 20, write_ratio=0.3),
    ),
    "seq-6k-across-pages": ({}, dict(pattern="seq", request_size=6144, concurrency=40, total_bytes=3 << 20)),
    "die-limited": (
        {"multiplane": "4"},
        dict(pattern="random", request_size=8192, concurrency=256, total_bytes=8 << 20),
    ),
    "one-outstanding": ({}, dict(pattern="seq", request_size=4096, concurrency=1, total_bytes=256 << 10)),
}


def _run(overrides: dict[str, str], membench: dict, booked: bool, monkeypatch: pytest.MonkeyPatch) -> dict:
    with monkeypatch.context() as m:
        if not booked:
            m.setattr(HighBandwidthFlash, "books_arrivals", lambda self: False)
        out = run_membench(resolve_device("hbf-gen1", overrides), MembenchParams(**membench), seed=3)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_booked_loop_matches_event_loop(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides, membench = CASES[case]
    booked = _run(overrides, membench, True, monkeypatch)
    events = _run(overrides, membench, False, monkeypatch)
    assert booked["events"] < booked["requests"] <= events["events"]
    for out in (booked, events):
        for key in SPEED:
            out.pop(key)
    assert json.dumps(booked, sort_keys=True) == json.dumps(events, sort_keys=True)


def test_arrive_and_depart_record_like_access() -> None:
    """A request booked with arrive/depart leaves the stats a request through access leaves."""

    def one(via_access: bool) -> dict:
        sim = Simulation()
        dev = resolve_device("hbf-gen1").build(sim)
        req = MemRequest(3 * 4096, 4096)
        if via_access:
            ev = dev.access(req)
            sim.run()
            assert ev.processed
        else:
            assert dev.books_arrivals()
            done = dev.arrive(req, 0)
            dev.depart(req, done)
            sim.run(until=done)
        sim.finalize()
        assert req.done_ps == dev.unloaded_latency_ps(4096) == sim.now
        return sim.stats.collect(sim.now)

    assert one(True) == one(False)
