"""How big a topology is, known before it is built: generators and files beyond the documented
limits (:mod:`sim.core.limits`) are refused instead of exhausting memory or time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from sim.core.errors import ConfigError
from sim.core.limits import MAX_CHIPS, MAX_ROUTERS
from sim.core.textfile import brief

MAX_LINKS = 16 * MAX_ROUTERS
"""Links of a generated topology (a fully connected network grows as k^2)."""


# -- sizes, checked before anything is built ------------------------------------------------------
def _capped_pow(base: int, exp: int, cap: int) -> int:
    """``base ** exp``, or ``cap + 1`` as soon as it passes ``cap`` (never a huge power)."""
    if exp <= 0:
        return 1
    if base <= 1:
        return base
    out = 1
    for _ in range(exp):
        out *= base
        if out > cap:
            return cap + 1
    return out


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def topology_size(table: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """(routers, terminals, links) that a generator table (``kind`` plus its arguments) would build,
    computed without building it; each is capped just past its limit. None when the kind is not a
    built-in generator or an argument is not a plain whole number (the generator reports those)."""
    cap = max(MAX_ROUTERS, MAX_CHIPS, MAX_LINKS)
    kind = table.get("kind")
    get = table.get
    if kind in ("mesh", "torus", "ring"):
        k = get("k")
        if kind != "ring" and isinstance(k, list):
            dims = [_whole(x) for x in k]
            if not dims or any(d is None or d < 1 for d in dims):
                return None
            routers = 1
            for d in dims:
                routers = min(routers * d, cap + 1)  # type: ignore[operator]
            n = len(dims)
        else:
            k = _whole(k)
            n = 1 if kind == "ring" else _whole(get("n", 2))
            if k is None or n is None or k < 1 or n < 1:
                return None
            routers = _capped_pow(k, n, cap)
        p = _whole(get("p", 1))
        if p is None or p < 1:
            return None
        return routers, min(routers * p, cap + 1), min(routers * n, cap + 1)
    if kind == "fully_connected":
        k, p = _whole(get("k")), _whole(get("p", 1))
        if k is None or p is None or k < 1 or p < 1:
            return None
        return k, k * p, k * (k - 1) // 2
    if kind == "tree":
        radix, levels = _whole(get("radix")), _whole(get("levels"))
        if radix is None or levels is None or radix < 1 or levels < 1:
            return None
        leaves = _capped_pow(radix, levels - 1, cap)
        routers = min(sum(_capped_pow(radix, lv, cap) for lv in range(min(levels, 64))), cap + 1)
        return routers, min(leaves * radix, cap + 1), routers
    if kind == "fat_tree":
        k, levels = _whole(get("k")), _whole(get("levels", 3))
        if k is None or levels is None or k < 2 or levels < 1:
            return None
        h = k // 2
        terminals = min(2 * _capped_pow(h, levels, cap), cap + 1)
        routers = min((2 * levels - 1) * _capped_pow(h, levels - 1, cap), cap + 1)
        return routers, terminals, min(2 * levels * _capped_pow(h, levels, cap), cap + 1)
    if kind == "dragonfly":
        p, a, h = _whole(get("p")), _whole(get("a")), _whole(get("h"))
        g = _whole(get("g")) if get("g") is not None else (a * h + 1 if a and h else None)
        if None in (p, a, h, g) or min(p, a, h, g) < 1:  # type: ignore[type-var]
            return None
        routers = a * g  # type: ignore[operator]
        return routers, routers * p, routers * (a + h)  # type: ignore[operator]
    return None


def check_topology_size(table: Mapping[str, Any], where: str = "topology") -> None:
    """Refuse a generator table whose network exceeds :data:`~sim.core.limits.MAX_ROUTERS` routers,
    :data:`~sim.core.limits.MAX_CHIPS` terminals or :data:`MAX_LINKS` links, before it is built."""
    size = topology_size(table)
    if size is None:
        return
    limits = ((MAX_ROUTERS, "routers", "MAX_ROUTERS"), (MAX_CHIPS, "terminals", "MAX_CHIPS"))
    limits += ((MAX_LINKS, "links", "MAX_LINKS"),)
    args = ", ".join(f"{k}={brief(v)}" for k, v in table.items() if k != "kind")
    for count, (limit, what, name) in zip(size, limits, strict=True):
        if count > limit:
            found = (
                f"{count:,}" if count <= max(MAX_ROUTERS, MAX_CHIPS, MAX_LINKS) else f"more than {limit:,}"
            )
            raise ConfigError(
                f"expected a network of at most {limit:,} {what} ({name}), found {found} "
                f"({table.get('kind')} with {args})",
                where=where,
            )


def check_network(graph: nx.Graph, where: str = "topology") -> None:
    """Refuse a built topology beyond the router and terminal limits (one loaded from a file)."""
    routers, terminals = graph.number_of_nodes(), len(graph.graph.get("terminals", ()))
    if routers > MAX_ROUTERS:
        raise ConfigError(
            f"expected at most {MAX_ROUTERS:,} routers (MAX_ROUTERS), found {routers:,}", where=where
        )
    if terminals > MAX_CHIPS:
        raise ConfigError(
            f"expected at most {MAX_CHIPS:,} terminals (MAX_CHIPS), found {terminals:,}", where=where
        )
