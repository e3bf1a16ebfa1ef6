"""Iteration reuse: simulate each iteration shape in full once, replay it afterwards, measure the error.

A serving run repeats itself: a 200-request trace of Llama-3.1-70B runs ~5,000 iterations whose
costs fall into a few hundred groups. An iteration's cost follows from a handful of sums over its
batch (what :class:`~sim.serving.lowering.Lowering` reads): the tokens it processes (the GEMMs'
rows), the decode entries and their cached context (KV reads and decode attention), the prefill
chunks, their cached context and their attention work (sum of tokens x mid-chunk context), and the
entries that emit a token (the LM head's rows). Its **shape** (:func:`shape_key`) is those sums,
each kept to ``bits`` significant binary digits: exact below 2^bits, and above that in buckets
whose width is at most 2^(1 - bits) of the value (3.2% at the default 6 bits). A decode-only
shape also keeps how many GEMM tile rows of the kernel model its tokens and emitting entries fill
(``row_tiles``): a bucket starts on a power of two, so at 64 rows per tile [64, 65] or [128, 131]
would hold batches on both sides of a tile edge, a step of ~4% that the context shift cannot see.

Within a bucket the stored iteration sits wherever the first one fell, and contexts only grow, so a
plain replay would run short, and the small bias would add up over thousands of iterations and move
when later requests arrive relative to iteration boundaries (the scheduling diverges). A replay is
therefore moved by the decode context and prefill attention pairs it has beyond the stored one, at
the kernel model's time per context token and per pair on one chip (:attr:`IterationReuse.slopes`,
from probe batches): first order within the bucket. The sampled checks below measure what is left.

The first iteration of a shape runs in full through the memories, compute and fabric at the
system's chosen fidelity; what it did is stored: its duration, the chips' share of it, its blame,
and the change it made to every counter of every component (bytes, energy, FLOPs, host time) and to
every compute unit's busy time. A later iteration of the same shape replays those: one timeout, the
blame, the counter deltas. Every ``check_every``-th hit is simulated in full anyway and compared with
the stored duration; the summary reports ``reuse: {hits, shapes, sampled, max_rel_error,
mean_rel_error}``. What is stored comes from the full simulation at the system's fidelity, never
from an analytic twin unless the system chose it; only the first-order shift uses the kernel model.

What a replayed iteration does not do: add latency samples to device or fabric tallies (queueing
and packet-latency means are over the simulated iterations and collectives), move device queues and
row buffers, scale its counter changes by the shift, or record ops for ``ops.csv``
(``iterations.csv`` marks it ``reused``). ``record_ops`` turns reuse off, and so does a component
that cannot skip spans (``reuse_safe`` False: DRAM at the command level).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sim.driver.blame import Blame, Cause
from sim.serving.scheduler import Batch, BatchEntry
from sim.stats.kinds import Counter


def significant(x: int, bits: int) -> int:
    """``x`` with all but its ``bits`` leading binary digits cleared: exact below 2^bits, within a
    relative 2^(1 - bits) above (a bucket that widens with the value)."""
    shift = x.bit_length() - bits
    return x if shift <= 0 else (x >> shift) << shift


def batch_sums(batch: Batch) -> tuple[int, int, int, int, int, int, int]:
    """The sums an iteration's cost follows from (see module): tokens, decode entries, decode
    context, prefill chunks, prefill cached context, prefill attention pairs, emitting entries."""
    decodes = decode_context = emitting = tokens = 0
    chunks = prefill_past = prefill_pairs = 0
    for e in batch.entries:
        emitting += e.emits_token
        tokens += e.tokens
        past = e.context_tokens - e.tokens
        if e.phase == "decode":
            decodes += 1
            decode_context += past
        else:
            chunks += 1
            prefill_past += past
            prefill_pairs += e.tokens * (past + (e.tokens + 1) // 2)  # attention work of the chunk
    return tokens, decodes, decode_context, chunks, prefill_past, prefill_pairs, emitting


def shape_key(sums: tuple[int, ...], bits: int) -> tuple[int, ...]:
    """An iteration's shape: its :func:`batch_sums`, each kept to ``bits`` significant bits (the
    chunk count exactly)."""
    return tuple(x if i == 3 else significant(x, bits) for i, x in enumerate(sums))


@dataclass(frozen=True, slots=True)
class StoredIteration:
    """What the first full simulation of a shape did."""

    duration_ps: int
    device_step_ps: int  # its time on the chips, after the host's
    host_ps: int  # the host time it waited for (a replay takes its own)
    context: int  # its decode entries' cached context (tokens)
    pairs: int  # its prefill attention pairs
    kernel_ps: float  # its kernel-model time, when it has prefill chunks (see IterationReuse.shift_ps)
    blame: Blame  # shared by every replay of the shape; never changed after it is stored
    counters: tuple[float, ...]  # change of each tracked counter
    busy: tuple[int, ...]  # change of each tracked unit's busy time (ps)
    sums: tuple[int, ...] = ()  # its batch_sums (names the worst check's stored batch)


class IterationReuse:
    """The shapes seen so far and the error of the sampled re-simulations."""

    def __init__(
        self,
        counters: Sequence[Counter],
        units: Sequence[Any],
        bits: int,
        check_every: int,
        syncs: Sequence[Any] = (),
        prefill_bits: int | None = None,
        kernel_ps: Callable[[Sequence[BatchEntry]], float] | None = None,
        host_counter: Counter | None = None,
        host_cause: Cause | None = None,
        row_tiles: Sequence[int] = (),
    ) -> None:
        self.syncs = list(syncs)  # flush pending device counts into counters before a snapshot
        self.counters = list(counters)
        self.units = list(units)  # objects with a Timeline ``timeline`` (compute die, MAC units)
        self.bits = bits
        self.prefill_bits = bits if prefill_bits is None or kernel_ps is None else prefill_bits
        self.kernel_ps = kernel_ps  # kernel-model time of a batch (moves prefill replays)
        self.host_counter = host_counter  # the software's host time (ns), among ``counters``
        self.host_cause = host_cause  # the blame cause of that host time
        self.slopes: tuple[float, float] = (0.0, 0.0)  # ps per context token, per attention pair
        self.check_every = check_every
        # GEMM output tile rows of the kernel model (>1 only: 1 has no tile quantisation)
        self.row_tiles = tuple(sorted({t for t in row_tiles if t > 1}))
        self.shapes: dict[tuple[Any, ...], StoredIteration] = {}
        self.hits = 0
        self.sampled = 0
        self.max_rel_error = 0.0
        self._sum_rel_error = 0.0
        self.worst: dict[str, Any] | None = None  # the check with the largest error (see checked)

    def sync(self, account: bool = True) -> None:
        """Bring every device's counters up to now: pending counts, and time-driven energy
        (refresh) accounted (``account``) or, after a replay whose stored change already holds it,
        skipped."""
        for sync in self.syncs:
            sync(account)

    def snapshot(self) -> tuple[tuple[float, ...], tuple[int, ...]]:
        self.sync()
        return tuple(c.value for c in self.counters), tuple(u.timeline.busy_ps for u in self.units)

    def key(self, sums: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of an iteration with ``sums``: coarser when it has prefill chunks."""
        if sums[3] and self.kernel_ps is not None:
            # The kernel-model shift carries the time; the counters (bytes, energy) are replayed as
            # stored, so what moves them keeps its place in the key: the tokens (the GEMMs' rows and
            # KV writes) and the decodes riding along and their cached context (KV reads).
            b = self.prefill_bits
            return (sums[3], significant(sums[0], b), significant(sums[1], b), significant(sums[2], b))
        key = shape_key(sums, self.bits)
        if not self.row_tiles:
            return key
        # A decode replay is moved by its context only, but a GEMM's time steps up when its rows
        # (tokens; emitting entries for the LM head) pass a multiple of the tile rows (64 -> 65
        # decodes: +4% on gpu-hbm), and a bucket can hold both sides ([64, 65] at 6 bits). The tile
        # counts split exactly those buckets; one that straddles no tile edge keeps its iterations.
        return key + tuple(-(-sums[i] // t) for t in self.row_tiles for i in (0, 6))

    def lookup(self, key: tuple[Any, ...]) -> tuple[StoredIteration | None, bool]:
        """The stored iteration of ``key`` (None: first of its shape) and whether to replay it
        (False: simulate it in full, to store it or to check it)."""
        stored = self.shapes.get(key)
        if stored is None:
            return None, False
        self.hits += 1
        check = self.check_every > 0 and self.hits % self.check_every == 0
        return stored, not check

    def store(
        self,
        key: tuple[Any, ...],
        sums: tuple[int, ...],
        batch: Batch,
        before: tuple[tuple[float, ...], tuple[int, ...]],
        duration_ps: int,
        device_step_ps: int,
        host_ps: int,
        blame: Blame,
    ) -> None:
        counters, busy = self.snapshot()  # synced to the end of the iteration
        self.shapes[key] = StoredIteration(
            duration_ps,
            device_step_ps,
            host_ps,
            sums[2],
            sums[5],
            self._kernel(sums, batch),
            blame,
            tuple(a - b for a, b in zip(counters, before[0], strict=True)),
            tuple(a - b for a, b in zip(busy, before[1], strict=True)),
            tuple(sums),
        )

    def _kernel(self, sums: tuple[int, ...], batch: Batch) -> float:
        """Kernel-model time of ``batch`` when it has prefill chunks (0 otherwise: unused)."""
        return self.kernel_ps(batch.entries) if sums[3] and self.kernel_ps is not None else 0.0

    def shift_ps(self, stored: StoredIteration, sums: tuple[int, ...], batch: Batch) -> int:
        """How much longer an iteration with ``sums`` takes than its shape's stored one, first
        order within the bucket, so replays carry no bias from where in its bucket the stored
        iteration fell: with prefill chunks, the kernel model's time difference of the two
        batches; decode only, the decode context beyond the stored one at :attr:`slopes`."""
        if sums[3] and self.kernel_ps is not None:
            return round(self._kernel(sums, batch) - stored.kernel_ps)
        per_token, per_pair = self.slopes
        extra = per_token * (sums[2] - stored.context) + per_pair * (sums[5] - stored.pairs)
        return round(extra)

    def checked(
        self, stored: StoredIteration, sums: tuple[int, ...], batch: Batch, host_ps: int, device_ps: int
    ) -> None:
        """A hit simulated in full (``host_ps`` then ``device_ps`` long): how far its replay would
        have been from it, relative to its whole duration."""
        self.sampled += 1
        replayed = stored.device_step_ps + self.shift_ps(stored, sums, batch)
        total = host_ps + device_ps
        err = abs(replayed - device_ps) / total if total else 0.0
        if self.worst is None or err > self.max_rel_error:
            # what a run's largest error came from, for a benchmark to name (not in the summary)
            self.worst = {
                "hit": self.hits,
                "rel_error": err,
                "key": list(self.key(sums)),
                "sums": list(sums),
                "stored_sums": list(stored.sums),
                "stored_device_ps": stored.device_step_ps,
                "replayed_device_ps": replayed,
                "device_ps": device_ps,
                "host_ps": host_ps,
            }
        self.max_rel_error = max(self.max_rel_error, err)
        self._sum_rel_error += err

    def replay(self, stored: StoredIteration, host_ps: int, device_ps: int) -> Blame:
        """Apply a stored iteration's counter and busy-time changes (not its time), with this
        iteration's own host time; its blame: the stored one (shared) when nothing moved, else the
        device causes scaled to ``device_ps`` and the host's set to ``host_ps``."""
        for c, d in zip(self.counters, stored.counters, strict=True):
            if d:
                c.value += d
        for u, d in zip(self.units, stored.busy, strict=True):
            if d:
                u.timeline.busy_ps += d
        if self.host_counter is not None and host_ps != stored.host_ps:
            self.host_counter.value += (host_ps - stored.host_ps) / 1000  # ns
        if host_ps == stored.host_ps and device_ps == stored.device_step_ps:
            return stored.blame
        scale = device_ps / stored.device_step_ps if stored.device_step_ps else 1.0
        blame = Blame({c: ps * scale for c, ps in stored.blame.by_cause.items() if c != self.host_cause})
        # the software cause holds the host time and any kernel-launch gaps (device side): those
        # scale with the device causes, the host time is this iteration's own
        software = stored.blame.by_cause.get(self.host_cause, 0.0) if self.host_cause is not None else 0.0
        blame.add(self.host_cause, (software - stored.host_ps) * scale + host_ps)
        return blame

    def summary(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "shapes": len(self.shapes),
            "sampled": self.sampled,
            "max_rel_error": self.max_rel_error,
            "mean_rel_error": self._sum_rel_error / self.sampled if self.sampled else 0.0,
            "significant_bits": self.bits,
        }
