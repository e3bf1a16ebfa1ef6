"""Chip failures, their recovery (a local standby spare, or migration to another replica), and the
feeds that keep replicas alive while requests may still move between them.

A failed chip takes its whole replica down (every chip of a tensor- or pipeline-parallel group holds a
shard of every request's KV cache and of the weights, so no part of the group can go on alone).
Failures come at given times (``failures.at``) or from a failure rate (``failures.chip_fit``): each
replica's failures are a Poisson process of rate ``chips x FIT / 1e9 h``, drawn from the named random
stream ``failures.replicaI`` of the simulation (so the same seed gives the same failures, and adding a
replica never moves another's). A failure during an outage of the same replica is not counted (the
replica has no running chips to lose).

**What a failure costs.** The iteration in flight when a chip fails never completes: its tokens are
not emitted (the driver lets its simulated hardware finish, since ops cannot be stopped part-way, then
discards the results; the driver sees the failure when that iteration ends, and the outage is
counted from the failure itself).
Every admitted request's KV cache is lost with the failed chip's shard, so each is queued to be
prefilled again over prompt + tokens generated so far, exactly as a preemption by recompute does
(:meth:`~sim.serving.batching.ContinuousBatching.lose_kv`); its tokens already emitted stay emitted, so
a request still emits exactly its ``output_tokens`` in all. KV is never resumed: no shard survives.

**Recovery policies** are registered (``@register("failure_recovery", NAME)``) and say how long the
replica is out and whether its requests move:

* ``spare``: a local standby spare chip is swapped in after ``swap_delay`` and loads the failed
  chip's weight shard from host memory at ``host_bandwidth``; the replica's requests wait for it on
  the replica and are recomputed there.
* ``migrate``: the replica's requests (queued, admitted and not yet taken from its feed) move at once
  to the other replicas through the router's policy, arriving ``link_latency`` later, and are recomputed
  there (their KV was lost with the failed chip, so nothing but the request's progress moves). A
  replacement replica on a distant node comes up after ``replace_delay`` plus its weight shards over the
  scale-out link (``link_bandwidth`` per chip, ``link_latency``). With no replica up to take them, the
  requests stay and wait, as with a spare.

While a replica is down the router sends new requests only to replicas that are up (to all when none
is).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import simpy

from sim.core.component import Component
from sim.core.errors import ConfigError, SimulationError
from sim.core.params import ParamSet, non_negative, param, positive
from sim.core.registry import lookup, names, register
from sim.core.units import BANDWIDTH, PS_PER_S, RATIO, TIME, UnitError, parse_time
from sim.driver.blame import Cause
from sim.requests.record import Request
from sim.serving.router import RequestFeed
from sim.stats import counter

RELIABILITY = "reliability"
HOURS_PER_FIT = 1e9  # FIT: failures per 10^9 device-hours
PS_PER_HOUR = 3600 * PS_PER_S

LLAMA3_FIT = 419 * 0.78 / (16_384 * 54 * 24) * HOURS_PER_FIT
"""Failures per 10^9 GPU-hours implied by Dubey et al., "The Llama 3 Herd of Models" (arXiv
2407.21783, section 3.3.4): 419 unexpected interruptions in a 54-day snapshot of pre-training on
16,384 H100 GPUs, about 78% attributed to confirmed or suspected hardware issues. That is ~15,400
FIT, an MTBF of ~65,000 h (7.4 years) per GPU. It counts every hardware cause of those
interruptions (GPU, HBM, host, network), charged to the GPUs: an upper bound for a chip alone."""


def failure_times(rng: np.random.Generator, rate_per_s: float, horizon_ps: int) -> list[int]:
    """Failure times (ps, ascending) of a Poisson process of ``rate_per_s`` in [0, horizon_ps): the
    gaps are exponential with mean 1 / rate."""
    if rate_per_s <= 0:
        return []
    out: list[int] = []
    t = 0.0
    mean_ps = PS_PER_S / rate_per_s
    while True:
        t += rng.exponential(mean_ps)
        if t >= horizon_ps:
            return out
        out.append(round(t))


def parse_at(text: str) -> list[tuple[int, int]]:
    """``"[REPLICA@]TIME, ..."`` -> sorted (time ps, replica); a bare TIME is replica 0."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        replica, _, when = part.rpartition("@")
        try:
            index = int(replica) if replica else 0
        except ValueError:
            raise UnitError(f"expected a replica index before '@', found {replica!r} in {part!r}") from None
        if index < 0:
            raise UnitError(f"expected a replica index >= 0, found {index} in {part!r}")
        t = parse_time(when)
        if t < 0:
            raise UnitError(f"expected a time >= 0, found {when!r}")
        out.append((t, index))
    return sorted(out)


