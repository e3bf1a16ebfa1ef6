"""Block-level prefix caching over tiers of KV block pools (HBM, HBF, host memory).

Why: multi-turn chat and shared system prompts repeat the head of earlier prompts, so the KV of
those tokens can be kept and reused instead of prefilled again (vLLM's automatic prefix caching,
SGLang's RadixAttention, Mooncake's KVCache-centric store). Where the kept blocks live decides what
a hit costs: nothing on the chip's KV memory, a read over a link from host memory, a read from flash
(and, for every block put there, flash writes that wear it out).

This module is the bookkeeping only (no time, no SimPy, no hardware): which blocks are cached in
which tier, what a request finds, what moves between tiers. The token driver turns the moves into
reads and writes on the memories' timing models (:mod:`sim.driver.kv_tiers`).

Rules (what the tests' independent models reproduce):

* **Keys.** A request's prompt is cut into blocks of ``request.prefix_block_tokens`` tokens, block
  ``i`` named by ``request.prefix_hash_ids[i]`` (the Mooncake traces' ``hash_ids``, 512-token
  blocks). A block is reusable only with all blocks before it, so a cached block is keyed by its
  whole chain of ids (a radix trie: node = (parent node, hash id)). Only *full* blocks
  (``(i + 1) * B <= prompt_tokens``) are cached, as in vLLM. Traces without hash ids never hit,
  unless ``shared_prefix_tokens`` gives each of their requests the same leading blocks (a common
  system prompt, :func:`with_shared_prefix`).
* **Lookup** happens when a request is first admitted by the batching policy (not after a
  preemption, whose recomputation ignores the cache). Its hits are its *leading* full blocks found
  in any tier, up to the first miss. Cached tokens ``C = min(hits x B, prompt - 1)``: at least one
  prompt token is always computed so that the prefill produces the first output token (vLLM
  recomputes the last token of a fully cached prompt the same way). The prefill then runs over
  prompt tokens ``C .. prompt`` with ``C`` tokens of context already in KV.
* **Insertion**: a request's full blocks not cached anywhere are inserted into the top tier at the
  end of the iteration that completes its prefill (so a request that arrives before then does not
  see them). Blocks are inserted, and hits touched, last block first, so a prefix's head is the
  most recently used of its blocks and eviction takes a prefix's tail before its head (vLLM v1
  frees a request's blocks in reverse order for the same reason).
* **Tiers** are ordered, top first. A bounded tier over capacity evicts its policy's victim into the
  next tier (demotion); the last tier drops it. A hit in a lower tier moves the block back into the
  top tier (promotion), which may demote others. Every hit block must reach the chip's KV memory:
  a hit in a tier whose medium is not the KV memory reads it from there.
* **Capacity** per tier is in bytes per chip (the KV of one block on one chip of the tensor-parallel
  group), or unbounded (an idealisation for studies and tests).
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sim.core.errors import ConfigError
from sim.core.params import ParamSet, non_negative, param, positive
from sim.core.registry import lookup, names, register
from sim.core.units import BANDWIDTH, COUNT, TIME, UnitError, parse_size
from sim.requests.readers import MOONCAKE_BLOCK_TOKENS
from sim.requests.record import Request

HOST = "host"
"""The tier name of host memory, reached over the host link (PCIe)."""

UNBOUNDED = "unbounded"


# -- eviction policies ------------------------------------------------------------------------------


class EvictionPolicy:
    """The order in which one tier gives up its blocks: ``insert`` a key, ``touch`` it on a hit,
    ``victim`` names the next to evict (without removing it), ``remove`` forgets one."""

    def __init__(self) -> None:
        self._order: OrderedDict[int, None] = OrderedDict()

    def __contains__(self, key: int) -> bool:
        return key in self._order

    def __len__(self) -> int:
        return len(self._order)

    def insert(self, key: int) -> None:
        self._order[key] = None

    def touch(self, key: int) -> None:
        raise NotImplementedError

    def remove(self, key: int) -> None:
        del self._order[key]

    def victim(self) -> int:
        return next(iter(self._order))


@register("kv_eviction", "lru")
class LRU(EvictionPolicy):
    """Least recently used: a hit moves the block to the most-recent end; the oldest goes first."""

    def touch(self, key: int) -> None:
        self._order.move_to_end(key)


@register("kv_eviction", "fifo")
class FIFO(EvictionPolicy):
    """First in, first out: hits do not reorder; the block inserted longest ago goes first."""

    def touch(self, key: int) -> None:
        pass


def _known_policy(name: str) -> str | None:
    known = names("kv_eviction")
    return None if name in known else f"one of: {', '.join(known)}"


# -- parameters ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefixCacheParams(ParamSet):
    """Prefix caching and its KV tiers (``--set prefix_cache.KEY=VALUE``); off by default."""

    enabled: bool = param(False, bool, "reuse cached prefix blocks (needs a trace with prefix hash ids)")
    tiers: str = param(
        "hbm",
        str,
        "KV block pools, top first, comma-separated: memories of the chip (e.g. hbm, hbf) or 'host' "
        "(host DRAM over the host link)",
    )
    capacity: str = param(
        UNBOUNDED,
        str,
        "each tier's capacity per chip, comma-separated in the order of tiers: a size ('8GiB') or "
        "'unbounded' (one value applies to every tier)",
    )
    policy: str = param(
        "lru", str, "registered eviction policy of every tier (kv_eviction: lru, fifo)", check=_known_policy
    )
    host_bandwidth: float = param(
        "63GB/s",
        BANDWIDTH,
        "host link bandwidth per direction per chip; default: PCIe Gen5 x16, 32 GT/s x 16 lanes x "
        "128b/130b / 8 = 63.0 GB/s (PCI-SIG PCIe 5.0 Base Specification)",
        check=positive,
    )
    shared_prefix_tokens: int = param(
        0,
        COUNT,
        "give every request that carries no prefix hash ids the same first N prompt tokens (a common "
        "system prompt; ASSUMPTION for traces without hash ids: Azure, Splitwise, --load); 0: none",
        check=non_negative,
    )
    block_tokens: int = param(
        MOONCAKE_BLOCK_TOKENS,
        COUNT,
        "tokens per block of the ids shared_prefix_tokens gives (the Mooncake traces' 512)",
        check=positive,
    )
    host_latency: int = param(
        "2us",
        TIME,
        "start-up of one transfer over the host link (DMA set-up and PCIe round trip); default: "
        "ASSUMPTION (order of a cudaMemcpyAsync's fixed cost)",
        check=positive,
    )

    def validate(self) -> None:
        tiers = self.tier_names()
        if not tiers or any(not t for t in tiers):
            raise ConfigError(f"expected comma-separated tier names, found {self.tiers!r}", where="tiers")
        if len(set(tiers)) != len(tiers):
            raise ConfigError(f"expected each tier once, found {self.tiers!r}", where="tiers")
        caps = [c.strip() for c in self.capacity.split(",")]
        if len(caps) not in (1, len(tiers)):
            raise ConfigError(
                f"expected 1 or {len(tiers)} capacities (one per tier of {self.tiers!r}), "
                f"found {len(caps)} in {self.capacity!r}",
                where="capacity",
            )
        for c in caps:
            self._capacity(c)

    def tier_names(self) -> list[str]:
        return [t.strip() for t in self.tiers.split(",")]

    def capacities(self) -> list[int | None]:
        """Bytes per chip of each tier, None when unbounded."""
        caps = [c.strip() for c in self.capacity.split(",")]
        if len(caps) == 1:
            caps = caps * len(self.tier_names())
        return [self._capacity(c) for c in caps]

    @staticmethod
    def _capacity(text: str) -> int | None:
        if text == UNBOUNDED:
            return None
        try:
            value = parse_size(text)
        except UnitError:
            value = -1
        if value <= 0:
            raise ConfigError(
                f"expected a size > 0 (e.g. '8GiB') or 'unbounded', found {text!r}", where="capacity"
            )
        return value


# -- the cache --------------------------------------------------------------------------------------


@dataclass(slots=True)
class TierStats:
    """What happened in one tier, in blocks and bytes (per chip)."""

    hits: int = 0  # blocks found here by a lookup
    inserted: int = 0  # blocks a finished prefill put here
    promoted_in: int = 0  # blocks moved here from a lower tier on a hit
    demoted_in: int = 0  # blocks evicted into here from the tier above
    evictions: int = 0  # blocks evicted out of here (demoted below or dropped)
    dropped: int = 0  # evicted blocks no tier below kept
    bytes_read: int = 0  # bytes read from this tier's medium (hits served, demotions out)
    bytes_written: int = 0  # bytes written to this tier's medium (insertions, promotions, demotions in)
    peak_blocks: int = 0


@dataclass(frozen=True, slots=True)
class Move:
    """Bytes (per chip) to copy between two media: a tier's medium or the KV memory."""

    source: str
    dest: str
    nbytes: int
    kind: str  # "hit", "insert", "promote", "demote"


