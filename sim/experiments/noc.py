"""A synthetic-traffic NoC experiment: warm-up, measurement and drain phases, one offered load.

Packets created during the measurement window are *measured*; their latency runs from creation
to tail ejection, source queueing included. Injection continues through the drain so the measured
packets see a steady load. The run ends when every measured packet has arrived, or when the drain
limit passes (never an endless run). A load is reported as *saturated* when the drain limit passed,
when the accepted rate falls short of the offered one, or when the measured packets' mean latency
exceeds :data:`SATURATION_LATENCY_FACTOR` times their mean zero-load latency (the closed form,
:meth:`~sim.fabric.network.NetworkBase.zero_load_cycles`): near saturation queues grow for the
whole run, so latency shows it long before throughput falls behind. :func:`sweep_noc` runs a range
of loads and stops at the first saturated one.

At message fidelity the run is evaluated in batch (:mod:`sim.fabric.message_batch`: the same packets,
from the same random numbers, queued on their channels with numpy) where the routes' channel graph
is acyclic, and as events (:class:`~sim.fabric.message_network.MessageNetwork`) elsewhere (tori).

A deadlock (flits buffered and none moving for ``deadlock_cycles``) stops the run with a
:class:`~sim.fabric.network.DeadlockError` naming the wait cycle, a non-zero exit of ``memwall noc``;
``on_deadlock="report"`` records it in the result instead (deadlock studies). Sizes are checked
before anything is built: :func:`check_topology_size` for a generator's arguments,
:func:`sweep_rates` for a ``--sweep`` range, and the network, seed and simulated time in
:func:`run_noc`.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from sim.core.errors import ConfigError
from sim.core.limits import MAX_SIM_PS, MAX_SWEEP_POINTS
from sim.core.params import ParamSet, one_of, param, positive
from sim.core.registry import lookup
from sim.core.simulation import Simulation
from sim.core.units import COUNT, RATIO
from sim.fabric.network import DeadlockError, FlitNetwork, NetworkParams
from sim.fabric.packet import Packet
from sim.fabric.router import RouterParams
from sim.fabric.traffic import BernoulliSource
from sim.stats.percentiles import percentile
from sim.topology.size import check_network, check_topology_size, topology_size  # noqa: F401


@dataclass(frozen=True)
class NocRunParams(ParamSet):
    """One offered load of one traffic pattern."""

    traffic: str = param("uniform", str, "registered traffic pattern")
    rate: float = param(0.1, RATIO, "offered load, flits per node per cycle", check=positive)
    packet_flits: int = param(1, COUNT, "flits per packet", check=positive)
    warmup: int = param(1000, COUNT, "warm-up cycles (not measured)", check=positive)
    measure: int = param(2000, COUNT, "measurement cycles", check=positive)
    drain: int = param(
        10000,
        COUNT,
        "most cycles to wait for measured packets before calling the load saturated",
        check=positive,
    )
    fidelity: str = param(
        "flit",
        str,
        "flit (router pipeline per cycle) or message (closed form)",
        check=one_of("flit", "message"),
    )


MAX_SEED = 2**63 - 1


def check_seed(seed: Any, where: str = "--seed") -> int:
    """A seed is a whole number from 0 to 2^63 - 1."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        shown = seed if isinstance(seed, int) and abs(seed) < 10**30 else type(seed).__name__
        raise ConfigError(f"expected a whole number from 0 to 2^63 - 1, found {shown}", where=where)
    return seed


def sweep_rates(text: str, where: str = "--sweep") -> list[float]:
    """The offered loads of ``START:STOP:STEP`` (e.g. ``0.02:0.5:0.02``): finite, 0 < START <= STOP,
    STEP > 0, and at most :data:`~sim.core.limits.MAX_SWEEP_POINTS` points."""
    form = f"START:STOP:STEP such as 0.02:0.5:0.02, found {text[:40]!r}"
    try:
        start, stop, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"expected {form}", where=where) from None
    if not all(math.isfinite(x) for x in (start, stop, step)):
        raise ConfigError(f"expected finite numbers in {form}", where=where)
    if step <= 0 or start <= 0 or stop < start:
        raise ConfigError(f"expected 0 < START <= STOP and STEP > 0 in {form}", where=where)
    span = (stop - start) / step
    if not math.isfinite(span) or span + 1 > MAX_SWEEP_POINTS:
        raise ConfigError(
            f"expected at most {MAX_SWEEP_POINTS:,} points (MAX_SWEEP_POINTS), found "
            f"{'more' if not math.isfinite(span) else format(math.floor(span) + 1, ',')} in {text[:40]!r}",
            where=where,
        )
    return [round(start + i * step, 10) for i in range(round(span) + 1)]


