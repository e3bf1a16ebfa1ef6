"""Prefill/decode disaggregation: a prefill pool, a decode pool and the KV transfer between them.

A disaggregated run (Splitwise, ISCA'24; DistServe, OSDI'24) serves each request in two places. A
replica of the *prefill pool* (its own system, chip count and mapping) runs the prompt and computes
the first output token, as in both papers; the request's KV cache (the prompt's tokens, every layer,
at the pools' KV dtype; split over the replica's ``tp x pp`` chips, the total is the same) then moves
over the scale-out link to a replica of the *decode pool*, which admits the request with its KV
already present (no prefill recomputed) and generates the remaining ``output_tokens - 1`` tokens.

Time to first token: the first token is computed by the prefill replica but reaches the client with
the request's hand-off, when its KV has arrived at the decode replica (the client's stream is served
by the decode side, as in vLLM's and Dynamo's disaggregated serving). So TTFT = prefill queueing +
prefill + KV transfer (its queueing on the link included); a request with one output token is done
on the prefill pool and moves no KV.

The link: every chip has a scale-out NIC of ``link_bandwidth`` per direction. A prefill replica's
egress port carries ``link_bandwidth x its chips`` (its shards leave in parallel) and a decode
replica's ingress port ``link_bandwidth x its chips``. A transfer holds the sender's egress port and
then the receiver's ingress port (FIFO, one transfer per port at a time: a bandwidth-serialised
channel per port), occupies them for ``bytes / min(egress, ingress)`` and arrives ``link_latency``
later. On an idle link a transfer takes ``link_latency + bytes / bandwidth``. Transfers start when the
prefill iteration that emits the first token ends (no layer-by-layer overlap: conservative). The
prefill replica keeps the request's KV allocated until its last byte has left (its memory buffers
what waits for the link); at the decode replica the KV waits, uncounted, for admission (KV room and
a seat): the arriving KV of a request not yet admitted is not charged to either pool's capacity.

Which decode replica receives a request is a registered request-routing policy
(:mod:`sim.serving.router`) evaluated at hand-off, over the decode replicas' load including the
requests already on their way to them. The decode replicas' batching policy is the KV-ready variant
of the run's policy (``@register("kv_ready_batching", POLICY)``); only ``continuous`` has one.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import simpy

from sim.core.component import Component
from sim.core.errors import ConfigError
from sim.core.params import ParamSet, at_least, non_negative, param, positive
from sim.core.registry import lookup, names, register
from sim.core.units import BANDWIDTH, COUNT, ENERGY, PS_PER_S, TIME
from sim.requests.record import Request
from sim.serving.batching import BatchingPolicy, ContinuousBatching, RequestState
from sim.serving.router import ReplicaLoad, RequestFeed, RoutingPolicy
from sim.serving.scheduler import Batch
from sim.stats import counter, tally


def _known_router(name: str) -> str | None:
    known = names("request_router")
    return None if name in known else f"one of: {', '.join(known)}"


@dataclass(frozen=True)
class DisaggParams(ParamSet):
    """A prefill pool, a decode pool and the scale-out link between them (``--set disagg.KEY=VALUE``
    or a system file's ``[disaggregation]`` table)."""

    enabled: bool = param(True, bool, "serve prefill and decode on separate pools (false: ignore the table)")
    prefill_system: str = param(
        "", str, "system (name in topologies/ or TOML) of the prefill pool; '': the run's system"
    )
    decode_system: str = param(
        "", str, "system (name in topologies/ or TOML) of the decode pool; '': the run's system"
    )
    prefill_replicas: int = param(1, COUNT, "replicas in the prefill pool", check=positive)
    decode_replicas: int = param(1, COUNT, "replicas in the decode pool", check=positive)
    prefill_tp: int = param(
        0, COUNT, "tensor parallelism of a prefill replica; 0: the run's mapping", check=non_negative
    )
    prefill_pp: int = param(
        0, COUNT, "pipeline stages of a prefill replica; 0: the run's mapping", check=non_negative
    )
    decode_tp: int = param(
        0, COUNT, "tensor parallelism of a decode replica; 0: the run's mapping", check=non_negative
    )
    decode_pp: int = param(
        0, COUNT, "pipeline stages of a decode replica; 0: the run's mapping", check=non_negative
    )
    link_bandwidth: float = param(
        "50GB/s",
        BANDWIDTH,
        "scale-out bandwidth per chip per direction: one 400 Gb/s InfiniBand NDR port per GPU "
        "(NVIDIA DGX H100 datasheet: 8 x ConnectX-7 400 Gb/s for the compute fabric, one per GPU)",
        check=at_least(1, "1 B/s"),
    )
    link_latency: int = param(
        "5us",
        TIME,
        "fixed latency of one KV transfer: RDMA write through one switch plus the transfer "
        "engine's set-up (ASSUMPTION: NDR port-to-port ~1-2 us; a few us of software)",
        check=non_negative,
    )
    link_energy_per_bit: float = param(
        "60pJ",
        ENERGY,
        "energy per bit moved over the scale-out link, NICs, switch and optics (ASSUMPTION: ~25 W "
        "per 400 Gb/s port at line rate, the order of ConnectX-7 adapters' typical power)",
        check=non_negative,
    )
    prefill_router: str = param(
        "round_robin", str, "request-routing policy choosing a request's prefill replica", check=_known_router
    )
    decode_router: str = param(
        "round_robin",
        str,
        "request-routing policy choosing a request's decode replica at hand-off",
        check=_known_router,
    )


def kv_transfer_bytes(model: Any, kv_dtype: str, prompt_tokens: int) -> int:
    """Bytes of KV a request's prefill leaves behind: the prompt's tokens in every layer's cache
    (sliding-window layers hold at most their window), summed over all ``tp x pp`` shards."""
    return int(model.kv_cache_bytes(kv_dtype, prompt_tokens))


# -- the decode pool's batching: requests arrive with their KV --------------------------------------


@register("kv_ready_batching", "continuous")
class KvReadyContinuous(ContinuousBatching):
    """Continuous batching on a decode replica: every request added has its prompt's KV and its
    first token already (from the prefill pool), so it is admitted straight into decoding.

    Requests whose KV has arrived wait FCFS (``ready``) for a seat (``max_batch``) and KV room
    (``kv_reserve = "full"``: blocks for prompt + output - 1; ``"prompt"``: blocks for the KV and
    the next token, plus ``kv_headroom``); a request evicted later is recomputed here, as vLLM does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ready: deque[RequestState] = deque()

    @property
    def num_waiting(self) -> int:
        return len(self.ready) + super().num_waiting

    def _oversize(self, request: Request) -> str | None:
        return self._oversize_kv(request, self.headroom_blocks)  # no prompt to chunk here

    def _enqueue(self, state: RequestState) -> None:
        state.prefilled = state.prefill_target  # the KV came over the link
        state.generated = 1  # the prefill pool's token
        self.ready.append(state)

    def _schedule(self, now: int) -> tuple[list, list[Request]]:
        p = self.params
        while self.ready and not self.evicted and len(self.running) < p.max_batch:
            s = self.ready[0]
            if p.kv_reserve == "full":
                blocks = self._blocks(self._peak_kv(s.request))
                fits = self._free_blocks() >= blocks
            else:
                blocks = self._blocks(s.request.prompt_tokens + 1)
                fits = self._free_blocks() - self.headroom_blocks >= blocks
            if not fits:
                break
            self.ready.popleft()
            self._admit(s, blocks, now)
            s.kv_tokens = s.request.prompt_tokens
            self.running.append(s)
        return super()._schedule(now)


def kv_ready_policy(
    name: str, table: dict[str, Any], kv_capacity_tokens: int | None, where: str
) -> BatchingPolicy:
    """The KV-ready variant of batching policy ``name`` for a decode replica."""
    if name not in names("kv_ready_batching"):
        raise ConfigError(
            f"a disaggregated decode pool admits requests with their KV already present; batching "
            f"policy {name!r} has no such variant (registered: {', '.join(names('kv_ready_batching'))})",
            where=join(where, "policy"),
        )
    cls = lookup("kv_ready_batching", name)
    return cls(table, kv_capacity_tokens=kv_capacity_tokens, where=where)


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class Observed:
    """A batching policy whose finished requests are reported to ``on_finish(states, now)``; every
    other attribute is the policy's own (the driver and the router's load probe see the policy).

    On a prefill replica a finished request's KV stays allocated until its bytes have left for the
    decode pool (:meth:`hold`, :meth:`release`): the replica's memory buffers what waits for the link.
    """

    def __init__(
        self,
        policy: BatchingPolicy,
        on_finish: Callable[[list[RequestState], int], None],
        feed: HeldFeed | None = None,
    ) -> None:
        self._policy = policy
        self._on_finish = on_finish
        self._feed = feed

    def complete(self, batch: Batch, now: int) -> list[RequestState]:
        done = self._policy.complete(batch, now)
        if done:
            self._on_finish(done, now)
        return done

    def hold(self, tokens: int) -> int:
        """Keep ``tokens`` of a finished request's KV allocated; the blocks held."""
        blocks = -(-tokens // self._policy.block)
        self._policy.used_blocks += blocks
        if self._feed is not None:
            self._feed.hold()
        return blocks

    def release(self, blocks: int) -> None:
        """The held KV has been sent: its blocks are free again (and the driver is woken to use them)."""
        self._policy.used_blocks -= blocks
        if self._feed is not None:
            self._feed.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)