@dataclass
class Tier:
    name: str  # also its medium: a chip memory or HOST
    capacity_blocks: int | None
    order: EvictionPolicy
    stats: TierStats = field(default_factory=TierStats)


@dataclass(slots=True)
class LookupRecord:
    """One request's lookup: when, how many leading blocks hit in each tier, tokens not prefilled."""

    request: int
    time_ps: int
    hit_blocks: tuple[int, ...]  # per tier
    full_blocks: int
    cached_tokens: int


class PrefixCache:
    """The tiers' contents and the traffic they cause; see the module docstring for the rules.

    ``kv_memory`` is the chip memory the running requests' KV lives in; ``bytes_per_token`` the KV
    bytes of one token on one chip. Moves accumulate in :attr:`pending` until the driver takes them.
    """

    supports: ClassVar[str] = "prefix caching"

    def __init__(self, params: PrefixCacheParams, kv_memory: str, bytes_per_token: float) -> None:
        self.params = params
        self.kv_memory = kv_memory
        self.bytes_per_token = bytes_per_token
        cls = lookup("kv_eviction", params.policy)
        self.tiers: list[Tier] = []
        self._block_tokens = 0  # fixed by the first request with hash ids
        for name, cap in zip(params.tier_names(), params.capacities(), strict=True):
            self.tiers.append(Tier(name, cap, cls()))  # capacity in bytes until the block size is known
        self._caps_bytes = params.capacities()
        self._nodes: dict[tuple[int, int], int] = {}  # (parent node, hash id) -> node; root is 0
        self.where: dict[int, int] = {}  # node -> tier index holding it
        self.pending: list[Move] = []
        self.lookups: list[LookupRecord] = []
        self.events: list[tuple[str, int, int]] = []  # ("lookup" | "insert", request id, ps), in order
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.full_blocks = 0
        self.requests_with_ids = 0

    # -- sizes --------------------------------------------------------------------------------------
    def block_bytes(self, block_tokens: int) -> int:
        """Bytes of one block's KV on one chip."""
        return round(block_tokens * self.bytes_per_token)

    def _fix_block(self, block_tokens: int, request: Request) -> None:
        if self._block_tokens == 0:
            self._block_tokens = block_tokens
            nbytes = self.block_bytes(block_tokens)
            for tier, cap in zip(self.tiers, self._caps_bytes, strict=True):
                if cap is not None:
                    tier.capacity_blocks = cap // nbytes
                    if tier.capacity_blocks < 1:
                        raise ConfigError(
                            f"tier {tier.name!r} holds {cap} B per chip, less than one {block_tokens}-token "
                            f"block ({nbytes} B per chip)",
                            where="--set prefix_cache.capacity",
                        )
        elif block_tokens != self._block_tokens:
            raise ConfigError(
                f"expected every request's prefix blocks to be {self._block_tokens} tokens, found "
                f"{block_tokens}",
                where=f"request {request.id}",
            )

    def check_capacity(self, block_tokens: int, where: str) -> None:
        """Refuse, before the run, a bounded tier smaller than one ``block_tokens``-token block (the
        trace's block size, or ``block_tokens`` when it has no hash ids): it could never hold one."""
        nbytes = self.block_bytes(block_tokens)
        for tier, cap in zip(self.tiers, self._caps_bytes, strict=True):
            if cap is not None and cap < nbytes:
                raise ConfigError(
                    f"tier {tier.name!r} holds {cap:,} B per chip, less than one {block_tokens}-token "
                    f"block ({nbytes:,} B per chip)",
                    where=f"{where}.capacity",
                )

    @property
    def block_tokens(self) -> int:
        return self._block_tokens

    def _keys(self, request: Request, create: bool) -> Iterator[int]:
        """The trie nodes of the request's full prompt blocks, first to last (stops at the first
        unknown node unless ``create``)."""
        b = request.prefix_block_tokens
        parent = 0
        for i, h in enumerate(request.prefix_hash_ids):
            if (i + 1) * b > request.prompt_tokens:
                return
            node = self._nodes.get((parent, h))
            if node is None:
                if not create:
                    return
                node = self._nodes[(parent, h)] = len(self._nodes) + 1
            yield node
            parent = node

    def held_blocks(self, request: Request) -> int:
        """How many leading full blocks of ``request`` some tier holds now. A read-only probe (no
        statistics, no reordering, no trie nodes made): a cache-aware router asks it of every replica."""
        n = 0
        for node in self._keys(request, create=False):
            if node not in self.where:
                break
            n += 1
        return n

    # -- the two events -----------------------------------------------------------------------------
    def lookup(self, request: Request, now: int) -> int:
        """A request is admitted: its leading cached blocks are hits (promoted to the top tier when
        found lower); returns the prompt tokens it need not prefill."""
        self.prompt_tokens += request.prompt_tokens
        if not request.prefix_hash_ids:
            return 0
        self.events.append(("lookup", request.id, now))
        self.requests_with_ids += 1
        self._fix_block(request.prefix_block_tokens, request)
        b = request.prefix_block_tokens
        full = min(len(request.prefix_hash_ids), request.prompt_tokens // b)
        self.full_blocks += full
        hits: list[tuple[int, int]] = []  # (node, tier)
        for node in self._keys(request, create=False):
            t = self.where.get(node)
            if t is None:
                break
            hits.append((node, t))
        per_tier = [0] * len(self.tiers)
        nbytes = self.block_bytes(b)
        for node, found in reversed(hits):  # last block first: the head ends most recent
            tier = self.tiers[found]
            per_tier[found] += 1
            tier.stats.hits += 1
            t = self.where.get(node)  # where it is now: a promotion of this request may have moved it
            if t is None:  # evicted from the last tier by this request's own promotions (tiny tiers)
                continue
            tier = self.tiers[t]
            if tier.name != self.kv_memory:  # the block must reach the KV memory to be attended to
                tier.stats.bytes_read += nbytes
                self.pending.append(Move(tier.name, self.kv_memory, nbytes, "hit"))
            if t == 0:
                tier.order.touch(node)
                continue
            tier.order.remove(node)  # promotion: out of tier t, into the top tier
            del self.where[node]
            top = self.tiers[0]
            top.stats.promoted_in += 1
            if top.name != self.kv_memory:
                top.stats.bytes_written += nbytes
                self.pending.append(Move(self.kv_memory, top.name, nbytes, "promote"))
            self._put(0, node, nbytes)
        cached = min(len(hits) * b, request.prompt_tokens - 1)
        self.cached_tokens += cached
        self.lookups.append(LookupRecord(request.id, now, tuple(per_tier), full, cached))
        return cached

    def insert(self, request: Request, now: int) -> None:
        """A request's prefill is complete: its full blocks not cached anywhere go into the top tier."""
        if not request.prefix_hash_ids:
            return
        self.events.append(("insert", request.id, now))
        nbytes = self.block_bytes(request.prefix_block_tokens)
        top = self.tiers[0]
        for node in reversed(list(self._keys(request, create=True))):
            if node in self.where:
                continue
            top.stats.inserted += 1
            if top.name != self.kv_memory:
                top.stats.bytes_written += nbytes
                self.pending.append(Move(self.kv_memory, top.name, nbytes, "insert"))
            self._put(0, node, nbytes)

    def _put(self, t: int, node: int, nbytes: int) -> None:
        """Put ``node`` into tier ``t`` as its newest block; evict into the tiers below while over."""
        tier = self.tiers[t]
        tier.order.insert(node)
        self.where[node] = t
        cap = tier.capacity_blocks
        while cap is not None and len(tier.order) > cap:
            victim = tier.order.victim()
            tier.order.remove(victim)
            del self.where[victim]
            tier.stats.evictions += 1
            if t + 1 < len(self.tiers):
                below = self.tiers[t + 1]
                tier.stats.bytes_read += nbytes
                below.stats.demoted_in += 1
                below.stats.bytes_written += nbytes
                self.pending.append(Move(tier.name, below.name, nbytes, "demote"))
                self._put(t + 1, victim, nbytes)
            else:
                tier.stats.dropped += 1
        tier.stats.peak_blocks = max(tier.stats.peak_blocks, len(tier.order))

    def take_moves(self) -> list[Move]:
        """The moves since the last call (the driver issues them before the next iteration)."""
        moves, self.pending = self.pending, []
        return moves

    def summary(self) -> dict[str, Any]:
        """Hit rate and per-tier counts (bytes per chip)."""
        hit_blocks = sum(t.stats.hits for t in self.tiers)
        return {
            "tiers": [t.name for t in self.tiers],
            "policy": self.params.policy,
            "block_tokens": self._block_tokens,
            "block_bytes_per_chip": self.block_bytes(self._block_tokens) if self._block_tokens else 0,
            "lookups": len(self.lookups),
            "requests_with_hash_ids": self.requests_with_ids,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "token_hit_rate": self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0,
            "full_blocks": self.full_blocks,
            "hit_blocks": hit_blocks,
            "miss_blocks": self.full_blocks - hit_blocks,
            "unissued_moves": len(self.pending),  # caused by the last iteration, after which nothing ran
            "block_hit_rate": hit_blocks / self.full_blocks if self.full_blocks else 0.0,
            "by_tier": {
                t.name: {
                    "capacity_blocks": t.capacity_blocks,
                    "ideal": t.capacity_blocks is None,  # unbounded: an idealisation, takes no memory
                    "blocks": len(t.order),
                    **dataclasses.asdict(t.stats),
                }
                for t in self.tiers
            },
        }


def plan_prefix_cache(
    params: PrefixCacheParams, plan: Any, where: str
) -> tuple[PrefixCache, int, dict[str, int]]:
    """The cache of a run on ``plan`` (a :class:`~sim.serving.mapping.Plan`): the cache, the KV
    tokens left for running requests, and the bytes per chip each memory leaves free for a tier.

    A bounded tier on the KV memory is carved out of the running requests' KV capacity (the pool and
    the requests share that memory); a bounded tier on another memory of the chip must fit in what
    the mapping leaves free there. Unbounded tiers are an idealisation and take nothing. The KV
    memory, when a tier, must be the top one: hits are read into it, so nothing sits above it.
    """
    tiers = params.tier_names()
    for name in tiers:
        if name != HOST and name not in plan.total:
            known = ", ".join([*plan.total, HOST])
            raise ConfigError(
                f"unknown tier {name!r}; expected a memory of the chip or {HOST!r} ({known})",
                where=f"{where}.tiers",
            )
    if plan.kv_memory in tiers and tiers[0] != plan.kv_memory:
        raise ConfigError(
            f"the KV memory {plan.kv_memory!r} must be the top tier (first in {params.tiers!r}): hits "
            "are read into it, so a tier above it would demote into it and promote out of it",
            where=f"{where}.tiers",
        )
    free = {name: plan.total[name] - plan.used.get(name, 0) for name in plan.total}
    kv_tokens = plan.kv_capacity_tokens
    for name, cap in zip(tiers, params.capacities(), strict=True):
        if cap is None or name == HOST:
            continue
        if name == plan.kv_memory:
            kv_tokens -= math.ceil(cap / plan.kv_bytes_per_token_per_chip)
            if kv_tokens < 1:
                raise ConfigError(
                    f"a {cap:,} B tier on {name!r} leaves no KV capacity for running requests "
                    f"({plan.kv_capacity_tokens:,} tokens = "
                    f"{plan.kv_capacity_tokens * plan.kv_bytes_per_token_per_chip:,.0f} B per chip)",
                    where=f"{where}.capacity",
                )
        elif cap > free[name]:
            raise ConfigError(
                f"a {cap:,} B tier on {name!r} does not fit: the mapping leaves {free[name]:,} B per "
                "chip free",
                where=f"{where}.capacity",
            )
    cache = PrefixCache(params, plan.kv_memory, plan.kv_bytes_per_token_per_chip)
    return cache, kv_tokens, free


def attach(policy: Any, cache: PrefixCache, where: str) -> None:
    """Give a batching policy its prefix cache (policies declare ``prefix_caching``)."""
    if not getattr(type(policy), "prefix_caching", False):
        raise ConfigError(
            f"batching policy {getattr(policy, 'registered_name', type(policy).__name__)!r} does not "
            "consult a prefix cache; use batching.policy=continuous",
            where=f"{where}.enabled",
        )
    policy.prefix_cache = cache


def summary_line(s: dict[str, Any]) -> str:
    """One line of the run table: hit rate, then per tier hits, evictions and bytes moved, then the
    projected life of a flash tier."""
    parts = [
        f"{100 * s['token_hit_rate']:.1f}% of prompt tokens cached ({s['cached_tokens']:,} of "
        f"{s['prompt_tokens']:,}; {s['hit_blocks']:,} of {s['full_blocks']:,} blocks hit)"
    ]
    for name, t in s["by_tier"].items():
        moved = (t["bytes_read"] + t["bytes_written"]) / 1e9
        if t.get("ideal"):
            ideal = "its log spans the free flash" if name in s.get("flash", {}) else "takes no memory"
            name = f"{name} (unbounded, ideal: {ideal})"
        parts.append(
            f"{name}: {t['hits']:,} hits, {t['evictions']:,} evictions, {moved:.3g} GB moved per chip"
        )
    if s.get("transfer_wait_s"):
        parts.append(f"waited {1e3 * s['transfer_wait_s']:.3f} ms for tier transfers")
    for name, f in s.get("flash", {}).items():
        region = f"{f['region_bytes_per_stack'] / 2**30:.3g} GiB per stack"
        if f["region_rounded_up"]:
            region += (
                f", rounded up to whole erase stripes from {f['configured_bytes_per_stack'] / 2**30:.3g} GiB"
                f" ({f['lifetime_days_configured_only']:.3g} days if the log wrapped there)"
            )
        parts.append(
            f"{name} tier wears {f['max_pe_cycles']} P/E cycles max, life {f['lifetime_days']:.3g} days "
            f"at this write rate ({f['lifetime_days_region_only']:.3g} days on its region alone: {region})"
        )
    return "; ".join(parts)


def trace_block_tokens(
    params: PrefixCacheParams, requests: Sequence[Request], given: Iterable[str], where: str
) -> int:
    """The block size the cache will use on ``requests``: the trace's when it carries hash ids, else
    ``params.block_tokens``. Refuses the settings the trace makes meaningless (``given``: the keys
    set): ``shared_prefix_tokens`` and ``block_tokens`` only apply to requests without hash ids, and
    ``block_tokens`` only sizes the ids ``shared_prefix_tokens`` gives."""
    carrier = next((r for r in requests if r.prefix_hash_ids), None)
    without = any(not r.prefix_hash_ids for r in requests)
    for key in ("shared_prefix_tokens", "block_tokens"):
        if key in given and not without:
            raise ConfigError(
                "every request of this trace carries prefix hash ids, which decide its blocks, so this "
                "setting does nothing; drop it",
                where=f"{where}.{key}",
            )
    if "block_tokens" in given and not params.shared_prefix_tokens:
        raise ConfigError(
            "block_tokens sizes the blocks shared_prefix_tokens gives; without it this does nothing",
            where=f"{where}.block_tokens",
        )
    return carrier.prefix_block_tokens if carrier is not None else params.block_tokens


def with_shared_prefix(requests: Iterable[Request], tokens: int, block_tokens: int) -> Iterator[Request]:
    """``requests`` with prefix hash ids where they have none: the same ids for the first ``tokens``
    prompt tokens of every request (whole blocks), then ids of the request's own (never shared)."""
    shared = tokens // block_tokens
    for r in requests:
        if r.prefix_hash_ids:
            yield r
            continue
        n = -(-r.prompt_tokens // block_tokens)
        ids = tuple(i if i < shared else -(r.id + 1) for i in range(n))  # diverges after the shared part
        yield dataclasses.replace(r, prefix_hash_ids=ids, prefix_block_tokens=block_tokens)