SATURATION_LATENCY_FACTOR = 3.0
"""A load is saturated when its measured packets take on average more than this many times their
zero-load latency. ASSUMPTION: 3x, the knee the issue proposes; below saturation an M/D/1-like
queue per hop adds rho/(2(1-rho)) cycles, which stays under twice the zero-load latency up to about
90% of the bottleneck link's capacity, while past saturation latency grows with the run's length.
BookSim's own fail-safe is an absolute ``latency_thres`` (500 cycles by default)."""
BATCH_MARGIN_CYCLES = 1000
"""Cycles of traffic the batch message level draws past the measurement window (at most the drain):
ASSUMPTION, far above the queueing delay of any load below saturation (tens of cycles), and above
the latency test's threshold (3x zero-load: about 100 cycles on an 8x8 mesh), so a load whose
measured packets would feel the traffic left out is flagged saturated anyway."""
SATURATION_THROUGHPUT_SHORTFALL = 0.05
"""A load is saturated when the accepted rate falls more than this fraction below the offered rate
(ASSUMPTION: 5%, above the +-2% a 64-terminal Bernoulli source scatters over a few thousand
cycles; smaller runs get a wider margin, see :func:`_shortfall`)."""


def _shortfall(run: NocRunParams, terminals: int) -> float:
    """The throughput shortfall that flags saturation: :data:`SATURATION_THROUGHPUT_SHORTFALL`, or
    three standard deviations of the window's packet count where that is larger (the count is a
    sum of Bernoulli trials, relative deviation about 1 / sqrt(expected packets): a short run on a
    few terminals would otherwise be flagged by chance)."""
    expected = terminals * run.measure * run.rate / run.packet_flits
    return max(SATURATION_THROUGHPUT_SHORTFALL, 3 / math.sqrt(expected)) if expected > 0 else 1.0


@dataclass
class _Tracker:
    measured: int = 0
    delivered: int = 0
    window_flits: int = 0
    closed: bool = False
    zero_load_sum: int = 0  # the measured packets' zero-load latencies (closed form), summed