def _check_at(text: str) -> str | None:
    try:
        parse_at(text)
    except UnitError as exc:
        return f"a list of [REPLICA@]TIME such as '2s' or '0@1.5s,1@3s' ({exc})"
    return None


def _known_recovery(name: str) -> str | None:
    known = names("failure_recovery")
    return None if name in known else f"one of: {', '.join(known)}"


STALLED_AFTER = 100
"""Failures of one replica in a row with no iteration finished between them: the run is stalled."""


@dataclass(frozen=True)
class FailureParams(ParamSet):
    """Chip failures and how a replica recovers (``--set failures.KEY=VALUE``); off unless ``at`` or
    ``chip_fit`` is given."""

    at: str = param(
        "",
        str,
        "failures at given times: comma-separated [REPLICA@]TIME (e.g. '0@1.5s,1@3s'; a bare TIME is "
        "replica 0)",
        check=_check_at,
    )
    chip_fit: float = param(
        0.0,
        RATIO,
        "failures per 10^9 hours of one chip (FIT); 0: none drawn. Llama 3 (arXiv 2407.21783 sec. "
        "3.3.4) implies ~15,400 FIT per H100 (sim.serving.failures.LLAMA3_FIT); scale it up to see "
        "failures in seconds of simulated time",
        check=non_negative,
    )
    recovery: str = param(
        "spare", str, "registered failure_recovery policy: spare or migrate", check=_known_recovery
    )
    swap_delay: int = param(
        "5s",
        TIME,
        "spare: time to fence the failed chip, attach the standby spare and re-form the replica's "
        "communicators (ASSUMPTION: no published figure for inference serving)",
        check=non_negative,
    )
    host_bandwidth: float = param(
        "63GB/s",
        BANDWIDTH,
        "spare: rate at which the spare loads its weight shard from host memory (PCIe 5.0 x16: 32 GT/s "
        "x 16 lanes x 128/130 = 63 GB/s per direction, PCI-SIG PCIe 5.0 spec)",
        check=positive,
    )
    replace_delay: int = param(
        "60s",
        TIME,
        "migrate: time to obtain a healthy node elsewhere and start a replica on it (scheduling, "
        "container and engine start), before its weights load (ASSUMPTION)",
        check=non_negative,
    )
    link_bandwidth: float = param(
        "50GB/s",
        BANDWIDTH,
        "migrate: scale-out link per chip (400 Gb/s ConnectX-7 per GPU, NVIDIA DGX H100 datasheet)",
        check=positive,
    )
    link_latency: int = param(
        "5us",
        TIME,
        "migrate: one-way latency of the scale-out link, paid by each move and each weight load "
        "(ASSUMPTION: a few us across a data-centre fabric)",
        check=non_negative,
    )

    @property
    def enabled(self) -> bool:
        return bool(self.at.strip()) or self.chip_fit > 0


class Recovery:
    """Base of the registered recovery policies: how long a failed replica is out and whether its
    requests leave it. ``weight_bytes`` is one chip's weight shard."""

    migrates: ClassVar[bool] = False

    @staticmethod
    def downtime_ps(p: FailureParams, weight_bytes: int) -> int:
        raise NotImplementedError


@register("failure_recovery", "spare")
class Spare(Recovery):
    """A local standby spare: swap delay, then the failed chip's weight shard from host memory."""

    @staticmethod
    def downtime_ps(p: FailureParams, weight_bytes: int) -> int:
        return p.swap_delay + math.ceil(weight_bytes / p.host_bandwidth * PS_PER_S)