class HeldFeed(RequestFeed):
    """A prefill replica's feed: it stays open while the replica holds KV still to be sent, and
    wakes the replica's driver when a send frees KV room (a request may be waiting for it)."""

    def __init__(self, env: simpy.Environment) -> None:
        super().__init__(env)
        self.held = 0
        self._closing = False

    def close(self) -> None:
        self._closing = True
        if self.held == 0:
            super().close()

    def hold(self) -> None:
        self.held += 1

    def release(self) -> None:
        self.held -= 1
        if self._closing and self.held == 0:
            super().close()
        else:
            self._wake()


# -- the link -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Transfer:
    """One request's KV moving from a prefill replica to a decode replica (times in ps)."""

    request: int
    source: int
    target: int
    nbytes: int
    start_ps: int  # the prefill iteration's end
    sending_ps: int = -1  # both ports held: the bytes start to flow
    end_ps: int = -1  # the last byte arrived

    @property
    def duration_ps(self) -> int:
        return self.end_ps - self.start_ps

    @property
    def queued_ps(self) -> int:
        return self.sending_ps - self.start_ps


class KvLink(Component):
    """The scale-out link between the pools: one egress port per prefill replica and one ingress
    port per decode replica, each carrying one transfer at a time, FIFO (see the module doc)."""

    Params = DisaggParams
    STATS = (
        counter("transfers", "transfers", "KV transfers completed"),
        counter("bytes", "B", "KV bytes moved from the prefill pool to the decode pool"),
        tally("transfer_us", "us", "KV transfer time, queueing for the ports included"),
        tally("queue_us", "us", "time a KV transfer waited for its ports"),
    )

    def __init__(
        self,
        sim: Any,
        name: str,
        params: DisaggParams,
        egress_chips: int,
        ingress_chips: int,
    ) -> None:
        self.egress_Bps = params.link_bandwidth * egress_chips
        self.ingress_Bps = params.link_bandwidth * ingress_chips
        super().__init__(sim, name, params)

    def build(self) -> None:
        p: DisaggParams = self.params  # type: ignore[assignment]
        self.egress = [simpy.Resource(self.env, 1) for _ in range(p.prefill_replicas)]
        self.ingress = [simpy.Resource(self.env, 1) for _ in range(p.decode_replicas)]
        self.egress_busy_ps = [0] * p.prefill_replicas
        self.ingress_busy_ps = [0] * p.decode_replicas
        self.log: list[Transfer] = []

    def serialise_ps(self, nbytes: int) -> int:
        """Time the bytes occupy both ports: at the slower of the two, rounded up to a whole ps."""
        return -(-nbytes * PS_PER_S // int(min(self.egress_Bps, self.ingress_Bps)))

    def send(self, t: Transfer, sent: Callable[[], None] | None = None) -> Iterator[simpy.Event]:
        """Move ``t``'s bytes: hold the sender's port, then the receiver's, serialise, then the
        latency; ``sent()`` is called when the last byte has left the sender."""
        env = self.env
        p: DisaggParams = self.params  # type: ignore[assignment]
        with self.egress[t.source].request() as out:
            yield out
            with self.ingress[t.target].request() as into:
                yield into
                t.sending_ps = env.now
                busy = self.serialise_ps(t.nbytes)
                yield env.timeout(busy)
                self.egress_busy_ps[t.source] += busy
                self.ingress_busy_ps[t.target] += busy
        if sent is not None:
            sent()
        yield env.timeout(p.link_latency)
        t.end_ps = env.now
        self.log.append(t)
        self.stat.transfers.add()
        self.stat.bytes.add(t.nbytes)
        self.stat.transfer_us.observe(t.duration_ps / 1e6)
        self.stat.queue_us.observe(t.queued_ps / 1e6)


# -- the hand-off ---------------------------------------------------------------------------------


@dataclass
class Handed:
    """Where one request went and when: the merged record the summary reads (times in ps)."""

    request: Request
    prefill: int = -1  # replica indices
    decode: int = -1
    prefill_queued_ps: int = -1  # added to its prefill replica's policy
    prefill_admitted_ps: int = -1
    prefill_end_ps: int = -1  # the iteration that computed the first token ended
    delivered_ps: int = -1  # first token at the client: the KV arrived (or prefill end, one token)
    decode_admitted_ps: int = -1
    last_token_ps: int = -1
    generated: int = 0  # tokens in all (1 from prefill, the rest from decode)
    transfer: Transfer | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Handoff(Component):
    """Takes each request the prefill pool finishes, picks its decode replica, moves its KV over the
    :class:`KvLink` and pushes it to that replica's feed; closes the decode feeds once every
    prefill replica is done and every transfer has landed."""

    Params = DisaggParams
    STATS = (counter("handed", "requests", "requests handed from the prefill to the decode pool"),)

    def __init__(
        self,
        sim: Any,
        name: str,
        params: DisaggParams,
        link: KvLink,
        feeds: Sequence[RequestFeed],
        schedulers: Sequence[Any],
        kv_bytes: Callable[[Request], int],
        originals: dict[int, Request],
    ) -> None:
        self.link = link
        self.feeds = list(feeds)
        self.schedulers = list(schedulers)
        self.kv_bytes = kv_bytes
        self.originals = originals
        super().__init__(sim, name, params)

    def build(self) -> None:
        p: DisaggParams = self.params  # type: ignore[assignment]
        self.policy: RoutingPolicy = lookup("request_router", p.decode_router)
        self.records: dict[int, Handed] = {}
        self.transit: list[list[Request]] = [[] for _ in self.feeds]
        self.in_flight: list[simpy.Process] = []
        self.per_replica = [0] * len(self.feeds)
        self.prefill_schedulers: list[Observed] = []  # set by whoever builds the prefill pool
        self._seq = 0

    def record(self, request: Request) -> Handed:
        rec = self.records.get(request.id)
        if rec is None:
            rec = self.records[request.id] = Handed(self.originals[request.id])
        return rec

    def prefill_done(self, replica: int, states: list[RequestState], now: int) -> None:
        """A prefill replica's iteration ended with ``states`` done: their first token is computed."""
        for s in states:
            rec = self.record(s.request)
            rec.prefill = replica
            rec.prefill_queued_ps = s.queued_ps
            rec.prefill_admitted_ps = s.admitted_ps if s.admitted_ps is not None else -1
            rec.prefill_end_ps = now
            rec.generated = 1
            original = rec.request
            if original.output_tokens == 1:  # done: nothing left to decode, no KV to move
                rec.delivered_ps = rec.last_token_ps = now
                continue
            k = self._route(original)
            rec.decode = k
            self.per_replica[k] += 1
            self.transit[k].append(original)
            t = Transfer(original.id, replica, k, self.kv_bytes(original), now)
            rec.transfer = t
            held = self.prefill_schedulers[replica]
            blocks = held.hold(original.prompt_tokens)
            self.in_flight.append(self.env.process(self._move(t, original, partial(held.release, blocks))))

    def decode_done(self, replica: int, states: list[RequestState], now: int) -> None:
        for s in states:
            rec = self.records[s.request.id]
            rec.decode_admitted_ps = s.admitted_ps if s.admitted_ps is not None else -1
            rec.last_token_ps = s.last_token_ps if s.last_token_ps is not None else now
            rec.generated = s.generated

    def _route(self, r: Request) -> int:
        loads = [self._load(i) for i in range(len(self.feeds))]
        k = self.policy(r, loads, self._seq)
        self._seq += 1
        if not isinstance(k, int) or not 0 <= k < len(self.feeds):
            raise ValueError(f"routing policy returned {k!r} for request {r.id}; expected a decode replica")
        return k

    def _load(self, i: int) -> ReplicaLoad:
        """A decode replica's load: admitted and queued requests, those in its feed and on the link."""
        sched = self.schedulers[i]
        states = sched.by_id.values()
        coming = [*self.feeds[i].pending, *self.transit[i]]
        tokens = sum(s.prefill_target - s.prefilled + s.request.output_tokens - s.generated for s in states)
        tokens += sum(r.output_tokens - 1 for r in coming)
        free = float("inf")
        cap = sched.kv_capacity_tokens
        if cap is not None:
            queued = sum(
                s.request.prompt_tokens + s.request.output_tokens for s in states if s.kv_blocks == 0
            )
            queued += sum(r.prompt_tokens + r.output_tokens for r in coming)
            free = cap - sched.kv_allocated_tokens - queued
        return ReplicaLoad(i, len(sched.by_id) + len(coming), tokens, free)

    def _move(self, t: Transfer, r: Request, sent: Callable[[], None]) -> Iterator[simpy.Event]:
        yield from self.link.send(t, sent)
        self.transit[t.target].remove(r)
        self.record(r).delivered_ps = self.env.now
        self.stat.handed.add()
        self.feeds[t.target].push(r)

    def close_when(self, prefill_done: simpy.Event) -> None:
        """Close the decode feeds once ``prefill_done`` fired and every transfer landed."""
        self.env.process(self._closer(prefill_done))

    def _closer(self, prefill_done: simpy.Event) -> Iterator[simpy.Event]:
        yield prefill_done
        while any(p.is_alive for p in self.in_flight):
            yield self.env.all_of([p for p in self.in_flight if p.is_alive])
        for feed in self.feeds:
            feed.close()


def prefill_request(r: Request) -> Request:
    """What a prefill replica serves of ``r``: its prompt and the first token only."""
    return dataclasses.replace(r, output_tokens=1)


def prefill_stream(requests: Iterable[Request], originals: dict[int, Request]) -> Iterator[Request]:
    """The prefill pool's requests, remembering each original (the decode pool serves the rest)."""
    for r in requests:
        if r.id in originals:
            raise ConfigError(f"request id {r.id} appears twice", where="trace")
        originals[r.id] = r
        yield prefill_request(r)