def run_noc(
    graph: nx.Graph,
    run: NocRunParams,
    net: NetworkParams | None = None,
    router: RouterParams | None = None,
    seed: int = 0,
    *,
    on_deadlock: str = "raise",
    progress: Callable[[int, int], None] | None = None,
    links: bool = False,
) -> dict[str, Any]:
    """Simulate one offered load; returns the summary ``memwall noc --json`` prints.

    With ``links`` (flit level only) it also holds ``link_utilization``: for each directed
    router-to-router link ``"a-b"``, the flits it carried per cycle of the whole run.

    ``progress(cycles simulated, cycles in all)`` is called now and then (a display only).

    A deadlock raises :class:`~sim.fabric.network.DeadlockError` (a ``SimulationError`` naming
    the wait cycle); with ``on_deadlock="report"`` it is returned in ``deadlock`` instead and the
    load counts as saturated.
    """
    if on_deadlock not in ("raise", "report"):
        raise ValueError(f"on_deadlock must be 'raise' or 'report', not {on_deadlock!r}")
    net = net or NetworkParams()
    router = router or RouterParams()
    check_seed(seed)
    check_network(graph)
    cycle_ps = round(1e12 / net.clock)
    stop_cycles = run.warmup + run.measure + run.drain
    if stop_cycles * cycle_ps > MAX_SIM_PS:
        raise ConfigError(
            "expected warmup + measure + drain within the simulated-time limit of "
            f"{MAX_SIM_PS // cycle_ps:,} cycles (MAX_SIM_PS), found {stop_cycles:,}",
            where="noc",
        )
    sim = Simulation(
        seed=seed, config={"run": run.as_dict(), "network": net.as_dict(), "router": router.as_dict()}
    )
    if run.fidelity == "flit":
        network: Any = FlitNetwork(sim, "noc", graph, net, router)
    else:
        from sim.fabric.message_network import MessageNetwork

        network = MessageNetwork(sim, "noc", graph, net, router)
    pattern = lookup("traffic", run.traffic)
    n = len(graph.graph["terminals"])
    if progress is not None:
        sim.env.on_tick = lambda: progress(sim.env.now // cycle_ps, stop_cycles)
    batch = None
    if run.fidelity == "message":
        from sim.fabric.message_batch import plan

        batch = plan(graph, network.routing, network.terminal_router, net, router)
    if batch is not None:
        out = _run_batch(batch, network, sim, run, pattern, n)
    else:
        out = _run_events(network, sim, run, pattern, n, on_deadlock)
    track, latencies, hops, deadlock, wall, work = out
    if deadlock is None and not track.delivered:  # no latency to report (never "0.0")
        why = (
            "no packet was created in the measurement window"
            if not track.measured
            else f"none of the {track.measured:,} measured packets arrived within the drain of "
            f"{run.drain:,} cycles"
        )
        raise ConfigError(
            f"{why}; expected a rate, measure or drain long enough to measure at least one packet, "
            f"found rate {run.rate:g} flits/node/cycle over {run.measure:,} cycles",
            where="noc",
        )
    drained = track.closed and track.delivered == track.measured
    accepted = track.window_flits / (n * run.measure)
    lat = np.asarray(latencies if len(latencies) else [0])
    zero = track.zero_load_sum / track.delivered if track.delivered else 0.0
    reasons = [
        why
        for why, hit in (
            ("deadlock", deadlock is not None),
            ("drain", not drained),
            ("throughput", accepted < (1 - _shortfall(run, n)) * run.rate),
            ("latency", float(lat.mean()) > SATURATION_LATENCY_FACTOR * zero),
        )
        if hit
    ]
    saturated = bool(reasons)
    flit_hops, traversals, events = work["flit_hops"], work["router_traversals"], work["events"]
    sim_s = work["cycles"] * network.cycle_ps / 1e12
    extra: dict[str, Any] = {}
    if links and run.fidelity == "flit":
        extra["link_utilization"] = link_utilization(network, work["cycles"])
    return {
        **extra,
        "topology": graph.graph.get("kind", "explicit"),
        "k": graph.graph.get("params", {}).get("k"),
        "n": graph.graph.get("params", {}).get("n"),
        "terminals": n,
        "routing": network.routing_name,
        "fidelity": run.fidelity,
        "traffic": run.traffic,
        "packet_flits": run.packet_flits,
        "offered_flits_per_node_cycle": run.rate,
        "accepted_flits_per_node_cycle": accepted,
        "measured_packets": track.measured,
        "delivered_measured_packets": track.delivered,
        "mean_packet_latency_cycles": float(lat.mean()),
        "p99_packet_latency_cycles": percentile(lat, 99),
        "avg_hops": float(np.mean(hops)) if len(hops) else 0.0,
        "saturated": bool(saturated),
        "saturated_by": reasons,
        "zero_load_latency_cycles": zero,
        "deadlock": deadlock,
        "cycles": work["cycles"],
        "flit_hops": flit_hops,
        # every flit delivered crossed one router more than links (BookSim's "hops" per flit)
        "router_traversals": traversals,
        "flit_hops_per_s": flit_hops / wall if wall > 0 else 0.0,
        "router_traversals_per_s": traversals / wall if wall > 0 else 0.0,
        "events": events,
        "wall_s": wall,
        "events_per_s": events / wall if wall > 0 else 0.0,
        "sim_s_per_wall_s": sim_s / wall if wall > 0 else 0.0,
    }


def link_utilization(network: FlitNetwork, cycles: int) -> dict[str, float]:
    """Flits per cycle on each directed router-to-router link ``"a-b"`` (its VCs' flits summed)."""
    out: dict[str, float] = {}
    for r in network.routers:
        for port, nb in zip(r.outputs, r.neighbors, strict=False):
            out[f"{r.node}-{nb}"] = sum(vc.sent for vc in port.vcs) / cycles if cycles else 0.0
    return out


def _run_events(
    network: Any, sim: Simulation, run: NocRunParams, pattern: Any, n: int, on_deadlock: str
) -> tuple[_Tracker, list[int], list[int], str | None, float, dict[str, Any]]:
    """The run as events (flit level, or the message level where :mod:`sim.fabric.message_batch`
    does not apply): tracker, measured latencies and hops, deadlock, wall seconds, work done."""
    w0, w1 = run.warmup, run.warmup + run.measure
    stop_at = w1 + run.drain
    track = _Tracker()
    latencies: list[int] = []
    hops: list[int] = []
    done = sim.env.event()

    def created(pkt: Packet) -> None:
        if w0 <= pkt.create_cycle < w1:
            pkt.measured = True
            track.measured += 1

    def delivered(pkt: Packet) -> None:
        if w0 <= pkt.eject_cycle < w1:
            track.window_flits += pkt.size_flits
        if pkt.measured:
            track.delivered += 1
            track.zero_load_sum += zero_load(pkt.src, pkt.dst, pkt.size_flits)
            latencies.append(pkt.eject_cycle - pkt.create_cycle)
            hops.append(pkt.hops)
            if track.closed and track.delivered == track.measured and not done.triggered:
                done.succeed()

    def close_window() -> Any:
        yield sim.env.timeout(w1 * network.cycle_ps)
        track.closed = True
        if track.delivered == track.measured and not done.triggered:
            done.succeed()

    zero_load = network.zero_load_cycles
    network.on_deliver = delivered
    source = BernoulliSource(
        network.new_packet,
        n,
        run.rate,
        run.packet_flits,
        pattern,
        sim.rng["noc.traffic"],
        stop=stop_at,
        on_create=created,
    )
    network.add_source(source)
    sim.env.process(close_window())
    # the run allocates many short-lived, acyclic objects (flits, packets, actions): move what
    # exists now out of the collector's way and collect young objects less often; restored below
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
    t0 = time.perf_counter()
    deadlock = None
    try:
        sim.run(until=sim.env.any_of([done, sim.env.timeout(stop_at * network.cycle_ps)]))
    except DeadlockError as exc:
        if on_deadlock == "raise":
            raise
        deadlock = str(exc)
    finally:
        wall = time.perf_counter() - t0
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    sim.finalize()
    perf = sim.performance()
    flit_hops = int(network.stat.flit_hops.value)
    work = {
        "cycles": network.cycle,
        "flit_hops": flit_hops,
        "router_traversals": flit_hops + int(network.stat.flits_delivered.value),
        "events": perf["events"],
    }
    return track, latencies, hops, deadlock, wall, work


def _run_batch(
    batch: Any, network: Any, sim: Simulation, run: NocRunParams, pattern: Any, n: int
) -> tuple[_Tracker, np.ndarray, np.ndarray, None, float, dict[str, Any]]:
    """The message level in batch (:mod:`sim.fabric.message_batch`): the same packets as the event
    run (same random numbers), and the same bookkeeping, from every packet's ejection cycle."""
    from sim.fabric.message_batch import efficiency, simulate

    w0, w1 = run.warmup, run.warmup + run.measure
    stop_at = w1 + run.drain
    # packets created this long after the window can only delay measured ones that queue longer
    # than that (a saturated load, flagged anyway): the same cut as the drain, at most
    margin = min(run.drain, BATCH_MARGIN_CYCLES)
    t0 = time.perf_counter()
    source = BernoulliSource(
        network.new_packet, n, run.rate, run.packet_flits, pattern, sim.rng["noc.traffic"], stop=w1 + margin
    )
    create, src, dst = source.draw_all()
    eff = efficiency(network.router_params, run.packet_flits, batch.link_latency)
    eject = simulate(batch, create, src, dst, run.packet_flits, eff)
    size = run.packet_flits
    measured = (create >= w0) & (create < w1)
    arrived = measured & (eject < stop_at)
    track = _Tracker()
    track.measured = int(measured.sum())
    track.delivered = int(arrived.sum())
    track.closed = True
    track.window_flits = size * int(((eject >= w0) & (eject < w1)).sum())
    zero = batch.zero_load[src, dst] + size - 1
    track.zero_load_sum = int(zero[arrived].sum())
    latencies = (eject - create)[arrived].astype(np.int64)
    hops = batch.hops[src, dst][arrived]
    end = int(eject[arrived].max()) if track.delivered == track.measured and track.delivered else stop_at
    done = eject <= end  # the packets an event run would have delivered by its end
    flit_hops = size * int(batch.hops[src, dst][done].sum())
    wall = time.perf_counter() - t0
    work = {
        "cycles": end,
        "flit_hops": flit_hops,
        "router_traversals": flit_hops + size * int(done.sum()),
        "events": 0,
    }
    return track, latencies, hops, None, wall, work


def sweep_noc(
    graph: nx.Graph,
    runs: list[NocRunParams],
    net: NetworkParams | None = None,
    router: RouterParams | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Run ``runs`` (increasing loads) in order and stop after the first saturated one: past
    saturation latency only measures how long the run was, and each further load costs more."""
    out = []
    for run in runs:
        r = run_noc(graph, run, net, router, seed)
        out.append(r)
        if r["saturated"]:
            break
    return out