@register("failure_recovery", "migrate")
class Migrate(Recovery):
    """Requests move to the replicas that are up; a replacement replica on a distant node comes up
    after ``replace_delay`` and its weights over the scale-out link (every chip its own NIC)."""

    migrates = True

    @staticmethod
    def downtime_ps(p: FailureParams, weight_bytes: int) -> int:
        return p.replace_delay + p.link_latency + math.ceil(weight_bytes / p.link_bandwidth * PS_PER_S)


class FeedGroup:
    """Feeds of replicas that may still hand requests to each other: none closes (letting its driver
    finish) until the router has routed every request, nothing is in transit and every replica is idle."""

    def __init__(self) -> None:
        self.feeds: list[HeldFeed] = []
        self.schedulers: list[Any] = []
        self.in_transit = 0

    def maybe_close(self) -> None:
        done = all(f.stream_done for f in self.feeds) and self.in_transit == 0
        if done and all(s.idle for s in self.schedulers) and not any(f.pending for f in self.feeds):
            for f in self.feeds:
                if not f.closed:
                    RequestFeed.close(f)


class HeldFeed(RequestFeed):
    """A replica's feed that stays open after the router's last request while its group is busy."""

    def __init__(self, env: simpy.Environment, group: FeedGroup) -> None:
        super().__init__(env)
        self.group = group
        self.stream_done = False
        group.feeds.append(self)

    def close(self) -> None:
        """The router has no more requests; the feed closes when the whole group is idle."""
        self.stream_done = True
        self.group.maybe_close()

    def wait(self, wake: int | None) -> simpy.Event | None:
        self.group.maybe_close()
        return super().wait(wake)

    def poke(self) -> None:
        """Wake the driver: requests moved into its scheduler."""
        self._wake()


class ReplicaHealth:
    """What a replica's driver asks of the failure manager: whether a failure hit it since it last
    looked (``pending``), whether it is down (``blocked``), and the recovery to run then."""

    def __init__(self, manager: FailureManager, index: int) -> None:
        self.manager = manager
        self.index = index
        self.pending: int | None = None  # time of a failure the driver has not handled yet

    def blocked(self, now: int) -> bool:
        """A failure to handle, or the replica still down."""
        return self.pending is not None or now < self.manager.down_until[self.index]

    def recover(self, driver: Any, batch: Any) -> Generator[simpy.Event, Any, None]:
        yield from self.manager.recover(self.index, driver, batch)


