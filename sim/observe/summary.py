"""The run summary: what ``memwall run`` reports, derived from a finished driver and its hardware.

Latency figures use the one definition of :mod:`sim.requests.timing` and the one distribution of
:mod:`sim.stats.percentiles`; utilisation, queueing and energy are read from the components' stats
after ``finalize``. Nothing here changes the simulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sim.core.units import PS_PER_S
from sim.driver.blame import Blame
from sim.driver.token_driver import TokenDriver
from sim.observe.cost import cost_params, cost_summary, memory_prices
from sim.requests import timing
from sim.stats.percentiles import distribution


def token_figures(driver: TokenDriver | Sequence[TokenDriver]) -> dict[str, Any]:
    """Requests, tokens, TTFT / TPOT / end-to-end latency and step-time distributions (ms), throughput
    and the critical-path stall breakdown; over every request of every replica when given several
    drivers (data parallelism: they share one clock)."""
    drivers = [driver] if isinstance(driver, TokenDriver) else list(driver)
    first = drivers[0]
    recs = [r for d in drivers for r in d.records.values() if r.generated > 0]
    ttft = [timing.ttft_ms(r.request.arrival_ps, r.first_token_ps) for r in recs]
    tpot = [
        t for r in recs if (t := timing.tpot_ms(r.first_token_ps, r.last_token_ps, r.generated)) is not None
    ]
    e2e = [timing.e2e_ms(r.request.arrival_ps, r.last_token_ps) for r in recs]
    steps = [it.step_ps / 1e9 for d in drivers for it in d.iterations]
    tokens = sum(int(d.stat.tokens.value) for d in drivers)
    span_s = first.env.now / PS_PER_S
    if len(drivers) == 1:
        blame = first.blame
    else:
        blame = Blame()
        for d in drivers:
            blame.merge(d.blame)
    moved = sum(d.stat.memory_to_die_bytes.value for d in drivers)
    return {
        "requests": sum(len(d.records) for d in drivers),
        "requests_finished": sum(1 for r in recs if r.generated >= r.request.output_tokens),
        "iterations": len(steps),
        "tokens": tokens,
        "ttft_ms": distribution(ttft),
        "tpot_ms": distribution(tpot),
        "e2e_latency_ms": distribution(e2e),
        "step_time_ms": distribution(steps),
        "tokens_per_s": tokens / span_s if span_s > 0 else 0.0,
        "memory_to_die_bytes_per_token": moved / tokens if tokens else 0.0,
        "stall_breakdown": blame.fractions(),
        "software_s": sum(d.hardware.software.stat.host_ns.value for d in drivers) / 1e9,
        "bound_violations": sum(int(d.stat.bound_violations.value) for d in drivers),
        "reuse": _reuse([d.reuse for d in drivers]),
        "bound_violation_examples": [v for d in drivers for v in d.violations][:20],
    }


def _reuse(reuses: Sequence[Any]) -> dict[str, Any]:
    """Iteration reuse figures of one driver, or summed over replicas (errors: the worst, and the
    mean over every sampled check)."""
    if reuses[0] is None:
        return {"enabled": False}
    if len(reuses) == 1:
        return reuses[0].summary()
    parts = [r.summary() for r in reuses]
    sampled = sum(p["sampled"] for p in parts)
    return {
        "hits": sum(p["hits"] for p in parts),
        "shapes": sum(p["shapes"] for p in parts),
        "sampled": sampled,
        "max_rel_error": max(p["max_rel_error"] for p in parts),
        "mean_rel_error": (
            sum(p["mean_rel_error"] * p["sampled"] for p in parts) / sampled if sampled else 0.0
        ),
        "significant_bits": parts[0]["significant_bits"],
    }


def replica_figures(drivers: Sequence[TokenDriver], router: Any) -> list[dict[str, Any]]:
    """Per replica: requests routed to it and how many outstanding requests each found there (the
    queue it joined), tokens it generated, tokens/s, its TTFT distribution, and its hardware's
    utilisation and queueing (so an unbalanced router shows)."""
    span_s = drivers[0].env.now / PS_PER_S
    out = []
    for i, d in enumerate(drivers):
        tokens = int(d.stat.tokens.value)
        ttft = [
            timing.ttft_ms(r.request.arrival_ps, r.first_token_ps) for r in d.records.values() if r.generated
        ]
        out.append(
            {
                "replica": i,
                "requests": router.per_replica[i],
                "requests_ahead_mean": router.ahead[i] / router.per_replica[i]
                if router.per_replica[i]
                else 0.0,
                "tokens": tokens,
                "iterations": len(d.iterations),
                "tokens_per_s": tokens / span_s if span_s > 0 else 0.0,
                "ttft_ms": distribution(ttft),
                "utilization": utilization(d),
                "queueing_us": queueing(d),
            }
        )
    return out


def mean_by_key(parts: Sequence[dict[str, float]]) -> dict[str, float]:
    """The mean of each key over ``parts`` (replicas' utilisation or queueing, same keys each)."""
    if len(parts) == 1:
        return parts[0]
    keys = list(parts[0])
    return {k: sum(p.get(k, 0.0) for p in parts) / len(parts) for k in keys}


def utilization(driver: TokenDriver) -> dict[str, float]:
    """Busy fraction of each component class on the simulated chips (mean over stacks)."""
    now = driver.env.now
    if now <= 0:
        return {}
    out: dict[str, float] = {}
    for chip in driver.chips:
        out[f"{chip.name}.compute_die"] = chip.die.timeline.busy_until_ps(now) / now
        for name, mem in chip.memories.items():
            dev = mem.device  # one stack stands for all (see ChipMemory)
            moved = dev.stat.bytes_read.value + dev.stat.bytes_written.value
            out[f"{chip.name}.{name}"] = moved / (dev.peak_bandwidth_Bps() * now / PS_PER_S)
            if mem.near is not None:
                out[f"{chip.name}.{name}_mac"] = mem.near.timeline.busy_until_ps(now) / now
    return out


def queueing(driver: TokenDriver) -> dict[str, float]:
    """Mean wait per request (us) beyond the unloaded service, per component of the simulated chips.

    Compute: time an op waited for the die (or MACs) to free up. Memory: mean request latency minus
    the device's unloaded latency for the mean request size (the analytic twin).
    """
    out: dict[str, float] = {}
    for chip in driver.chips:
        out[f"{chip.name}.compute_die"] = chip.die.stat.queue_ns.mean / 1e3
        for name, mem in chip.memories.items():
            dev = mem.device
            for kind, tally, count, nbytes in (
                ("read", dev.stat.read_latency_ns, dev.stat.reads.value, dev.stat.bytes_read.value),
                ("write", dev.stat.write_latency_ns, dev.stat.writes.value, dev.stat.bytes_written.value),
            ):
                if count:
                    size = max(1, int(nbytes / count))
                    unloaded = dev.unloaded_latency_ps(min(size, dev.capacity_bytes), kind == "write") / 1e3
                    out[f"{chip.name}.{name}.{kind}"] = max(0.0, tally.mean - unloaded) / 1e3
            if mem.near is not None:
                out[f"{chip.name}.{name}_mac"] = mem.near.stat.queue_ns.mean / 1e3
    return out


def energy_by_component(driver: TokenDriver, sim_s: float) -> dict[str, float]:
    """Joules of one replica by component class: dynamic energy by event plus static power.

    The simulated chip of each stage stands for its ``tp`` chips and one device for all stacks of a
    memory, so their energies are scaled up accordingly; the fabric is counted once.
    """
    tp = driver.plan.mapping.tp
    out: dict[str, float] = {}

    def add(key: str, joules: float) -> None:
        out[key] = out.get(key, 0.0) + joules

    for chip in driver.chips:
        die = chip.die
        add("compute_die", tp * (die.stat.energy_pj.value * 1e-12 + die.params.static_power * sim_s))
        for name, mem in chip.memories.items():
            spec = driver.system.memories[name]
            dynamic = mem.device.stat.energy_pj.value * 1e-12 * mem.stacks
            add(f"memory.{name}", tp * (dynamic + spec.static_power_w * mem.stacks * sim_s))
            if mem.near is not None:
                near = mem.near
                add(
                    f"near_memory.{name}",
                    tp * (near.stat.energy_pj.value * 1e-12 + near.params.static_power * sim_s),
                )
    bits = driver.stat.fabric_link_bytes.value * 8
    add("fabric", bits * driver.system.network.energy_per_bit * 1e-12)
    return out


def energy_and_cost(driver: TokenDriver | Sequence[TokenDriver], sim_s: float) -> dict[str, Any]:
    """Energy of one replica, or summed over replicas, and what it costs (:mod:`sim.observe.cost`):
    each replica's chips are capital of their own."""
    drivers = [driver] if isinstance(driver, TokenDriver) else list(driver)
    driver = drivers[0]
    if len(drivers) == 1:
        parts = energy_by_component(driver, sim_s)
    else:
        parts = {}
        for d in drivers:
            for k, j in energy_by_component(d, sim_s).items():
                parts[k] = parts.get(k, 0.0) + j
    total = sum(parts.values())
    tokens = sum(int(d.stat.tokens.value) for d in drivers)
    chips = driver.plan.mapping.tp * driver.plan.mapping.pp
    out: dict[str, Any] = {
        "energy_j": total,
        "energy_by_component_j": parts,
        "energy_j_per_token": total / tokens if tokens else 0.0,
        "avg_power_w": total / sim_s if sim_s > 0 else 0.0,
    }
    system = driver.system
    out.update(
        cost_summary(
            system, chips, total, sim_s, tokens, cost_params(system), memory_prices(system), len(drivers)
        )
    )
    return out
