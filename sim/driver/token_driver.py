"""The token-generation driver: replays batches, iteration by iteration, through built hardware.

The driver receives a built :class:`~sim.system.build.System` (chips, memories with their prefetch
buffers and near-memory units, the fabric) and a :class:`~sim.serving.scheduler.Scheduler`. Each
iteration's operations issue as their dependencies complete: per pipeline stage, per layer,
``attn`` (weights + KV cache reads overlapped with compute), a tensor-parallel all-reduce, MoE
dispatch, ``ffn``, MoE combine and another all-reduce; then the activations move to the next stage.
Weights stream from their memory (through its prefetch buffer when it has one), the KV cache is read
and written on its memory, GEMVs run on the compute die or the near-memory units, collectives run on
the fabric. One chip per stage is simulated (every chip of a tensor-parallel group does the same
work on its own shard); the fabric carries the whole group's collectives.

The ops of one stage form a chain, so the critical path of an iteration is that chain. For every op
the driver records what it waited for, its :mod:`blame <sim.driver.blame>`: the part of its time the
slowest of its inputs needed at that input's peak, and the rest, by cause.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import simpy

from sim.compute.kernels import Kernel, KernelTime, Sources
from sim.core.component import Component
from sim.core.errors import BoundViolation, SimulationError
from sim.core.params import ParamSet, non_negative, one_of, param, positive
from sim.core.units import COUNT, PS_PER_S, RATIO, TIME
from sim.driver import blame as causes
from sim.driver.blame import Blame, Cause
from sim.driver.reuse import IterationReuse, batch_sums
from sim.fabric.collectives import CollectiveCase, run_algorithm
from sim.memory.device import MemRequest
from sim.memory.prefetch import Prefetcher
from sim.model.spec import ModelSpec
from sim.requests.record import Request
from sim.serving.lowering import Lowering, OpWork
from sim.serving.mapping import Plan
from sim.serving.router import RequestFeed
from sim.serving.scheduler import Batch, BatchEntry, Scheduler
from sim.stats import counter, tally
from sim.stats.kinds import Counter
from sim.system.build import System, collective_ps
from sim.system.chip import Chip, ChipMemory
from sim.system.spec import launch_for


@dataclass(frozen=True)
class DriverParams(ParamSet):
    """How the driver runs (not what the hardware is)."""

    collectives: str = param(
        "simulated",
        str,
        "collectives on the fabric: simulated (message patterns on the system's fabric, at its "
        "fidelity) or analytic (the alpha-beta twin, no events)",
        check=one_of("analytic", "simulated"),
    )
    max_iterations: int = param(1_000_000, COUNT, "stop after this many iterations", check=positive)
    record_ops: bool = param(
        False,
        bool,
        "keep every op of every iteration (start, end, blame) for "
        "ops.csv: the full blame chain of each iteration's critical path",
    )
    collective_memo: bool = param(
        True,
        bool,
        "replay a simulated collective already run on the idle fabric (exact when the fabric keeps "
        "no state between messages; see TokenDriver._simulated_collective); false simulates each",
    )
    reuse: bool = param(
        True,
        bool,
        "replay an iteration whose shape was simulated before (sim.driver.reuse); false simulates "
        "every iteration in full (as do record_ops and a memory at the detailed level)",
    )
    reuse_bits: int = param(
        6,
        COUNT,
        "significant binary digits kept of each sum in an iteration's shape (sim.driver.reuse): "
        "buckets at most 2^(1 - bits) of the value wide",
        check=lambda v: None if 1 <= v <= 62 else "between 1 and 62",
    )
    reuse_prefill_bits: int = param(
        3,
        COUNT,
        "significant binary digits of the sums of an iteration with prefill chunks: fewer, since its "
        "replay is moved by the kernel model's difference from the stored one (sim.driver.reuse)",
        check=lambda v: None if 1 <= v <= 62 else "between 1 and 62",
    )
    reuse_check: int = param(
        100,
        COUNT,
        "simulate every N-th reused iteration in full anyway and report the error (0: never)",
        check=lambda v: None if v >= 0 else ">= 0",
    )
    collective_timeout: int = param(
        0,
        TIME,
        "a collective still running after this long is abandoned and the iteration goes on with stale "
        "data (the paper's 'use an earlier result when a message times out'): trades accuracy for "
        "latency; counted in the summary. 0: wait for every collective",
        check=non_negative,
    )
    straggler_delay: int = param(
        0,
        TIME,
        "inject a straggler: one rank reaches a collective this late (0: none)",
        check=non_negative,
    )
    straggler_probability: float = param(
        1.0,
        RATIO,
        "chance that a collective has the straggler (drawn from the stream DRIVER.straggler)",
        check=lambda v: None if 0 <= v <= 1 else "a probability in [0, 1]",
    )


class _OpCost(NamedTuple):
    """What an op costs independent of when it runs; the driver works it out once per iteration for
    each distinct op and reuses it for the layers that share it."""

    kernels: tuple[Kernel, ...]  # held so the memo key (its identity) stays unique
    die_kernels: tuple[Kernel, ...]
    die_ps: int  # the die kernels back to back
    die_flops: float
    die_energy_pj: float
    gap: int  # exposed launch gaps before the kernels (software)
    internal: bool  # weights read on the memory's internal path by near-memory units
    near_flops: float
    near_ps: int
    crossing: float  # bytes between the memories and the die
    chain: tuple[tuple[Cause, int], ...]  # the blame of the op's own work, in order
    chain_ps: int
    needs: tuple[tuple[str, float], ...]  # (bound, ps) the op's duration must reach
    streams: dict[str, int]  # ps each memory's interface needs for the op's bytes at its peak
    slack: int  # integer-ps rounding allowed against the bounds


@dataclass(slots=True)
class IterationRecord:
    index: int
    start_ps: int
    end_ps: int
    requests: int
    tokens: int
    prefill_tokens: int
    blame: Blame
    reused: bool = False  # replayed from an earlier iteration of its shape (sim.driver.reuse)

    @property
    def step_ps(self) -> int:
        return self.end_ps - self.start_ps


@dataclass
class RequestRecord:
    """When a request's tokens came out (see :mod:`sim.requests.timing` for what they mean)."""

    request: Request
    first_token_ps: int = -1
    last_token_ps: int = -1
    generated: int = 0


