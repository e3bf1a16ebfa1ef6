"""Prefix caching on data-parallel replicas: one cache per replica, and the run's figures over all.

Why one cache per replica: a replica is a separate group of chips with its own KV memory, so the
blocks it cached are where its requests attend to them; another replica would have to fetch them
over the scale-out network, a tier memwall does not model. Each replica therefore has its own
:class:`~sim.serving.prefix_cache.PrefixCache`, tiers and pools (HBM, HBF *and* host memory), each
with ``prefix_cache.capacity`` per chip. Host memory is per replica too: a replica is typically one
server (8 GPUs, ``tp = 8``) and host DRAM hangs off that server's CPUs (vLLM's CPU offload and
LMCache's local CPU backend keep it per engine); a pool shared across servers is a distributed
store (Mooncake's), reached over RDMA, not this tier. A request hits only blocks its own replica
cached, which is why routing matters (the ``prefix_aware`` policy in :mod:`sim.serving.router`).

:func:`merged_summary` adds the replicas' figures into the run's ``prefix_cache`` section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SUMMED = (
    "lookups",
    "requests_with_hash_ids",
    "prompt_tokens",
    "cached_tokens",
    "full_blocks",
    "hit_blocks",
    "miss_blocks",
    "unissued_moves",
    "prefill_tokens_computed",
    "transfer_wait_s",
)
"""Counts of a replica's ``prefix_cache`` figures that add up over replicas (``transfer_wait_s``:
the replicas' waits for tier moves added, replica-seconds)."""


def merged_summary(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``prefix_cache`` section of a run on several replicas from each replica's section.

    Counts, blocks and bytes are sums over replicas; hit rates are recomputed from the sums (so
    they weigh replicas by their prompts); a tier's ``capacity_blocks`` is one replica's (all are
    alike) and ``peak_blocks`` the largest replica's; ``bytes_issued_per_chip`` adds each replica's
    bytes per chip (every replica has the same chips); ``flash`` gives, per flash tier, the
    replica whose tier wears out first (``replica`` names it).
    """
    known = [p for p in parts if p["block_tokens"]] or list(parts)
    first = known[0]
    out: dict[str, Any] = {
        "replicas": len(parts),
        "tiers": first["tiers"],
        "policy": first["policy"],
        "block_tokens": first["block_tokens"],
        "block_bytes_per_chip": first["block_bytes_per_chip"],
    }
    for key in SUMMED:
        out[key] = sum(p[key] for p in parts)
    out["token_hit_rate"] = out["cached_tokens"] / out["prompt_tokens"] if out["prompt_tokens"] else 0.0
    out["block_hit_rate"] = out["hit_blocks"] / out["full_blocks"] if out["full_blocks"] else 0.0
    by_tier: dict[str, dict[str, Any]] = {}
    for name in first["tiers"]:
        tiers = [p["by_tier"][name] for p in parts]
        merged = {
            k: sum(t[k] for t in tiers)
            for k in tiers[0]
            if k not in ("capacity_blocks", "ideal", "peak_blocks")
        }
        by_tier[name] = {
            "capacity_blocks": first["by_tier"][name]["capacity_blocks"],
            "ideal": first["by_tier"][name]["ideal"],
            **merged,
            "peak_blocks": max(t["peak_blocks"] for t in tiers),
        }
    out["by_tier"] = by_tier
    issued: dict[str, dict[str, int]] = {}
    for p in parts:
        for medium, rw in p["bytes_issued_per_chip"].items():
            acc = issued.setdefault(medium, {"read": 0, "written": 0})
            for k, v in rw.items():
                acc[k] = acc.get(k, 0) + v
    out["bytes_issued_per_chip"] = dict(sorted(issued.items()))
    flash: dict[str, Any] = {}
    for i, p in enumerate(parts):
        for name, f in p["flash"].items():
            if name not in flash or f["lifetime_days"] < flash[name]["lifetime_days"]:
                flash[name] = {"replica": i, **f}
    out["flash"] = flash
    return out
