"""The token-generation driver: replays batches, iteration by iteration, through the hardware.

Each iteration's operations issue as their dependencies complete: per pipeline stage, per layer,
``attn`` (weights + KV cache reads overlapped with compute), a tensor-parallel all-reduce, MoE
dispatch, ``ffn``, MoE combine and another all-reduce; then the activations move to the next stage.
Weights stream from their memory (through prefetch windows on flash), the KV cache is read and
written on its memory, GEMVs run on the compute die or the near-memory units, collectives run on the
fabric. One chip per stage is simulated (every chip of a tensor-parallel group does the same work on
its own shard); the fabric carries the whole group's collectives.

The ops of one stage form a chain, so the critical path of an iteration is that chain. For every op
the driver records what it waited for, the **blame**: the part of its time the slowest of its
inputs needed at that input's peak (``memory bandwidth``, ``compute``), and the rest, by cause
(``prefetch stall``, ``memory queueing``, ``bank conflict``, ``TSV busy``, ``MAC busy``,
``collective``, ``pipeline transfer``). ``stall_breakdown`` is their share of critical-path time.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from sim.compute.die import ComputeDie
from sim.compute.nearmem import NearMemoryUnits
from sim.core.component import Component
from sim.core.errors import SimulationError
from sim.core.params import ParamSet, one_of, param, positive
from sim.core.units import COUNT, PS_PER_S, SIZE
from sim.fabric.collectives import CollectiveCase, alpha_beta_cycles, run_algorithm
from sim.fabric.message_network import MessageNetwork
from sim.fabric.network import FlitNetwork
from sim.memory.device import MemoryDevice, MemRequest
from sim.memory.prefetch import Prefetcher, PrefetchParams
from sim.model.spec import ModelSpec
from sim.requests.record import Request
from sim.serving.batching import Batch
from sim.serving.lowering import Lowering, OpWork
from sim.serving.mapping import Plan
from sim.stats import counter, tally
from sim.system.spec import SystemSpec


@dataclass(frozen=True)
class DriverParams(ParamSet):
    """How the driver runs (not what the hardware is)."""

    collectives: str = param(
        "analytic",
        str,
        "collectives on the fabric: analytic (alpha-beta twin, "
        "no events) or simulated (message patterns on the system's fabric)",
        check=one_of("analytic", "simulated"),
    )
    prefetch_policy: str = param("next_tensor", str, "prefetch policy for weights on flash")
    prefetch_window: int = param(
        "32MiB",
        SIZE,
        "prefetch window per flash stack (ASSUMPTION: > 2 x "
        "bandwidth x latency, FlashAccel / H3's 40 MB buffer)",
        check=positive,
    )
    prefetch_unit: int = param(
        "1MiB",
        SIZE,
        "bytes per prefetch request (fewer, larger requests keep the event count low)",
        check=positive,
    )
    max_iterations: int = param(1_000_000, COUNT, "stop after this many iterations", check=positive)
    record_ops: bool = param(
        False,
        bool,
        "keep every op of every iteration (start, end, blame) for "
        "ops.csv: the full blame chain of each iteration's critical path",
    )


@dataclass
class Blame:
    """Critical-path time (ps) by cause, for one iteration or a whole run."""

    by_cause: dict[str, float] = field(default_factory=dict)

    def add(self, cause: str, ps: float) -> None:
        if ps > 0:
            self.by_cause[cause] = self.by_cause.get(cause, 0.0) + ps

    def merge(self, other: Blame) -> None:
        for cause, ps in other.by_cause.items():
            self.add(cause, ps)

    def fractions(self) -> dict[str, float]:
        total = sum(self.by_cause.values())
        return {k: v / total for k, v in sorted(self.by_cause.items())} if total else {}

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        return sorted(self.by_cause.items(), key=lambda kv: -kv[1])[:n]


@dataclass
class IterationRecord:
    index: int
    start_ps: int
    end_ps: int
    requests: int
    tokens: int
    prefill_tokens: int
    blame: Blame

    @property
    def step_ps(self) -> int:
        return self.end_ps - self.start_ps


@dataclass
class RequestRecord:
    request: Request
    first_token_ps: int = -1
    last_token_ps: int = -1
    generated: int = 0


class ChipMemory:
    """One named memory of a chip: ``stacks`` identical devices interleaving it.

    Every access is split evenly over the stacks, so each stack sees the same request stream; one
    representative device (and, on flash, one prefetcher) is simulated with a stack's share and the
    memory's bandwidth is ``stacks`` times that device's. This keeps contention between streams on
    the same memory (weights against KV) and cuts the events by the stack count.
    """

    def __init__(
        self,
        name: str,
        device: MemoryDevice,
        stacks: int,
        prefetcher: Prefetcher | None,
        near: NearMemoryUnits | None,
    ) -> None:
        self.name = name
        self.device = device
        self.stacks = stacks
        self.prefetcher = prefetcher
        self.near = near
        self.peak = stacks * device.peak_bandwidth_Bps()
        self.cursor = 0  # next stream address (per stack), for streaming layouts
        self.capacity = device.capacity_bytes

    def share(self, nbytes: float) -> int:
        """One stack's part of an access of ``nbytes``."""
        return max(1, math.ceil(nbytes / self.stacks))