@dataclass(slots=True)
class OpRecord:
    """One op of one iteration's critical path, kept when ``record_ops`` is on."""

    iteration: int
    where: str  # a chip ("stage0") or "fabric"
    op: str
    layer: int
    start_ps: int
    end_ps: int
    blame: dict[Cause, float] = field(default_factory=dict)


class _TraceArrivals:
    """Requests of a trace in arrival order, taken as the clock reaches them (a single replica)."""

    def __init__(self, env: simpy.Environment, requests: Iterator[Request]) -> None:
        self.env = env
        self.requests = requests
        self.next: Request | None = next(requests, None)

    def arrived(self, now: int) -> Iterator[Request]:
        """The requests that have arrived by ``now`` and were not taken yet."""
        while self.next is not None and self.next.arrival_ps <= now:
            r, self.next = self.next, next(self.requests, None)
            yield r

    def wait(self, wake: int | None) -> simpy.Event | None:
        """A timeout to the next arrival or ``wake`` (ps), whichever is first; None when neither is due."""
        now = self.env.now
        times = [t for t in (wake, self.next.arrival_ps if self.next else None) if t is not None and t > now]
        return self.env.timeout(min(times) - now) if times else None


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
        counter("bound_violations", "ops", "ops that finished faster than a physical bound allows"),
        counter("collectives", "collectives", "collectives run with a timeout or straggler set"),
        counter("stragglers", "collectives", "collectives with an injected straggler"),
        counter("collective_timeouts", "collectives", "collectives abandoned at driver.collective_timeout"),
    )

    def __init__(
        self,
        sim: Any,
        name: str,
        model: ModelSpec,
        system: System,
        plan: Plan,
        scheduler: Scheduler,
        requests: Iterable[Request],
        params: DriverParams | None = None,
        feed: RequestFeed | None = None,
        kv_tiers: Any = None,
    ) -> None:
        """``requests`` in arrival order; or, for a replica behind a router, none and a ``feed``
        the router pushes each request to at its arrival time. ``kv_tiers``: a prefix cache's
        traffic (:class:`~sim.driver.kv_tiers.KVTierTraffic`), settled before each iteration."""
        if len(system.chips) != plan.mapping.pp:
            raise ValueError(
                f"the built system has {len(system.chips)} chips, the plan {plan.mapping.pp} stages"
            )
        self.model = model
        self.hardware = system
        self.system = system.spec
        self.plan = plan
        self.scheduler = scheduler
        self.requests: Iterator[Request] = iter(requests)
        self.feed = feed
        self.health: Any = None  # a failed replica's recovery (sim.serving.failures.ReplicaHealth)
        self.kv_tiers = kv_tiers
        super().__init__(sim, name, params or DriverParams())

    def build(self) -> None:
        self.lowering = Lowering(self.model, self.plan)
        self.chips: list[Chip] = self.hardware.chips
        self.network: Any = self.hardware.network
        if self.network is None and self.needs_network(self.params, self.plan):  # type: ignore[arg-type]
            raise ValueError(
                "simulated collectives and pipeline stages need the system built with its fabric"
            )
        self.iterations: list[IterationRecord] = []
        self.records: dict[int, RequestRecord] = {}
        self.blame = Blame()
        self.op_log: list[OpRecord] = []  # every op of every iteration when record_ops
        self._collective_cache: dict[tuple[str, int], int] = {}
        self._collective_plans: dict[tuple[str, int, int], tuple[Any, ...]] = {}  # see _plan_collective
        # simulated collectives on an idle fabric: case -> (duration, counter changes)
        self._fabric_memo: dict[tuple[Any, ...], tuple[int, tuple[float, ...]]] | None = (
            {} if self.params.collective_memo else None  # type: ignore[attr-defined]
        )
        self._fabric_counter_list: list[Counter] | None = None
        self._link_Bps: float | None = None  # one fabric link's peak (the bound of _check_fabric)
        self.done = self.env.event()
        self._tokens = 1  # tokens of the iteration in flight
        self._device_step_ps = 0  # the previous iteration's time on the chips (after the host's)
        self.violations: list[str] = []  # the first few bound violations, described
        self._causes: dict[tuple[str, str], Cause] = {}
        self._costs: dict[tuple[Any, ...], _OpCost] = {}  # this iteration's op costs (see _op_cost)
        self._strict = os.environ.get("MEMWALL_STRICT_BOUNDS", "") not in ("", "0")  # the test suite sets it
        self.layout = self._layout()
        self._late = 0  # abandoned collectives whose messages are still on the fabric (_deadline)

    @staticmethod
    def needs_network(params: DriverParams, plan: Plan) -> bool:
        """Whether the driver will move data over the simulated fabric (else the twin suffices)."""
        return params.collectives == "simulated" or plan.mapping.pp > 1

    def run(self) -> None:
        p: DriverParams = self.params  # type: ignore[assignment]
        # Recording every op asks for every iteration simulated, and a component that cannot
        # skip spans (reuse_safe False, e.g. DRAM at the command level) needs them all: no reuse.
        safe = all(getattr(c, "reuse_safe", True) for c in self.sim.components())
        # Stragglers and timeouts make each collective's time its own draw: nothing to replay.
        safe = safe and not (p.collective_timeout or p.straggler_delay)
        self.reuse = self._make_reuse() if p.reuse and not p.record_ops and safe else None
        self.env.process(self._main())

    def _mine(self, path: str) -> bool:
        """Whether the component at ``path`` is this driver or part of the hardware it drives (with
        several replicas in one simulation, another replica's components are none of its business)."""
        root = self.hardware.path
        return path == self.path or path == root or path.startswith(root + ".")

    def _make_reuse(self) -> IterationReuse:
        """Reuse tracking every counter of this driver's components (but its own iteration and
        token counts, which replayed iterations add themselves) and every compute unit's busy time."""
        p: DriverParams = self.params  # type: ignore[assignment]
        own = {id(self.stat.iterations), id(self.stat.tokens)}
        counters = [
            stat
            for scope, group in self.sim.stats.groups.items()
            if self._mine(scope)
            for stat in group.values()
            if isinstance(stat, Counter) and id(stat) not in own
        ]
        units = [chip.die for chip in self.chips]
        units += [m.near for chip in self.chips for m in chip.memories.values() if m.near is not None]
        syncs = [
            c.sync_stats for c in self.sim.components() if hasattr(c, "sync_stats") and self._mine(c.path)
        ]
        reuse = IterationReuse(
            counters,
            units,
            p.reuse_bits,
            p.reuse_check,
            syncs,
            p.reuse_prefill_bits,
            self._kernel_ps,
            self.hardware.software.stat.host_ns,
            causes.SOFTWARE,
            [chip.die.params.gemm_tile_m for chip in self.chips],  # type: ignore[attr-defined]
        )
        reuse.slopes = self._context_slopes()
        return reuse

    def _kernel_ps(self, entries: Sequence[BatchEntry]) -> float:
        """Kernel-model time of an iteration of ``entries`` on one chip (every layer and the LM
        head, each kernel at its sources' peak) plus its tensor-parallel all-reduces on the
        fabric's twin: what iteration reuse moves a replayed prefill iteration by, as the
        difference from its stored iteration's (so only first order comes from models)."""
        chip = self.chips[0]
        src = self._sources(chip, chip.memories[self.plan.weights_memory], chip.memories[self.plan.kv_memory])
        die = chip.die
        seen: dict[int, float] = {}
        total = 0.0
        for layer in range(self.model.layers):
            for op in self.lowering.layer_ops(layer, entries):
                t = seen.get(id(op.kernels))
                if t is None:
                    t = seen[id(op.kernels)] = sum(k.total_ps for k in die.kernel_times(op.kernels, src))
                total += t
        head = self.lowering.head_op(sum(1 for e in entries if e.emits_token))
        total += sum(k.total_ps for k in die.kernel_times(head.kernels, src))
        tp = self.plan.mapping.tp
        if tp > 1:  # two all-reduces of the activations per layer (the fabric's twin)
            act = max(1, self.lowering.activation_bytes(sum(e.tokens for e in entries)))
            case = CollectiveCase("allreduce", "ring", act, tuple(range(tp)))
            total += 2 * self.model.layers * self._twin_collective_ps(case)
        return total

    def _context_slopes(self) -> tuple[float, float]:
        """Kernel-model time per cached token of context (decode) and per prefill attention pair,
        summed over the layers on one chip: how iteration reuse moves a replay within its bucket.
        From two probe batches each, so whatever the kernel model does to attention is in them."""
        chip = self.chips[0]
        wmem = chip.memories[self.plan.weights_memory]
        kvmem = chip.memories[self.plan.kv_memory]
        src = self._sources(chip, wmem, kvmem)
        probe = 4096

        def time_ps(entry: BatchEntry) -> float:
            total = 0.0
            for layer in range(self.model.layers):
                for op in self.lowering.layer_ops(layer, [entry]):
                    total += sum(t.total_ps for t in chip.die.kernel_times(op.kernels, src))
            return total

        def decode(past: int) -> BatchEntry:
            return BatchEntry(None, "decode", 1, past + 1, True)  # type: ignore[arg-type]

        def prefill(past: int) -> BatchEntry:
            return BatchEntry(None, "prefill", probe, past + probe, True)  # type: ignore[arg-type]

        per_token = (time_ps(decode(2 * probe)) - time_ps(decode(probe))) / probe
        per_pair = (time_ps(prefill(probe)) - time_ps(prefill(0))) / (probe * probe)
        return max(0.0, per_token), max(0.0, per_pair)

    # -- layout: where each layer's weights and KV live on a chip (streaming addresses) ----------
    def _layout(self) -> dict[tuple[int, str], tuple[str, int]]:
        """(layer, op) -> (memory, byte offset per stack) of that op's weights, laid out in order."""
        out = {}
        offset: dict[str, int] = {}
        wmem = self.plan.weights_memory
        mem = self.chips[0].memories[wmem]
        work = self.lowering.layer_weight_bytes(1)
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
        source = self.feed if self.feed is not None else _TraceArrivals(env, self.requests)
        while len(self.iterations) < p.max_iterations:
            if self.health is not None and self.health.blocked(env.now):  # failed, or still down
                yield from self.health.recover(self, None)
            for r in source.arrived(env.now):
                self.records[r.id] = RequestRecord(r)
                self.scheduler.add(r, env.now)
            batch = self.scheduler.next_batch(env.now)
            if batch is None:
                wait = source.wait(self.scheduler.wake_time(env.now))
                if wait is None:
                    if self.scheduler.idle:
                        break
                    raise SimulationError(
                        f"scheduler stalled at {env.now} ps: {self.scheduler.num_waiting} requests wait, "
                        "nothing runs and no arrival or wake-up is due"
                    )
                yield wait
                continue
            start = env.now
            moved = None if self.kv_tiers is None else (yield from self.kv_tiers.settle())
            blame, reused = yield from self._step(batch)
            if self.health is not None and self.health.pending is not None:  # failed mid-iteration
                yield from self.health.recover(self, batch)
                continue
            if moved is not None and moved.by_cause:  # the iteration waited for KV tier moves first
                moved.merge(blame)
                blame = moved
            self.scheduler.complete(batch, env.now)
            self._account(batch, start, env.now, blame, reused)
        self.done.succeed()

    def _step(self, batch: Batch) -> Generator[simpy.Event, Any, tuple[Blame, bool]]:
        """One iteration: replayed when its shape was simulated before (and not picked for a
        check), else simulated in full. Its blame (a replay shares its shape's, unchanged) and
        whether it was replayed."""
        reuse = self.reuse
        blame = Blame()
        if reuse is None:
            yield from self._iteration(batch, blame)
            return blame, False
        # The host time the device waits for (before the device work, so it adds exactly) depends
        # on the batch size and on the previous step (what async scheduling hides): a replay takes
        # its own, not the stored iteration's.
        host_ps = self.hardware.software.iteration_ps(batch.size, self._device_step_ps)
        sums = batch_sums(batch)
        key = reuse.key(sums)
        stored, replay = reuse.lookup(key)
        if stored is not None and replay:
            device_ps = max(1, stored.device_step_ps + reuse.shift_ps(stored, sums, batch))
            reuse.sync()  # time-driven energy up to here is this run's own
            yield self.env.timeout(host_ps + device_ps)
            reuse.sync(account=False)  # the replayed span's is in the stored change
            self._device_step_ps = device_ps
            return reuse.replay(stored, host_ps, device_ps), True
        start = self.env.now
        before = reuse.snapshot() if stored is None else None
        yield from self._iteration(batch, blame)
        if stored is None:
            duration = self.env.now - start
            reuse.store(key, sums, batch, before, duration, self._device_step_ps, host_ps, blame)  # type: ignore[arg-type]
        else:
            reuse.checked(stored, sums, batch, host_ps, self._device_step_ps)
        return blame, False

    def _account(self, batch: Batch, start: int, end: int, blame: Blame, reused: bool = False) -> None:
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
                len(self.iterations),
                start,
                end,
                batch.size,
                batch.num_tokens,
                batch.prefill_tokens,
                blame,
                reused,
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
        self._costs.clear()
        yield from self._host(batch, blame)
        device_start = self.env.now
        act = self.lowering.activation_bytes(tokens)
        moe = self.model.is_moe
        yield from self._op(self.chips[0], self.lowering.embed_op(tokens), blame, hint=None)
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
                if self.system.transfer_launch:
                    yield self.env.timeout(self.system.transfer_launch)
                yield self.network.transfer(s * m.tp, (s + 1) * m.tp, act)
                self._check_fabric("pipeline transfer", self.env.now - t0, act)
                blame.add(causes.PIPELINE_TRANSFER, self.env.now - t0)
        head = self.lowering.head_op(sum(1 for e in entries if e.emits_token))
        yield from self._op(self.chips[-1], head, blame, hint=None)
        self._device_step_ps = self.env.now - device_start

    def _host(self, batch: Batch, blame: Blame) -> Generator[simpy.Event, Any, None]:
        """The serving software's host time before the iteration (scheduling, inputs, sampling)."""
        sw = self.hardware.software
        ps = sw.iteration_ps(batch.size, self._device_step_ps)
        if ps > 0:
            t0 = self.env.now
            yield self.env.timeout(ps)
            sw.charge(ps)
            blame.add(causes.SOFTWARE, ps)
            self._log("host", "software", -1, t0, Blame({causes.SOFTWARE: ps}))

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
                OpRecord(len(self.iterations), where, op, layer, start, self.env.now, dict(own.by_cause))
            )

    def _op_body(
        self, chip: Chip, work: OpWork, blame: Blame, hint: tuple[int, str] | None
    ) -> Generator[simpy.Event, Any, None]:
        """One op: its memory streams overlapped with its kernels on the die (and, with near-memory
        compute, its GEMMs on the memory's MAC units after them); blame its time, check its bounds."""
        env = self.env
        start = env.now
        plan = self.plan
        waits: list[Any] = []  # events to wait for, or completion times (ps) booked without events
        wmem = chip.memories[plan.weights_memory]
        kvmem = chip.memories[plan.kv_memory]
        near = wmem.near if plan.mapping.compute == "near_memory" else None
        cost = self._op_cost(chip, work, wmem, kvmem, near)
        reports: list[Any] = []
        if work.weight_bytes > 0 and not cost.internal:
            waits.append(self._read_weights(wmem, work, hint, reports))
        if work.kv_read_bytes > 0:
            waits.append(self._access(kvmem, work.kv_read_bytes, False))
        if work.kv_write_bytes > 0:
            waits.append(self._access(kvmem, work.kv_write_bytes, True))
        die_end = chip.die.book_timed(
            cost.die_ps, cost.die_flops, cost.die_energy_pj, cost.die_kernels, env.now + cost.gap
        )
        if cost.gap:
            self.hardware.software.charge(cost.gap)
        waits.append(die_end)
        if near is not None and (cost.near_flops > 0 or cost.internal):
            waits.append(near.book_gemms(cost.near_ps, cost.near_flops, work.weight_bytes, die_end))
            if cost.internal and work.weight_bytes > 0:
                wmem.device.account_internal_read(wmem.share(work.weight_bytes))
        self.stat.memory_to_die_bytes.add(cost.crossing)
        events = [w for w in waits if not isinstance(w, int)]
        booked = max((w for w in waits if isinstance(w, int)), default=env.now)
        if booked > env.now:
            events.append(env.timeout(booked - env.now))
        if events:
            yield env.all_of(events) if len(events) > 1 else events[0]
        duration = env.now - start
        for cause, ps in cost.chain:
            blame.add(cause, ps)
        rest = duration - cost.chain_ps
        if rest > 0:  # the memory streams ended after the kernels: what they waited for
            stall = sum(r.stall_ps for r in reports)
            late = min(rest, stall)
            if late > 0:
                blame.add(causes.prefetch_stall(plan.weights_memory), late)
                rest -= late
            kv_bytes = work.kv_read_bytes + work.kv_write_bytes
            streamed = work.weight_bytes / wmem.peak >= kv_bytes / kvmem.peak and not cost.internal
            mem = wmem if streamed else kvmem
            # what the memory's own stream needed at its peak beyond the kernels (near-memory units
            # reading through the memory's interface), then what it queued for
            bw = min(rest, max(0, cost.streams.get(mem.name, 0) - cost.chain_ps))
            if bw > 0:
                blame.add(self._cause("bw", mem.name), bw)
                rest -= bw
            if rest > 0:
                blame.add(causes.memory_wait(mem.device.queueing_cause(), mem.name), rest)
        for what, need in cost.needs:
            if duration + cost.slack < need:
                self._violation(f"{chip.name} {work.name} layer {work.layer}", duration, what, need)

    def _op_cost(self, chip: Chip, work: OpWork, wmem: ChipMemory, kvmem: ChipMemory, near: Any) -> _OpCost:
        """What ``work`` costs that does not depend on when it runs, worked out once per iteration for
        each distinct op (the layers of a class share their kernel tuple, see ``Lowering.layer_ops``)."""
        key = (id(chip), id(work.kernels), work.weight_bytes, work.kv_read_bytes, work.kv_write_bytes)
        cost = self._costs.get(key)
        if cost is not None:
            return cost
        internal = near is not None and near.internal  # weights read on the memory's internal path
        kv_bytes = work.kv_read_bytes + work.kv_write_bytes
        die_kernels = work.kernels if near is None else tuple(k for k in work.kernels if k.kind != "gemm")
        near_flops = work.flops - sum(k.flops for k in die_kernels)
        src = self._sources(chip, wmem, kvmem)
        times = chip.die.kernel_times(die_kernels, src)
        latency = self._latency_ps(chip, die_kernels, wmem, kvmem, internal)
        die = chip.die.params
        die_flops = sum(k.flops for k in die_kernels)
        die_energy = sum(k.flops * die.energy_per_flop(k.precision) for k in die_kernels)  # type: ignore[attr-defined]
        gap = self.hardware.software.kernels_ps(len(work.kernels))
        near_parts = (0, 0, 0)
        if near is not None and (near_flops > 0 or internal):
            # after the die's kernels (which read the KV cache): the weights on the units' path
            near_parts = near.gemm_parts(
                near_flops, work.weight_bytes, 0.0, len(work.kernels) - len(die_kernels)
            )
        near_ps = sum(near_parts)
        crossing = kv_bytes + (self.lowering.activation_bytes(self._tokens) if near else work.weight_bytes)
        chain, chain_ps = self._blame_chain(
            work, die_kernels, times, src, gap, near_parts, latency, wmem, kvmem
        )
        needs = self._bounds(chip, work, die_kernels, near_flops, wmem, kvmem, near, internal)
        w_bytes = 0.0 if internal else work.weight_bytes
        streams = {wmem.name: w_bytes / wmem.peak * PS_PER_S}
        streams[kvmem.name] = streams.get(kvmem.name, 0.0) + kv_bytes / kvmem.peak * PS_PER_S
        cost = self._costs[key] = _OpCost(
            work.kernels,
            die_kernels,
            sum(t.total_ps for t in times) + sum(latency.values()),
            die_flops,
            die_energy,
            gap,
            internal,
            near_flops,
            near_ps,
            crossing,
            chain,
            chain_ps,
            tuple((what, seconds * PS_PER_S) for what, seconds in needs),
            {name: round(ps) for name, ps in streams.items()},
            1 + len(work.kernels),  # integer-ps rounding
        )
        return cost

    def _latency_ps(
        self, chip: Chip, kernels: tuple[Kernel, ...], wmem: ChipMemory, kvmem: ChipMemory, internal: bool
    ) -> dict[str, int]:
        """Time the op's kernels wait for first bytes, by memory: each kernel reading a memory on demand
        (weights without a prefetch buffer, the KV cache) waits for that memory's access latency beyond
        the latency already inside the die's fitted fixed costs (the longest of its sources)."""
        fitted = chip.die.params.fitted_memory_latency  # type: ignore[attr-defined]
        w_extra = 0 if internal or wmem.prefetcher is not None else max(0, wmem.access_latency_ps - fitted)
        kv_extra = max(0, kvmem.access_latency_ps - fitted)
        out: dict[str, int] = {}
        for k in kernels:
            w = w_extra if k.weight_bytes else 0
            kv = kv_extra if k.kv_bytes else 0
            if w or kv:
                name = wmem.name if w >= kv else kvmem.name
                out[name] = out.get(name, 0) + max(w, kv)
        return out

    def _sources(self, chip: Chip, wmem: ChipMemory, kvmem: ChipMemory) -> Sources:
        """Where the die's kernels read their bytes: weights from their memory (or a die-side prefetch
        buffer at the die's SRAM bandwidth), KV cache and activations from the KV memory."""
        weights = wmem.peak
        pf = wmem.spec.prefetch
        sram_bw = chip.die.params.sram_bandwidth  # type: ignore[attr-defined]
        if pf is not None and pf.buffer == "die" and sram_bw > 0:
            weights = sram_bw
        return Sources(weights, kvmem.peak, kvmem.peak)

    def _blame_chain(
        self,
        work: OpWork,
        kernels: tuple[Kernel, ...],
        times: list[KernelTime],
        src: Sources,
        gap: int,
        near_parts: tuple[int, int, int],
        latency: dict[str, int],
        wmem: ChipMemory,
        kvmem: ChipMemory,
    ) -> tuple[tuple[tuple[Cause, int], ...], int]:
        """The blame of the op's kernels (fixed costs, memory latency and memory legs by source,
        compute legs), its launch gaps and its near-memory GEMMs, in booking order; and their total."""
        near_fixed, near_mac, near_mem = near_parts
        total = gap + near_fixed + near_mac + near_mem + sum(latency.values())
        fixed, compute, w_mem, other_mem = near_fixed, 0, near_mem, 0
        w_bw, other_bw = src.weights, src.kv
        for k, t in zip(kernels, times, strict=True):
            total += t.total_ps
            fixed += t.fixed_ps
            compute += t.compute_ps
            if t.memory_ps:
                w = k.weight_bytes / w_bw
                other = (k.kv_bytes + k.act_bytes) / other_bw
                part = round(t.memory_ps * w / (w + other)) if w + other > 0 else 0
                w_mem += part
                other_mem += t.memory_ps - part
        chain = [
            (causes.SOFTWARE, gap),
            (causes.KERNEL_OVERHEAD, fixed),
            (causes.COMPUTE_DIE, compute),
            (self._cause("bw", wmem.name), w_mem),
            (self._cause("bw", kvmem.name), other_mem),
            (self._cause("near", wmem.name), near_mac),
            *((self._cause("latency", name), ps) for name, ps in latency.items()),
        ]
        return tuple((c, ps) for c, ps in chain if ps > 0), total

    def _cause(self, what: str, memory: str) -> Cause:
        """The cause objects of one memory, made once."""
        key = (what, memory)
        cause = self._causes.get(key)
        if cause is None:
            make = {
                "bw": causes.memory_bandwidth,
                "near": causes.near_memory_macs,
                "stall": causes.prefetch_stall,
                "launch": causes.collective_launch,
                "latency": causes.memory_latency,
            }
            cause = self._causes[key] = make[what](memory)
        return cause

    def _bounds(
        self,
        chip: Chip,
        work: OpWork,
        die_kernels: tuple[Kernel, ...],
        near_flops: float,
        wmem: ChipMemory,
        kvmem: ChipMemory,
        near: Any,
        internal: bool,
    ) -> list[tuple[str, float]]:
        """The op's physical bounds (s): bytes over the peak bandwidth of every memory or path they
        cross, FLOPs over the peak rate of the unit that computes them. No op may beat any of them."""
        bounds: list[tuple[str, float]] = []
        kv = work.kv_read_bytes + work.kv_write_bytes
        w_stream = work.weight_bytes if not internal and wmem.prefetcher is None else 0.0
        if wmem is kvmem:
            bounds.append((f"memory {wmem.name}", (w_stream + kv) / wmem.peak))
        else:
            bounds.append((f"memory {wmem.name}", w_stream / wmem.peak))
            bounds.append((f"memory {kvmem.name}", kv / kvmem.peak))
        if wmem.prefetcher is not None and not internal:
            src = self._sources(chip, wmem, kvmem)
            bounds.append((f"prefetch buffer of {wmem.name}", work.weight_bytes / src.weights))
        die = chip.die.params
        die_flops: dict[str, float] = {}
        for k in die_kernels:
            die_flops[k.precision] = die_flops.get(k.precision, 0.0) + k.flops
        bounds.append(("compute die", sum(f / die.peak(d) for d, f in die_flops.items())))  # type: ignore[attr-defined]
        if near is not None:
            bounds.append((f"near-memory MACs of {wmem.name}", near_flops / near.peak_flops))
            if internal:
                bounds.append((f"internal path of {wmem.name}", work.weight_bytes / near.bandwidth))
        return bounds

    def _violation(self, where: str, duration: int, what: str, need: float) -> None:
        """An op finished faster than a bound allows: counted, described, fatal in strict mode."""
        self.stat.bound_violations.add()
        text = f"iteration {len(self.iterations)} {where}: {duration} ps < {need:.0f} ps needed by {what}"
        if len(self.violations) < 20:
            self.violations.append(text)
        if self._strict:
            raise BoundViolation(f"physical bound violated: {text}")

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
        attn, ffn = self.lowering.layer_weight_bytes(self._tokens)[layer]
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
        plan = self._collective_plans.get((op, nbytes, group))
        if plan is None:
            plan = self._collective_plans[(op, nbytes, group)] = self._plan_collective(op, nbytes, group)
        launch, case, need_bytes, link_bytes, launch_cause, cause = plan
        p: DriverParams = self.params  # type: ignore[assignment]
        if p.collective_timeout or p.straggler_delay:
            late = yield from self._deadline(case, launch, p)
        else:
            late = False
            yield from self._collective_body(case, launch)
        if not late:  # an abandoned collective's data never arrived: no bound to check
            self._check_fabric(op, env.now - t0, need_bytes)
        launched = min(launch, env.now - t0)  # a timeout shorter than the launch cuts the launch too
        if launched:
            blame.add(launch_cause, launched)
        t0 += launched
        blame.add(cause, env.now - t0)
        self.stat.fabric_link_bytes.add(link_bytes)
        self._log("fabric", op, -1, t0, Blame({cause: env.now - t0}))

    def _collective_body(
        self, case: CollectiveCase, launch: int, straggle: int = 0
    ) -> Generator[simpy.Event, Any, None]:
        """The collective itself: its launch and messages (simulated or the twin), after a straggling
        rank's ``straggle`` ps (no rank can finish before every rank has contributed)."""
        if straggle:
            yield self.env.timeout(straggle)
        if self.params.collectives == "simulated":  # type: ignore[attr-defined]
            yield from self._simulated_collective(case, launch)
        else:
            yield self.env.timeout(self._twin_collective_ps(case))

    def _deadline(
        self, case: CollectiveCase, launch: int, p: DriverParams
    ) -> Generator[simpy.Event, Any, bool]:
        """A collective with an injected straggler and/or a timeout: the iteration waits for it at
        most ``collective_timeout``; then it goes on with stale data (True: timed out) while the
        late messages still cross the fabric."""
        env = self.env
        self.stat.collectives.add()
        straggle = 0
        if p.straggler_delay and self.rng("straggler").random() < p.straggler_probability:
            straggle = p.straggler_delay
            self.stat.stragglers.add()
        body = env.process(self._collective_body(case, launch, straggle))
        if not p.collective_timeout:
            yield body
            return False
        yield body | env.timeout(p.collective_timeout)
        if body.triggered:
            return False
        self.stat.collective_timeouts.add()
        self._late += 1
        body.callbacks.append(self._landed)
        return True

    def _landed(self, _: simpy.Event) -> None:
        self._late -= 1

    def _plan_collective(self, op: str, nbytes: int, group: int) -> tuple[Any, ...]:
        """What a collective of ``op`` over ``group`` ranks of ``nbytes`` each needs, worked out
        once: its launch, its case, the bytes one rank must send over its link (the bound), its
        bytes x link traversals and its blame causes."""
        case = CollectiveCase(
            op, "ring" if op == "allreduce" else "direct", max(1, nbytes), tuple(range(group))
        )
        return (
            launch_for(self.system.collective_launch, group),
            case,
            case.nbytes * self._fabric_share(case),
            self._collective_link_bytes(case),
            self._cause("launch", op),
            causes.collective(op),
        )

    def _twin_collective_ps(self, case: CollectiveCase) -> int:
        """The analytic twin's time of a collective (its launch included), cached per case."""
        key = (case.op, case.nbytes, len(case.ranks))
        ps = self._collective_cache.get(key)
        if ps is None:
            ps = self._collective_cache[key] = collective_ps(self.system, self.hardware.fabric_twin(), case)
        return ps

    def _simulated_collective(self, case: CollectiveCase, launch: int) -> Generator[simpy.Event, Any, None]:
        """A collective's library launch, then its messages on the simulated fabric or their
        stored outcome.

        The driver puts one collective or transfer on the fabric at a time and the fabric has no
        other traffic, so each starts on an idle fabric; when the fabric keeps no state across idle
        periods (``idle_is_stateless``: links and buffers only, no arbiter priorities), a case's
        duration and the counters it moves are a function of the case alone. They are simulated
        the first time and replayed after (``driver.collective_memo``), exactly, in one timeout."""
        env, net = self.env, self.network
        memo = self._fabric_memo
        if memo is None or self._late or net.sources or not getattr(net, "idle_is_stateless", False):
            if launch:
                yield env.timeout(launch)
            yield run_algorithm(net, case)
            return
        key = (case.op, case.algorithm, case.nbytes, case.ranks)
        # Messages start on a fabric clock edge and move in whole cycles: the time from that edge
        # on is the same at any clock phase.
        cycle = net.cycle_ps
        edge = -(-(env.now + launch) // cycle) * cycle
        stored = memo.get(key)
        if stored is not None:
            duration, deltas = stored
            yield env.timeout(edge - env.now + duration)
            for c, d in zip(self._fabric_counters, deltas, strict=True):
                if d:
                    c.value += d
            return
        if launch:
            yield env.timeout(launch)
        before = [c.value for c in self._fabric_counters]
        yield run_algorithm(net, case)
        changes = tuple(c.value - b for c, b in zip(self._fabric_counters, before, strict=True))
        memo[key] = (env.now - edge, changes)

    @property
    def _fabric_counters(self) -> list[Counter]:
        """Every counter of the fabric and its parts (routers, NICs)."""
        if self._fabric_counter_list is None:
            root = self.network.path
            self._fabric_counter_list = [
                stat
                for scope, group in sorted(self.sim.stats.groups.items())
                if scope == root or scope.startswith(root + ".")
                for stat in group.values()
                if isinstance(stat, Counter)
            ]
        return self._fabric_counter_list

    @staticmethod
    def _fabric_share(case: CollectiveCase) -> float:
        """The part of a collective's per-rank bytes each rank must send through its own link: ring
        all-reduce 2(p-1)/p (reduce-scatter then all-gather), direct all-to-all (p-1)/p."""
        p = len(case.ranks)
        return (2 if case.op == "allreduce" else 1) * (p - 1) / p

    def _check_fabric(self, what: str, duration: int, nbytes: float) -> None:
        """No collective or transfer beats the bytes one terminal must send over its link's peak."""
        if self._link_Bps is None:
            net = self.hardware.fabric_twin().params
            self._link_Bps = net.flit_bytes * net.clock
        need = nbytes / self._link_Bps * PS_PER_S
        if duration + 1 < need:
            self._violation(f"fabric {what}", duration, f"{nbytes:.0f} B over one link", need)

    def _collective_link_bytes(self, case: CollectiveCase) -> float:
        """Bytes x link traversals: ring all-reduce sends 2(p-1) chunks of n/p per rank, direct
        all-to-all (p-1) chunks of n/p per rank; each transfer crosses its hops plus the two NIC links."""
        p = len(case.ranks)
        key = ("links", p)
        hops = self._collective_cache.get(key)
        if hops is None:
            net = self.hardware.fabric_twin()
            tr = net.terminal_router
            pairs = [(case.ranks[i], case.ranks[(i + 1) % p]) for i in range(p)]
            hops = sum(len(net.route_of(tr[a], tr[b])) - 1 + 2 for a, b in pairs) / p
            self._collective_cache[key] = hops
        chunks = 2 * (p - 1) if case.op == "allreduce" else p - 1
        return chunks * case.nbytes * hops
