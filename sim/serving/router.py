"""Data-parallel replicas behind a request router.

``mapping.dp`` replicas each hold the whole model on their own ``pp x tp`` chips and serve requests
independently, each with its own batching policy and KV cache. A :class:`Router` takes the requests
in arrival order and, at each one's arrival time, hands it to one replica through that replica's
:class:`RequestFeed`; the replica's driver picks it up when it is next free to schedule (at the end
of its iteration in flight, as a single-replica run adds arrivals). Which replica gets a request is
a registered routing policy (``@register("request_router", NAME)``; the kind ``router`` is the
fabric's routers): a function of the request, the load of every replica at that moment
(:class:`ReplicaLoad`) and the request's position in the stream.

Shipped policies: ``round_robin`` (request i to replica i mod dp), ``least_requests`` (fewest
outstanding requests), ``least_tokens`` (fewest outstanding prompt + output tokens still to be
processed), ``kv_aware`` (most KV cache left after what its queued requests will claim) and
``prefix_aware`` (the replica whose prefix cache holds the longest leading run of the request's
blocks). Ties go to the lower replica index, so routing is deterministic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import simpy

from sim.core.component import Component
from sim.core.params import ParamSet, param
from sim.core.registry import lookup, names, register
from sim.requests.record import Request
from sim.stats import counter


class RequestFeed:
    """Requests pushed to one replica's driver over time; the driver waits on it when idle.

    The driver takes every pushed request with :meth:`arrived` and, with nothing to run, waits on
    :meth:`wait` for the next push, its scheduler's wake time, or nothing at all once the feed is
    closed (no more requests will come).
    """

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.pending: deque[Request] = deque()
        self.closed = False
        self._signal: simpy.Event | None = None

    def push(self, request: Request) -> None:
        self.pending.append(request)
        self._wake()

    def close(self) -> None:
        """No request will be pushed after this."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._signal is not None:
            signal, self._signal = self._signal, None
            signal.succeed()

    def arrived(self, now: int) -> Iterator[Request]:
        """Every request pushed and not yet taken, in push order."""
        while self.pending:
            yield self.pending.popleft()

    def wait(self, wake: int | None) -> simpy.Event | None:
        """What to wait for with nothing to run: the next push or ``wake`` (ps), whichever is first;
        None when neither can come (closed, no wake-up)."""
        now = self.env.now
        wake = wake if wake is not None and wake > now else None
        if self.closed:
            return None if wake is None else self.env.timeout(wake - now)
        if self._signal is None:
            self._signal = self.env.event()
        if wake is None:
            return self._signal
        return self.env.any_of([self._signal, self.env.timeout(wake - now)])


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """What a routing policy sees of one replica when a request arrives."""

    index: int
    requests: int  # outstanding: not yet taken from its feed, queued or admitted
    tokens: int  # prompt + output tokens those requests have still to process
    kv_free_tokens: float  # KV capacity not reserved, less the peak KV its queued requests will claim
    held: Callable[[Request], int] | None = None  # leading blocks of a request its prefix cache holds
    # (a read-only probe, PrefixCache.held_blocks); None: the replica has no prefix cache


RoutingPolicy = Callable[[Request, Sequence[ReplicaLoad], int], int]
"""(request, load of every replica, position of the request in the stream) -> replica index."""


@register("request_router", "round_robin")
def round_robin(request: Request, loads: Sequence[ReplicaLoad], seq: int) -> int:
    """Request i to replica i mod dp, whatever the load: the baseline."""
    return seq % len(loads)


@register("request_router", "least_requests")
def least_requests(request: Request, loads: Sequence[ReplicaLoad], seq: int) -> int:
    """The replica with the fewest outstanding requests (join the shortest queue)."""
    return min(loads, key=lambda x: (x.requests, x.index)).index


@register("request_router", "least_tokens")
def least_tokens(request: Request, loads: Sequence[ReplicaLoad], seq: int) -> int:
    """The replica with the fewest prompt + output tokens still to process: weighs long requests."""
    return min(loads, key=lambda x: (x.tokens, x.requests, x.index)).index


@register("request_router", "kv_aware")
def kv_aware(request: Request, loads: Sequence[ReplicaLoad], seq: int) -> int:
    """The replica with the most KV cache left once its queued requests are in: the one that can
    admit this request soonest when KV capacity, not compute, limits admission."""
    return min(loads, key=lambda x: (-x.kv_free_tokens, x.requests, x.index)).index


@register("request_router", "prefix_aware")
def prefix_aware(request: Request, loads: Sequence[ReplicaLoad], seq: int) -> int:
    """The replica whose prefix cache holds the longest leading run of the request's blocks (the
    most prefill it can skip), then the fewest outstanding requests, then the lower index: with no
    prefix held anywhere (or no prefix cache) this is ``least_requests``. It sees what the caches
    hold at the request's arrival, not blocks still being prefilled for requests routed earlier."""

    def held(x: ReplicaLoad) -> int:
        return 0 if x.held is None else x.held(request)

    return min(loads, key=lambda x: (-held(x), x.requests, x.index)).index