class FailureManager(Component):
    """Injects failures into replicas and runs their recovery."""

    Params = FailureParams
    STATS = (
        counter("failures", "failures", "chip failures that took a replica down"),
        counter("ignored", "failures", "failures drawn while the replica was already down"),
        counter("lost_iterations", "iterations", "iterations in flight at a failure (results discarded)"),
        counter("requests_recomputed", "requests", "requests whose KV a failure lost (prefilled again)"),
        counter("requests_migrated", "requests", "requests moved to another replica"),
        counter("recomputed_tokens", "tokens", "tokens prefilled again after failures (prompt + generated)"),
    )

    def __init__(
        self,
        sim: Any,
        name: str,
        params: FailureParams,
        drivers: Sequence[Any],
        feeds: Sequence[HeldFeed],
        weight_bytes: int,
        chips_per_replica: int,
    ) -> None:
        self.drivers = list(drivers)
        self.feeds = list(feeds)
        self.weight_bytes = weight_bytes
        self.chips = chips_per_replica
        self.router: Any = None  # set by attach
        super().__init__(sim, name, params)

    def build(self) -> None:
        p: FailureParams = self.params  # type: ignore[assignment]
        dp = len(self.drivers)
        self.policy: type[Recovery] = lookup("failure_recovery", p.recovery)
        if self.policy.migrates and dp < 2:
            raise ConfigError(
                "migration moves a failed replica's requests to another replica; it needs mapping.dp "
                f">= 2, found {dp} (use failures.recovery=spare)",
                where="--set failures.recovery",
            )
        self.planned = parse_at(p.at)
        for _, i in self.planned:
            if i >= dp:
                raise ConfigError(
                    f"a failure of replica {i}, but replicas are numbered 0 to {dp - 1}",
                    where="--set failures.at",
                )
        for d in self.drivers:
            if not getattr(d.scheduler, "recovers_from_failures", False):
                raise ConfigError(
                    f"batching policy {getattr(d.scheduler, 'registered_name', '?')!r} cannot requeue "
                    "requests whose KV a failure lost; failures need batching.policy = continuous",
                    where="--set batching.policy",
                )
        self.downtime = self.policy.downtime_ps(p, self.weight_bytes)
        if self.rate_per_s > 0 and PS_PER_S / self.rate_per_s < self.downtime:
            mtbf_s, down_s = 1 / self.rate_per_s, self.downtime / PS_PER_S
            highest = HOURS_PER_FIT * 3600 / (self.chips * down_s)
            raise ConfigError(
                f"a replica of {self.chips} chips would fail every {mtbf_s:.3g} s on average, sooner than "
                f"it recovers ({down_s:.3g} s with {p.recovery}): it would hardly ever serve; expected "
                f"chip_fit below {highest:.3g}",
                where="--set failures.chip_fit",
            )
        self.health = [ReplicaHealth(self, i) for i in range(dp)]
        self.iterations_at_failure = [-1] * dp  # a replica's iteration count at its last failure
        self.failed_in_a_row = [0] * dp  # failures with no iteration finished in between
        self.down_until = [0] * dp
        self.events: list[dict[str, Any]] = []  # one per failure, for the summary
        self._seq = 0
        self.failure_cause = [Cause("failure", f"replica{i}", RELIABILITY) for i in range(dp)]
        self.recovery_cause = Cause("recovery", p.recovery, RELIABILITY)
        for d, h in zip(self.drivers, self.health, strict=True):
            d.health = h

    def attach(self, router: Any) -> None:
        """The router migrated requests go through."""
        self.router = router

    def up(self, index: int) -> bool:
        """Whether replica ``index`` can take requests now."""
        return self.env.now >= self.down_until[index]

    @property
    def rate_per_s(self) -> float:
        """Failures per second of one replica (every chip's FIT)."""
        return self.chips * self.params.chip_fit / HOURS_PER_FIT / 3600  # type: ignore[attr-defined]

    def run(self) -> None:
        for t, i in self.planned:
            self.env.process(self._at(t, i))
        if self.rate_per_s > 0:
            for i in range(len(self.drivers)):
                self.env.process(self._drawn(i))

    def _at(self, t: int, i: int) -> Generator[simpy.Event, Any, None]:
        if t > self.env.now:
            yield self.env.timeout(t - self.env.now)
        self.fail(i)

    def _drawn(self, i: int) -> Generator[simpy.Event, Any, None]:
        rng = self.sim.rng[f"failures.replica{i}"]
        mean_ps = PS_PER_S / self.rate_per_s
        while True:
            yield self.env.timeout(max(1, round(rng.exponential(mean_ps))))
            self.fail(i)

    def fail(self, i: int) -> None:
        """A chip of replica ``i`` fails now: the replica is down for the policy's downtime."""
        now = self.env.now
        if now < self.down_until[i]:
            self.stat.ignored.add()
            return
        self.stat.failures.add()
        done = len(self.drivers[i].iterations)
        self.failed_in_a_row[i] = self.failed_in_a_row[i] + 1 if done == self.iterations_at_failure[i] else 1
        self.iterations_at_failure[i] = done
        if self.failed_in_a_row[i] >= STALLED_AFTER:
            why = (
                f"a failure every {1 / self.rate_per_s:.3g} s on average; lower failures.chip_fit"
                if self.rate_per_s > 0
                else "failures.at puts its failures closer together than a downtime plus an iteration"
            )
            raise SimulationError(
                f"replica {i} failed {STALLED_AFTER} times in a row without finishing an iteration "
                f"(downtime {self.downtime / PS_PER_S:.3g} s each; {why}): the run cannot make progress",
                where=self.path,
            )
        self.down_until[i] = now + self.downtime
        self.health[i].pending = now
        self.events.append({"replica": i, "at_s": now / PS_PER_S, "back_s": self.down_until[i] / PS_PER_S})

    def recover(self, i: int, driver: Any, batch: Any) -> Generator[simpy.Event, Any, None]:
        """Run by replica ``i``'s driver when it sees the failure (at the end of the iteration in
        flight, or when it wakes): discard that iteration, requeue the lost KV, move the requests
        (migrate) and wait until the replica is back."""
        env = self.env
        health = self.health[i]
        sched = driver.scheduler
        if health.pending is not None:
            health.pending = None
            if batch is not None:
                self.stat.lost_iterations.add()
                driver.blame.add(self.failure_cause[i], env.now - batch.start_ps)
            lost = sched.lose_kv(batch)
            self.stat.requests_recomputed.add(len(lost))
            self.stat.recomputed_tokens.add(sum(s.prefill_target for s in lost))
            if self.policy.migrates:
                self._migrate(i, driver)
        back = self.down_until[i]
        if back > env.now and not (sched.idle and not self.feeds[i].pending):
            t0 = env.now  # requests wait here for the replica to come back
            yield env.timeout(back - env.now)
            driver.blame.add(self.recovery_cause, env.now - t0)
        self.feeds[i].group.maybe_close()

    def _migrate(self, i: int, driver: Any) -> None:
        """Every request of replica ``i`` to a replica that is up, chosen by the router's policy."""
        states = driver.scheduler.take_all()
        pending = list(self.feeds[i].pending)
        live = [k for k in range(len(self.drivers)) if k != i and self.up(k)]
        if not live:  # nobody to take them: they wait for the replica, as with a spare
            for s in states:
                driver.scheduler.adopt(s, self.env.now)
            return
        self.feeds[i].pending.clear()
        for s in states:
            record = driver.records.pop(s.request.id)
            self._send(self._target(s.request, i), s, record)
        for r in pending:
            self._send(self._target(r, i), r, None)

    def _target(self, request: Request, source: int) -> int:
        self._seq += 1
        k = self.router.choose(request, self._seq, exclude=source)
        return k if k is not None else source

    def _send(self, k: int, item: Any, record: Any) -> None:
        self.stat.requests_migrated.add()
        group = self.feeds[k].group
        group.in_transit += 1
        self.env.process(self._deliver(k, item, record))

    def _deliver(self, k: int, item: Any, record: Any) -> Generator[simpy.Event, Any, None]:
        p: FailureParams = self.params  # type: ignore[assignment]
        if p.link_latency:
            yield self.env.timeout(p.link_latency)
        feed = self.feeds[k]
        feed.group.in_transit -= 1
        if isinstance(item, Request):
            feed.push(item)
            return
        target = self.drivers[k]
        target.records[item.request.id] = record
        target.scheduler.adopt(item, self.env.now)
        feed.poke()

    def summary(self) -> dict[str, Any]:
        """The ``failures`` section of a run summary."""
        p: FailureParams = self.params  # type: ignore[assignment]
        end = self.env.now
        downtime = sum(min(e["back_s"], end / PS_PER_S) - e["at_s"] for e in self.events)
        return {
            "recovery": p.recovery,
            "chip_fit": p.chip_fit,
            "replica_failures_per_s": self.rate_per_s,
            "downtime_per_failure_s": self.downtime / PS_PER_S,
            "failures": int(self.stat.failures.value),
            "ignored_while_down": int(self.stat.ignored.value),
            "downtime_s": downtime,
            "lost_iterations": int(self.stat.lost_iterations.value),
            "requests_recomputed": int(self.stat.requests_recomputed.value),
            "requests_migrated": int(self.stat.requests_migrated.value),
            "recomputed_tokens": int(self.stat.recomputed_tokens.value),
            "events": list(self.events),
        }


def collective_summary(drivers: Sequence[Any]) -> dict[str, Any]:
    """The ``collective_timeout`` section: collectives run, stragglers injected, timeouts fired."""
    p = drivers[0].params
    return {
        "timeout_ms": p.collective_timeout / 1e9,
        "straggler_delay_ms": p.straggler_delay / 1e9,
        "straggler_probability": p.straggler_probability,
        "collectives": sum(int(d.stat.collectives.value) for d in drivers),
        "stragglers": sum(int(d.stat.stragglers.value) for d in drivers),
        "timeouts": sum(int(d.stat.collective_timeouts.value) for d in drivers),
    }


def failure_params(settings: dict[str, str], where: str) -> FailureParams:
    """``failures.KEY`` settings (the prefix removed) as :class:`FailureParams`."""
    return FailureParams.from_mapping(settings, where=where)
