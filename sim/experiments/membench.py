"""Memory microbenchmark: a closed loop of ``concurrency`` outstanding requests against one device.

Addresses are drawn up front from a named RNG stream, in issue order, so the run is deterministic
whatever order the workers interleave in. Achieved bandwidth is bytes / simulated time from the
first issue to the last completion.

Inputs are checked before the run: the seed, the number of requests (at most
:data:`~sim.core.limits.MAX_REQUESTS`), the start address (inside the device); a simulated time
beyond :data:`~sim.core.limits.MAX_SIM_PS` stops the run with a :class:`SimulationError` before any
64-bit arithmetic can overflow.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from sim.core.errors import ConfigError, SimulationError
from sim.core.limits import MAX_REQUESTS, MAX_SIM_PS
from sim.core.params import ParamSet, non_negative, one_of, param, positive
from sim.core.simulation import Simulation
from sim.core.units import COUNT, PS_PER_NS, PS_PER_S, RATIO, SIZE
from sim.memory.device import MemoryDevice, MemRequest
from sim.memory.factory import DeviceSpec
from sim.stats.percentiles import percentile

Progress = Callable[[int, int], None]
"""(requests done, requests in all): a display hook that must not touch the simulation."""
PROGRESS_EVERY = (1 << 14) - 1  # the booked loop reports every 16,384 requests

PATTERNS = ("seq", "random")


@dataclass(frozen=True)
class MembenchParams(ParamSet):
    """What a membench run does (also settable from a sweep)."""

    pattern: str = param(
        "seq", str, "address pattern: seq (streaming) or random (uniform, aligned)", check=one_of(*PATTERNS)
    )
    request_size: int = param("64KiB", SIZE, "bytes per request", check=positive)
    concurrency: int = param(64, COUNT, "requests kept outstanding (closed loop)", check=positive)
    total_bytes: int = param("256MiB", SIZE, "bytes to move in the whole run", check=positive)
    write_ratio: float = param(
        0.0,
        RATIO,
        "fraction of requests that are writes",
        check=lambda v: None if 0 <= v <= 1 else "a fraction in [0, 1]",
    )
    start_address: int = param(0, SIZE, "first byte address of the sequential stream", check=non_negative)

    def validate(self) -> None:
        if self.request_size > MAX_REQUEST_BYTES:
            raise ConfigError(
                f"expected a request of at most {MAX_REQUEST_BYTES:,} B (1 GiB), found {self.request_size:,}",
                where="request_size",
            )
        if self.request_size > self.total_bytes:
            raise ConfigError(
                f"expected a request size no larger than the bytes to move ({self.total_bytes:,} B), "
                f"found {self.request_size:,}",
                where="request_size",
            )


MAX_REQUEST_BYTES = 1 << 30
"""Bytes of one membench request: a memory request beyond 1 GiB is not one."""


def _addresses(params: MembenchParams, capacity: int, rng: np.random.Generator) -> np.ndarray:
    size = params.request_size
    slots = capacity // size
    if slots == 0:
        raise ConfigError(
            f"request size {size} B exceeds device capacity {capacity} B", where="--request-size"
        )
    count = -(-params.total_bytes // size)
    if count > MAX_REQUESTS:
        raise ConfigError(
            f"expected at most {MAX_REQUESTS:,} requests (MAX_REQUESTS) of {size:,} B, found "
            f"{count:,} to move {params.total_bytes:,} B; use larger requests or fewer bytes",
            where="--bytes",
        )
    if params.start_address >= capacity:
        raise ConfigError(
            f"expected a start address below the device capacity of {capacity:,} B, "
            f"found {params.start_address:,}",
            where="start_address",
        )
    if params.pattern == "seq":
        first = params.start_address // size
        return ((np.arange(count, dtype=np.int64) + first) % slots) * size
    return rng.integers(0, slots, size=count, dtype=np.int64) * size


def run_membench(
    spec: DeviceSpec, params: MembenchParams, seed: int = 0, progress: Progress | None = None
) -> dict[str, Any]:
    """Run one microbenchmark; returns the summary dict that ``memwall membench --json`` prints.

    ``progress(requests done, requests in all)`` is called now and then (a display only)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        shown = seed if isinstance(seed, int) and abs(seed) < 10**30 else type(seed).__name__
        raise ConfigError(f"expected a whole number from 0 to 2^63 - 1, found {shown}", where="--seed")
    sim = Simulation(seed=seed, config={"device": spec.resolved(), "membench": params.as_dict()})
    device = spec.build(sim)
    rng = sim.rng["membench.addresses"]
    addrs = _addresses(params, device.capacity_bytes, rng)
    writes = sim.rng["membench.writes"].random(len(addrs)) < params.write_ratio
    size = params.request_size
    if device.books_arrivals() and _started_idle(sim):
        # nothing else in the run: the closed loop keeps its own completion queue, no event per request
        result: list[Any] = []
        sim.env.process(_booked_loop(device, addrs, writes, size, params.concurrency, result, progress))
        sim.run()
        sim.finalize()
        latencies, last = result
        return summarize(spec, device, params, sim, latencies, last)
    latencies = np.zeros(len(addrs), dtype=np.int64)
    state = {"next": 0, "done": 0, "last": 0}

    def worker() -> Generator[simpy.Event, Any, None]:
        while state["next"] < len(addrs):
            i = state["next"]
            state["next"] = i + 1
            req = MemRequest(int(addrs[i]), size, bool(writes[i]), id=i)
            yield device.access(req)
            if not 0 <= req.arrive_ps <= req.done_ps <= MAX_SIM_PS:
                raise _beyond_limit(device, i, req.done_ps)
            latencies[i] = req.done_ps - req.arrive_ps
            state["done"] += 1
            state["last"] = req.done_ps

    for _ in range(min(params.concurrency, len(addrs))):
        sim.env.process(worker())
    if progress is not None:
        sim.env.on_tick = lambda: progress(state["done"], len(addrs))
    sim.run()
    sim.finalize()
    if state["done"] != len(addrs):
        raise SimulationError(
            f"membench stalled: {state['done']} of {len(addrs)} requests completed; "
            f"{state['next'] - state['done']} still waiting inside {device.path}"
        )
    return summarize(spec, device, params, sim, latencies, state["last"])