prefix_aware.needs_prefix_cache = True  # type: ignore[attr-defined]  # build_run refuses it without one


def replica_load(index: int, scheduler: Any, feed: RequestFeed) -> ReplicaLoad:
    """The load of a replica driven by a batching policy (:class:`~sim.serving.batching.BatchingPolicy`)
    and fed by ``feed``."""
    states = scheduler.by_id.values()
    pending = list(feed.pending)
    tokens = sum(
        s.prefill_target - s.prefilled + s.request.output_tokens - s.generated for s in states
    ) + sum(r.prompt_tokens + r.output_tokens for r in pending)
    cap = scheduler.kv_capacity_tokens
    free = float("inf")
    if cap is not None:
        queued = sum(s.request.prompt_tokens + s.request.output_tokens for s in states if s.kv_blocks == 0)
        queued += sum(r.prompt_tokens + r.output_tokens for r in pending)
        free = cap - scheduler.kv_allocated_tokens - queued
    cache = getattr(scheduler, "prefix_cache", None)
    held = None if cache is None else cache.held_blocks
    return ReplicaLoad(index, len(scheduler.by_id) + len(pending), tokens, free, held)


def _known_policy(name: str) -> str | None:
    known = names("request_router")
    return None if name in known else f"one of: {', '.join(known)}"


@dataclass(frozen=True)
class RouterParams(ParamSet):
    """How requests are spread over the data-parallel replicas (``--set router.KEY=VALUE``)."""

    policy: str = param(
        "round_robin",
        str,
        "registered routing policy: round_robin, least_requests, least_tokens, kv_aware, prefix_aware "
        "(needs prefix_cache.enabled) (or a plug-in's)",
        check=_known_policy,
    )


class Router(Component):
    """Hands each request, at its arrival time, to the replica its routing policy picks."""

    Params = RouterParams
    STATS = (counter("routed", "requests", "requests handed to a replica"),)

    def __init__(
        self,
        sim: Any,
        name: str,
        requests: Iterable[Request],
        feeds: Sequence[RequestFeed],
        loads: Sequence[Callable[[], ReplicaLoad]],
        params: RouterParams | None = None,
        available: Callable[[int], bool] | None = None,
    ) -> None:
        """``available(i)``: whether replica ``i`` takes requests now (a failed one does not); the
        policy then picks among those that do (among all when none does)."""
        if len(feeds) != len(loads) or not feeds:
            raise ValueError(f"expected one load probe per feed, found {len(feeds)} and {len(loads)}")
        self.requests = requests
        self.feeds = list(feeds)
        self.loads = list(loads)
        self.available = available
        super().__init__(sim, name, params or RouterParams())

    def build(self) -> None:
        self.policy: RoutingPolicy = lookup("request_router", self.params.policy)  # type: ignore[attr-defined]
        self.assigned: dict[int, int] = {}  # request id -> replica index
        self.per_replica = [0] * len(self.feeds)
        self.ahead = [0] * len(self.feeds)  # outstanding requests each routed request found there

    def run(self) -> None:
        self.env.process(self._route())

    def _route(self) -> Iterator[simpy.Event]:
        env = self.env
        for seq, r in enumerate(self.requests):
            if r.arrival_ps > env.now:
                yield env.timeout(r.arrival_ps - env.now)
            loads = [probe() for probe in self.loads]
            k = self._pick(r, loads, seq, range(len(loads)))
            self.assigned[r.id] = k
            self.per_replica[k] += 1
            self.ahead[k] += loads[k].requests
            self.stat.routed.add()
            self.feeds[k].push(r)
        for feed in self.feeds:
            feed.close()

    def _pick(self, r: Request, loads: list[ReplicaLoad], seq: int, among: Iterable[int]) -> int:
        """The policy's choice among the replicas ``among`` that are available (all of ``among``
        when none is); each policy sees those replicas' loads, numbered from 0."""
        among = list(among)
        live = [i for i in among if self.available is None or self.available(i)] or among
        if len(live) == len(loads):
            k = self.policy(r, loads, seq)
        else:
            sub = [replace(loads[i], index=j) for j, i in enumerate(live)]
            k = self.policy(r, sub, seq)
            k = live[k] if isinstance(k, int) and 0 <= k < len(live) else -1
        if not isinstance(k, int) or not 0 <= k < len(self.feeds):
            raise ValueError(
                f"routing policy {self.params.policy!r} returned {k!r} for request {r.id}; "  # type: ignore[attr-defined]
                f"expected a replica index from 0 to {len(live) - 1}"
            )
        return k

    def choose(self, r: Request, seq: int, exclude: int) -> int | None:
        """The replica, other than ``exclude``, that the policy gives ``r`` (a request moving off a
        failed replica); None when no other replica is available."""
        others = [i for i in range(len(self.feeds)) if i != exclude]
        if not any(self.available is None or self.available(i) for i in others):
            return None
        return self._pick(r, [probe() for probe in self.loads], seq, others)