class Chip(Component):
    """The representative chip of one pipeline stage."""

    def __init__(
        self, sim: Any, name: str, system: SystemSpec, driver: DriverParams, parent: Component | None = None
    ) -> None:
        self.system = system
        self.driver_params = driver
        super().__init__(sim, name, None, parent)

    def build(self) -> None:
        self.die = ComputeDie(self.sim, "die", self.system.compute, parent=self)
        self.memories: dict[str, ChipMemory] = {}
        for name, spec in self.system.memories.items():
            device = spec.cls(self.sim, name, params=spec.params, parent=self)
            prefetcher = None
            if spec.kind == "hbf":
                dp = self.driver_params
                unit = dp.prefetch_unit
                pparams = PrefetchParams(
                    policy=dp.prefetch_policy, unit=unit, window_pages=max(1, dp.prefetch_window // unit)
                )
                prefetcher = Prefetcher(self.sim, f"{name}_prefetch", device, pparams, parent=self)
            near = None
            if spec.near_memory is not None:
                internal = spec.stacks * device.peak_bandwidth_Bps()
                near = NearMemoryUnits(self.sim, f"{name}_mac", spec.near_memory, internal, parent=self)
            self.memories[name] = ChipMemory(name, device, spec.stacks, prefetcher, near)


class TokenDriver(Component):
    """Feeds batches from a scheduler through the chips of each stage and records everything."""

    STATS = (
        counter("iterations", "iterations", "iterations simulated"),
        counter("tokens", "tokens", "output tokens generated"),
        counter(
            "memory_to_die_bytes",
            "B",
            "bytes crossing between a chip's memories and its compute die "
            "(weights and KV for die compute; KV and result vectors for near-memory compute)",
        ),
        counter(
            "fabric_link_bytes",
            "B",
            "bytes x link traversals of collectives and stage transfers (NIC links included), what "
            "fabric energy is charged on",
        ),
        tally("step_time_ms", "ms", "iteration time"),
    )

    def __init__(
        self,
        sim: Any,
        name: str,
        model: ModelSpec,
        system: SystemSpec,
        plan: Plan,
        scheduler: Any,
        requests: Iterable[Request],
        params: DriverParams | None = None,
    ) -> None:
        self.model = model
        self.system = system
        self.plan = plan
        self.scheduler = scheduler
        self.requests: Iterator[Request] = iter(requests)
        super().__init__(sim, name, params or DriverParams())

    def build(self) -> None:
        p: DriverParams = self.params  # type: ignore[assignment]
        self.lowering = Lowering(self.model, self.plan)
        self.chips = [
            Chip(self.sim, f"stage{s}", self.system, p, parent=self) for s in range(self.plan.mapping.pp)
        ]
        self.network: Any = None
        if p.collectives == "simulated" or self.plan.mapping.pp > 1:
            cls = FlitNetwork if self.system.fabric_fidelity == "flit" else MessageNetwork
            self.network = cls(
                self.sim, "fabric", self.system.topology, self.system.network, self.system.router, parent=self
            )
        self.iterations: list[IterationRecord] = []
        self.records: dict[int, RequestRecord] = {}
        self.blame = Blame()
        # (iteration, chip or fabric, op, layer, start ps, end ps, {cause: ps}) when record_ops
        self.op_log: list[tuple[int, str, str, int, int, int, dict[str, float]]] = []
        self._collective_cache: dict[tuple[str, int], int] = {}
        self._twin_net: Any = None
        self.done = self.env.event()
        self._tokens = 1  # tokens of the iteration in flight
        self.layout = self._layout()

    def run(self) -> None:
        self.env.process(self._main())

    # -- layout: where each layer's weights and KV live on a chip (streaming addresses) ----------
    def _layout(self) -> dict[tuple[int, str], tuple[str, int]]:
        """(layer, op) -> (memory, byte offset per stack) of that op's weights, laid out in order."""
        out = {}
        offset: dict[str, int] = {}
        wmem = self.plan.weights_memory
        mem = self.chips[0].memories[wmem]
        work = self.lowering._weights(1)
        for layer, (attn, ffn) in enumerate(work):
            for op, nbytes in (("attn", attn), ("ffn", ffn)):
                per_stack = mem.share(nbytes / self.plan.mapping.tp)
                out[(layer, op)] = (wmem, offset.get(wmem, 0))
                offset[wmem] = offset.get(wmem, 0) + per_stack
        return out

    # -- the main loop ------------------------------------------------------------------------------
    def _main(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        p: DriverParams = self.params  # type: ignore[assignment]
        nxt = next(self.requests, None)
        while len(self.iterations) < p.max_iterations:
            while nxt is not None and nxt.arrival_ps <= env.now:
                self.records[nxt.id] = RequestRecord(nxt)
                self.scheduler.add(nxt, env.now)
                nxt = next(self.requests, None)
            batch = self.scheduler.next_batch(env.now)
            if batch is None:
                wake = self.scheduler.wake_time(env.now) if hasattr(self.scheduler, "wake_time") else None
                times = [t for t in (wake, nxt.arrival_ps if nxt else None) if t is not None and t > env.now]
                if not times:
                    if self.scheduler.idle and nxt is None:
                        break
                    raise SimulationError(
                        f"scheduler stalled at {env.now} ps: {self.scheduler.num_waiting} requests wait, "
                        "nothing runs and no arrival or wake-up is due"
                    )
                yield env.timeout(min(times) - env.now)
                continue
            start = env.now
            blame = Blame()
            yield from self._iteration(batch, blame)
            self.scheduler.complete(batch, env.now)
            self._account(batch, start, env.now, blame)
        self.done.succeed()

    def _account(self, batch: Batch, start: int, end: int, blame: Blame) -> None:
        emitted = 0
        for e in batch.entries:
            if not e.emits_token or e.padding:
                continue
            rec = self.records[e.request.id]
            if rec.first_token_ps < 0:
                rec.first_token_ps = end
            rec.last_token_ps = end
            rec.generated += 1
            emitted += 1
        self.iterations.append(
            IterationRecord(
                len(self.iterations), start, end, batch.size, batch.num_tokens, batch.prefill_tokens, blame
            )
        )
        self.blame.merge(blame)
        self.stat.iterations.add()
        self.stat.tokens.add(emitted)
        self.stat.step_time_ms.observe((end - start) / 1e9)

    # -- one iteration ------------------------------------------------------------------------------
    def _iteration(self, batch: Batch, blame: Blame) -> Generator[simpy.Event, Any, None]:
        m = self.plan.mapping
        entries = batch.entries
        tokens = batch.num_tokens
        self._tokens = tokens
        act = self.lowering.activation_bytes(tokens)
        moe = self.model.is_moe
        for s, (a, b) in enumerate(self.plan.stage_layers):
            chip = self.chips[s]
            for layer in range(a, b):
                attn, ffn = self.lowering.layer_ops(layer, entries)
                nxt = (layer, "ffn")
                yield from self._op(chip, attn, blame, hint=nxt)
                if m.tp > 1:
                    yield from self._collective("allreduce", act, m.tp, blame)
                moe_layer = moe and self.model.moe_layer(layer)
                if moe_layer and m.ep > 1:
                    yield from self._collective("alltoall", act * self.model.experts_per_token, m.ep, blame)
                following = (layer + 1, "attn") if layer + 1 < b else None
                yield from self._op(chip, ffn, blame, hint=following)
                if moe_layer and m.ep > 1:
                    yield from self._collective("alltoall", act * self.model.experts_per_token, m.ep, blame)
                if m.tp > 1:
                    yield from self._collective("allreduce", act, m.tp, blame)
            if s + 1 < m.pp:
                t0 = self.env.now
                self.stat.fabric_link_bytes.add(act * 3)  # NIC link, switch or hop, NIC link (ASSUMPTION)
                yield self.network.transfer(s * m.tp, (s + 1) * m.tp, act)
                blame.add("pipeline transfer", self.env.now - t0)
        # LM head on the last stage
        head = OpWork(
            "head",
            -1,
            self.lowering.head_weight_bytes(),
            0.0,
            0.0,
            self.lowering.head_flops(sum(1 for e in entries if e.emits_token)),
        )
        yield from self._op(self.chips[-1], head, blame, hint=None)

    # -- operations ---------------------------------------------------------------------------------
    def _op(
        self, chip: Chip, work: OpWork, blame: Blame, hint: tuple[int, str] | None
    ) -> Generator[simpy.Event, Any, None]:
        """One op on the critical path: its own blame goes into the iteration's, and to the op log."""
        start = self.env.now
        own = Blame()
        yield from self._op_body(chip, work, own, hint)
        blame.merge(own)
        self._log(chip.name, work.name, work.layer, start, own)

    def _log(self, where: str, op: str, layer: int, start: int, own: Blame) -> None:
        if self.params.record_ops:  # type: ignore[attr-defined]
            self.op_log.append(
                (len(self.iterations), where, op, layer, start, self.env.now, dict(own.by_cause))
            )

    def _op_body(
        self, chip: Chip, work: OpWork, blame: Blame, hint: tuple[int, str] | None
    ) -> Generator[simpy.Event, Any, None]:
        """Memory streams and compute of one op, overlapped; blame its time."""
        env = self.env
        start = env.now
        plan = self.plan
        waits: list[Any] = []  # events to wait for, or completion times (ps) booked without events
        wmem = chip.memories[plan.weights_memory]
        kvmem = chip.memories[plan.kv_memory]
        near = plan.mapping.compute == "near_memory" and wmem.near is not None
        reports: list[Any] = []
        if work.weight_bytes > 0 and not near:
            waits.append(self._read_weights(wmem, work, hint, reports))
        if work.kv_read_bytes > 0:
            waits.append(self._access(kvmem, work.kv_read_bytes, False))
        if work.kv_write_bytes > 0:
            waits.append(self._access(kvmem, work.kv_write_bytes, True))
        crossing = work.kv_read_bytes + work.kv_write_bytes
        crossing += self.lowering.activation_bytes(self._tokens) if near else work.weight_bytes
        self.stat.memory_to_die_bytes.add(crossing)
        waits.append(
            wmem.near.book(work.weight_bytes, work.flops) if near else chip.die.book(work.flops, "bf16")
        )
        events = [w for w in waits if not isinstance(w, int)]
        booked = max((w for w in waits if isinstance(w, int)), default=env.now)
        if booked > env.now:
            events.append(env.timeout(booked - env.now))
        if events:
            yield env.all_of(events) if len(events) > 1 else events[0]
        duration = env.now - start
        # blame: what the op needed at peak, by input, and what the rest waited for
        ideal_w = 0 if near else work.weight_bytes / wmem.peak * PS_PER_S
        ideal_kv = (work.kv_read_bytes + work.kv_write_bytes) / kvmem.peak * PS_PER_S
        if plan.weights_memory == plan.kv_memory:
            ideal_mem, mem_name = ideal_w + ideal_kv, plan.weights_memory
        elif ideal_w >= ideal_kv:
            ideal_mem, mem_name = ideal_w, plan.weights_memory
        else:
            ideal_mem, mem_name = ideal_kv, plan.kv_memory
        if near:
            ideal_cmp = wmem.near.gemv_time_ps(work.weight_bytes, work.flops)
            cmp_name = f"near-memory MACs ({plan.weights_memory})"
        else:
            ideal_cmp = chip.die.op_time_ps(work.flops)
            cmp_name = "compute die"
        if ideal_cmp >= ideal_mem:
            bound = min(duration, ideal_cmp)
            blame.add(cmp_name, bound)
            rest = duration - bound
            blame.add("MAC busy" if rest > 0 else "compute die", rest)
            return
        bound = min(duration, ideal_mem)
        blame.add(f"memory bandwidth ({mem_name})", bound)
        rest = duration - bound
        if rest <= 0:
            return
        stall = sum(r.stall_ps for r in reports)
        late = min(rest, max(0, stall - ideal_mem))
        if late > 0:
            blame.add(f"prefetch stall ({plan.weights_memory})", late)
            rest -= late
        spec = self.system.memories[mem_name]
        detailed_dram = spec.kind == "dram3d" and getattr(spec.params, "fidelity", "") != "analytic"
        blame.add(f"{'TSV busy / bank conflict' if detailed_dram else 'memory queueing'} ({mem_name})", rest)

    def _read_weights(
        self, mem: ChipMemory, work: OpWork, hint: tuple[int, str] | None, reports: list[Any]
    ) -> simpy.Event:
        """One stack's share of an op's weights; through the prefetch window on flash."""
        per_stack = mem.share(work.weight_bytes)
        key = (work.layer, work.name)
        _, offset = self.layout.get(key, (mem.name, 0))
        if mem.prefetcher is None:
            return self._access(mem, work.weight_bytes, False, offset)
        hint_range = None
        if hint is not None and hint in self.layout:
            # the hinted tensor's own size, so its chunks match the stream that will consume them
            _, h_off = self.layout[hint]
            h_bytes = self._weight_share(mem, hint)
            hint_range = (h_off % self._span(mem, h_bytes), h_bytes)
        base = offset % self._span(mem, per_stack)
        return self.env.process(self._prefetched(mem.prefetcher, key, base, per_stack, hint_range, reports))

    def _weight_share(self, mem: ChipMemory, key: tuple[int, str]) -> int:
        """One stack's share of the weights op ``key`` = (layer, op) reads in this iteration."""
        layer, op = key
        attn, ffn = self.lowering._weights(max(1, min(self._tokens, 4096)))[layer]
        return mem.share((attn if op == "attn" else ffn) / self.plan.mapping.tp)

    @staticmethod
    def _prefetched(
        pf: Prefetcher, key: Any, base: int, nbytes: int, hint: Any, reports: list[Any]
    ) -> Generator[simpy.Event, Any, None]:
        report = yield from pf.stream(key, base, nbytes, hint_next=hint)
        reports.append(report)

    @staticmethod
    def _span(mem: ChipMemory, nbytes: int) -> int:
        """Address space per stack usable for aligned streams of ``nbytes``."""
        return max(1, mem.capacity - nbytes - 1)

    def _access(
        self, mem: ChipMemory, nbytes: float, write: bool, offset: int | None = None
    ) -> simpy.Event | int:
        """One stack's share of ``nbytes`` as one request: its completion time when the device can
        book it without events (analytic level), else the event of its process."""
        per = mem.share(nbytes)
        if offset is None:
            offset = mem.cursor
            mem.cursor = (mem.cursor + per) % max(1, mem.capacity // 2)
        addr = offset % max(1, mem.capacity - per)
        req = MemRequest(addr, per, write)
        end = mem.device.book(req)
        return mem.device.access(req) if end is None else end

    def _collective(
        self, op: str, nbytes: int, group: int, blame: Blame
    ) -> Generator[simpy.Event, Any, None]:
        env = self.env
        t0 = env.now
        p: DriverParams = self.params  # type: ignore[assignment]
        case = CollectiveCase(
            op, "ring" if op == "allreduce" else "direct", max(1, nbytes), tuple(range(group))
        )
        if p.collectives == "simulated":
            yield run_algorithm(self.network, case)
        else:
            key = (op, case.nbytes, group)
            ps = self._collective_cache.get(key)
            if ps is None:
                net = self._twin()
                ps = int(alpha_beta_cycles(net, case) * net.cycle_ps)
                self._collective_cache[key] = ps
            yield env.timeout(ps)
        blame.add(f"collective ({op})", env.now - t0)
        self.stat.fabric_link_bytes.add(self._collective_link_bytes(case))
        self._log("fabric", op, -1, t0, Blame({f"collective ({op})": env.now - t0}))

    def _collective_link_bytes(self, case: CollectiveCase) -> float:
        """Bytes x link traversals: ring all-reduce sends 2(p-1) chunks of n/p per rank, direct
        all-to-all (p-1) chunks of n/p per rank; each transfer crosses its hops plus the two NIC links."""
        p = len(case.ranks)
        key = ("links", p)
        hops = self._collective_cache.get(key)
        if hops is None:
            net = self._twin()
            tr = net.terminal_router
            pairs = [(case.ranks[i], case.ranks[(i + 1) % p]) for i in range(p)]
            hops = sum(len(net.route_of(tr[a], tr[b])) - 1 + 2 for a, b in pairs) / p
            self._collective_cache[key] = hops
        chunks = 2 * (p - 1) if case.op == "allreduce" else p - 1
        return chunks * case.nbytes * hops

    def _twin(self) -> Any:
        """A message network used only for the collectives' closed forms (never run)."""
        if self._twin_net is None:
            from sim.core.simulation import Simulation

            self._twin_net = MessageNetwork(
                Simulation(), "twin", self.system.topology, self.system.network, self.system.router
            )
        return self._twin_net

    # -- results ------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The figures ``memwall run`` reports (times in ms)."""
        recs = [r for r in self.records.values() if r.generated > 0]
        ttft = (
            np.array([(r.first_token_ps - r.request.arrival_ps) / 1e9 for r in recs]) if recs else np.zeros(1)
        )
        tpot = (
            np.array(
                [
                    (r.last_token_ps - r.first_token_ps) / 1e9 / (r.generated - 1)
                    for r in recs
                    if r.generated > 1
                ]
            )
            if recs
            else np.zeros(1)
        )
        e2e = (
            np.array([(r.last_token_ps - r.request.arrival_ps) / 1e9 for r in recs]) if recs else np.zeros(1)
        )
        steps = np.array([it.step_ps / 1e9 for it in self.iterations]) if self.iterations else np.zeros(1)
        tokens = int(self.stat.tokens.value)
        span_s = self.env.now / PS_PER_S
        return {
            "requests": len(self.records),
            "requests_finished": sum(1 for r in recs if r.generated >= r.request.output_tokens),
            "iterations": len(self.iterations),
            "tokens": tokens,
            "ttft_ms": _dist(ttft),
            "tpot_ms": _dist(tpot if tpot.size else np.zeros(1)),
            "e2e_latency_ms": _dist(e2e),
            "step_time_ms": _dist(steps),
            "tokens_per_s": tokens / span_s if span_s > 0 else 0.0,
            "memory_to_die_bytes_per_token": self.stat.memory_to_die_bytes.value / tokens if tokens else 0.0,
            "stall_breakdown": self.blame.fractions(),
        }


def _dist(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()),
        "p50": float(np.percentile(values, 50)),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
    }