def _started_idle(sim: Simulation) -> bool:
    """Start the components; True if they scheduled nothing (so the run is the closed loop alone)."""
    sim.start()
    return sim.env.peek() == math.inf


def _beyond_limit(device: MemoryDevice, i: int, done_ps: int) -> SimulationError:
    return SimulationError(
        f"request {i} finished at {done_ps / PS_PER_S:.3g} s of simulated time, beyond "
        f"the limit of {MAX_SIM_PS / PS_PER_S:.3g} s (MAX_SIM_PS) or before it arrived; a "
        f"device parameter is probably off by orders of magnitude",
        where=device.path,
    )


def _booked_loop(
    device: MemoryDevice,
    addrs: np.ndarray,
    writes: np.ndarray,
    size: int,
    concurrency: int,
    result: list[Any],
    progress: Progress | None = None,
) -> Generator[simpy.Event, Any, None]:
    """The closed loop on a device that :meth:`~MemoryDevice.books_arrivals`, as one process.

    Every request is booked at arrival; its completion goes into a heap ordered by (time, request
    index), which is the order SimPy fires the workers' timeouts in (ties: the one scheduled first,
    and requests are issued in index order). At each completion the device records it, then the
    next request is issued at that time, as the worker process would. The process then waits once,
    to the last completion, so the clock ends where the event-per-request loop ends. Appends the
    latencies (ps, by request) and the last completion time to ``result``.

    The heap holds one int per request, ``done << bits | index`` (ordered as the pair), since
    comparing ints is much cheaper than comparing tuples.
    """
    n = len(addrs)
    addr_list: list[int] = addrs.tolist()
    write_list: list[bool] = writes.tolist()
    latencies = [0] * n
    reqs: list[MemRequest] = []  # by request index (issued in index order)
    arrive, depart = device.arrive, device.depart
    bits = n.bit_length()
    mask = (1 << bits) - 1
    heap: list[int] = []
    push, pop = heapq.heappush, heapq.heappop
    for i in range(min(concurrency, n)):  # every worker issues its first request at time 0
        req = MemRequest(addr_list[i], size, write_list[i], i)
        reqs.append(req)
        done = arrive(req, 0)
        if not 0 <= done <= MAX_SIM_PS:
            raise _beyond_limit(device, i, done)
        push(heap, done << bits | i)
    nxt = len(heap)
    now = 0
    while heap:
        key = pop(heap)
        now = key >> bits
        i = key & mask
        req = reqs[i]
        depart(req, now)
        latencies[i] = now - req.arrive_ps
        if nxt < n:  # the departed request's object carries the next one (see MemoryDevice.depart)
            req.addr, req.write, req.id, req.done_ps = addr_list[nxt], write_list[nxt], nxt, -1
            reqs.append(req)
            done = arrive(req, now)
            if not now <= done <= MAX_SIM_PS:
                raise _beyond_limit(device, nxt, done)
            push(heap, done << bits | nxt)
            nxt += 1
            if progress is not None and not nxt & PROGRESS_EVERY:
                progress(nxt - len(heap), n)
    result += (np.array(latencies, dtype=np.int64), now)
    if now > 0:
        yield device.env.timeout(now)


