"""One end-to-end run: model + system + mapping + workload -> simulated tokens and a summary.

The workload is a request trace (lowered on the fly by a batching policy, in simulated time), or a
fixed decode batch (``batch`` sequences at ``context`` tokens for ``steps`` iterations, no prefill):
the classic decode study.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sim.core.errors import ConfigError
from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S
from sim.system.spec import SystemSpec
from sim.workload.batching import Batch, BatchEntry, make_policy
from sim.workload.driver import DriverParams, TokenDriver
from sim.workload.mapping import MappingParams, plan
from sim.workload.model import ModelSpec
from sim.workload.requests import Request


class FixedDecodeBatch:
    """A scheduler for decode studies: the same ``batch`` sequences decode ``steps`` times.

    Sequence ``i`` starts at ``context`` tokens (its KV already cached) and grows by one per step.
    """

    def __init__(self, batch: int, context: int, steps: int) -> None:
        if batch < 1 or context < 1 or steps < 1:
            raise ConfigError(
                f"expected batch, context and steps >= 1, found {batch}, {context}, {steps}",
                where="--batch/--context/--steps",
            )
        self.requests = [Request(i, 0, context, steps + 1) for i in range(batch)]
        self.context = context
        self.steps = steps
        self.step = 0
        self._out: Batch | None = None

    def add(self, request: Request, now: int) -> None:  # requests are built in; nothing to add
        pass

    def next_batch(self, now: int) -> Batch | None:
        if self.step >= self.steps:
            return None
        ctx = self.context + self.step + 1
        entries = tuple(BatchEntry(r, "decode", 1, ctx, True) for r in self.requests)
        self._out = Batch(self.step, now, entries)
        return self._out

    def complete(self, batch: Batch, now: int) -> list[Any]:
        self.step += 1
        return []

    @property
    def idle(self) -> bool:
        return self.step >= self.steps

    @property
    def num_waiting(self) -> int:
        return 0


@dataclass
class RunSpec:
    """Everything a run needs, resolved."""

    model: ModelSpec
    system: SystemSpec
    mapping: MappingParams
    requests: Iterable[Request] | None = None  # None: fixed decode batch
    batch: int = 1
    context: int = 1024
    steps: int = 16
    batching: dict[str, Any] = field(default_factory=dict)
    driver: DriverParams = field(default_factory=DriverParams)
    seed: int = 0
    label: str = ""


def execute(spec: RunSpec, scheduler: Any = None) -> tuple[dict[str, Any], TokenDriver, Simulation]:
    """Simulate ``spec``; returns the summary, the driver (per-iteration records) and the sim.

    ``scheduler`` replaces the batching policy (e.g. a decode-trace replay).
    """
    p = plan(spec.model, spec.system, spec.mapping)
    if scheduler is not None:
        requests: Iterable[Request] = spec.requests or ()
    elif spec.requests is None:
        scheduler = FixedDecodeBatch(spec.batch, spec.context, spec.steps)
        requests = scheduler.requests
    else:
        table = {**spec.system.batching, **spec.batching}
        name = str(table.pop("policy", "continuous"))
        scheduler = make_policy(name, table, kv_capacity_tokens=p.kv_capacity_tokens, where="batching")
        requests = spec.requests
    sim = Simulation(
        seed=spec.seed,
        config={
            "system": spec.system.resolved(),
            "model": spec.model.summary(),
            "mapping": spec.mapping.as_dict(),
            "driver": spec.driver.as_dict(),
            "workload": (
                {"batch": spec.batch, "context": spec.context, "steps": spec.steps}
                if spec.requests is None
                else {"trace": spec.label}
            ),
        },
    )
    driver = TokenDriver(sim, "run", spec.model, spec.system, p, scheduler, _sorted(requests), spec.driver)
    t0 = time.perf_counter()
    sim.run(until=driver.done)
    wall = time.perf_counter() - t0
    sim.finalize()
    summary = driver.summary()
    perf = sim.performance()
    summary = {
        "system": spec.system.name,
        "model": spec.model.name,
        "mapping": {k: v for k, v in spec.mapping.as_dict().items()},
        **summary,
        **energy_and_cost(driver, sim.now / PS_PER_S, spec),
        "utilization": utilization(driver),
        "queueing_us": queueing(driver),
        "capacity": {f"{n}": v for n, v in p.capacity_report().items()},
        "kv_capacity_tokens": p.kv_capacity_tokens,
        "sim_time_s": sim.now / PS_PER_S,
        "events": perf["events"],
        "wall_s": wall,
        "events_per_s": perf["events"] / wall if wall > 0 else 0.0,
        "sim_s_per_wall_s": (sim.now / PS_PER_S) / wall if wall > 0 else 0.0,
    }
    return summary, driver, sim


def _sorted(requests: Iterable[Request]) -> Iterator[Request]:
    """Requests in arrival order (trace readers already yield them so; fixed batches too)."""
    last = -1
    for r in requests:
        if r.arrival_ps < last:
            raise ConfigError(f"request {r.id} arrives before the one listed before it", where="trace")
        last = r.arrival_ps
        yield r


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


def energy_and_cost(driver: TokenDriver, sim_s: float, spec: RunSpec) -> dict[str, Any]:
    from sim.workload.cost import cost_params, cost_summary

    parts = energy_by_component(driver, sim_s)
    total = sum(parts.values())
    tokens = int(driver.stat.tokens.value)
    chips = driver.plan.mapping.tp * driver.plan.mapping.pp
    out: dict[str, Any] = {
        "energy_j": total,
        "energy_by_component_j": parts,
        "energy_j_per_token": total / tokens if tokens else 0.0,
        "avg_power_w": total / sim_s if sim_s > 0 else 0.0,
    }
    out.update(cost_summary(spec.system, chips, total, sim_s, tokens, cost_params(spec.system)))
    return out