def summarize(
    spec: DeviceSpec,
    device: MemoryDevice,
    params: MembenchParams,
    sim: Simulation,
    latencies: np.ndarray,
    end_ps: int,
) -> dict[str, Any]:
    moved = int(len(latencies) * params.request_size)
    sim_s = end_ps / PS_PER_S
    perf = sim.performance()
    achieved = moved / sim_s if sim_s > 0 else 0.0
    # a read/write mix can at best move each byte at its own peak: the harmonic mix of the peaks
    w = params.write_ratio
    peak = 1.0 / (w / device.peak_bandwidth_Bps(write=True) + (1 - w) / device.peak_bandwidth_Bps())
    lat_ns = latencies / PS_PER_NS
    return {
        "device": spec.label,
        "kind": spec.cls.registered_name,  # type: ignore[attr-defined]
        "fidelity": device.params.fidelity,  # type: ignore[attr-defined]
        "pattern": params.pattern,
        "request_size_bytes": params.request_size,
        "concurrency": params.concurrency,
        "write_ratio": params.write_ratio,
        "bytes": moved,
        "requests": len(latencies),
        "seed": sim.seed,
        "sim_time_s": sim_s,
        "achieved_bandwidth_Bps": achieved,
        "peak_bandwidth_Bps": peak,
        "fraction_of_peak": achieved / peak if peak else 0.0,
        "mean_latency_ns": float(lat_ns.mean()),
        "p50_latency_ns": percentile(lat_ns, 50),
        "p99_latency_ns": percentile(lat_ns, 99),
        "unloaded_latency_ns": device.unloaded_latency_ps(params.request_size) / PS_PER_NS,
        "capacity_bytes": device.capacity_bytes,
        "energy_pj_per_byte": device.stat.energy_pj.value / moved if moved else 0.0,
        "events": perf["events"],
        "wall_s": perf["wall_s"],
        "events_per_s": perf["events_per_s"],
        "sim_s_per_wall_s": perf["sim_s_per_wall_s"],
        "simulated_bytes_per_wall_s": moved / perf["wall_s"] if perf["wall_s"] > 0 else 0.0,
        "stats": sim.stats.collect(sim.now),
        "config": sim.config,
    }
