"""Topology generators, registered under kind ``topology``; each returns a ``networkx.Graph``.

The graph contract they follow is described in :mod:`sim.topology`. Every generator checks its
arguments and raises :class:`~sim.core.errors.ConfigError` located at the argument name (``k``,
``links[3].b``), which the TOML loader prefixes with the file and table.

* ``mesh(k, n=None, p=1)`` / ``torus(k, n=None, p=1)``: k-ary n-cube; ``k`` may be a list of per-
  dimension radices (``[4, 8]``), ``n`` defaults to 2 (or ``len(k)``). Node id =
  ``sum(coords[i] * prod(k[:i]))``: dimension 0 varies fastest.
* ``ring(k, p=1)``: a 1-D torus.
* ``fully_connected(k, p=1)``: every pair of the k routers linked.
* ``tree(radix, levels)``: a complete ``radix``-ary tree of switches, ``radix`` terminals per leaf.
* ``fat_tree(k, levels=3)``: the folded Clos of k-port switches of Al-Fares et al. (SIGCOMM 2008),
  generalised to any number of levels.
* ``dragonfly(p, a, h, g=None)``: Kim et al. (ISCA 2008).
* ``explicit(nodes, links, terminals=None)``: a graph given link by link.

Every generator takes ``latency=1`` (cycles) and ``width=1`` (flits per cycle) for all its links;
``p`` is terminals per router in the direct networks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from sim.core.errors import ConfigError
from sim.core.registry import register
from sim.topology.graph import id_to_coords
from sim.topology.validate import is_int, key_path, require_int, require_node

ARRANGEMENTS = ("absolute", "palmtree")


# -- building blocks --------------------------------------------------------------------------------
def _graph(kind: str, params: dict[str, Any], terminals: list[int], **attrs: Any) -> nx.Graph:
    return nx.Graph(kind=kind, params=params, terminals=terminals, **attrs)


def _per_router(routers: int, p: int) -> list[int]:
    """Terminal list of a direct network: ``p`` terminals on each router, terminal t on router t // p."""
    return [r for r in range(routers) for _ in range(p)]


def _link(G: nx.Graph, u: int, v: int, latency: int, width: int, **attrs: Any) -> None:
    if u == v or G.has_edge(u, v):
        raise RuntimeError(f"generator bug: link {u}-{v} is a self-loop or duplicate")
    G.add_edge(u, v, latency=latency, width=width, **attrs)


def _link_args(latency: Any, width: Any, prefix: str = "") -> tuple[int, int]:
    """Checked (latency, width); errors are located at ``{prefix}latency`` / ``{prefix}width``."""
    return (
        require_int(latency, minimum=1, where=f"{prefix}latency"),
        require_int(width, minimum=1, where=f"{prefix}width"),
    )


def _shape(k: Any, n: Any) -> tuple[int, ...]:
    """Per-dimension radices from ``k`` (an int, or a list of ints) and ``n``."""
    if is_int(k):
        n = 2 if n is None else require_int(n, minimum=1, where="n")
        return (require_int(k, minimum=2, where="k"),) * n
    if not isinstance(k, Sequence) or isinstance(k, str) or not k:
        raise ConfigError(f"expected an integer >= 2 or a list of them, found {k!r}", where="k")
    shape = tuple(require_int(ki, minimum=2, where=f"k[{i}]") for i, ki in enumerate(k))
    if n is not None and n != len(shape):
        raise ConfigError(f"expected n = len(k) = {len(shape)} (or n omitted), found {n!r}", where="n")
    return shape


def _cube(
    kind: str, shape: tuple[int, ...], wrap: bool, p: Any, latency: Any, width: Any, **params: Any
) -> nx.Graph:
    """k-ary n-cube: mesh (``wrap=False``) or torus; a radix-2 dimension never gets a wrap link."""
    p = require_int(p, minimum=1, where="p")
    latency, width = _link_args(latency, width)
    n_nodes = math.prod(shape)
    G = _graph(
        kind,
        {**params, "p": p, "latency": latency, "width": width},
        _per_router(n_nodes, p),
        shape=shape,
    )
    for node in range(n_nodes):
        G.add_node(node, coords=id_to_coords(node, shape), role="router")
    for node, coords in G.nodes(data="coords"):
        stride = 1
        for dim, k in enumerate(shape):
            if coords[dim] + 1 < k:
                _link(G, node, node + stride, latency, width, dim=dim, wrap=False)
            elif wrap and k > 2:
                _link(G, node, node - (k - 1) * stride, latency, width, dim=dim, wrap=True)
            stride *= k
    return G


# -- direct networks --------------------------------------------------------------------------------
@register("topology", "mesh")
def mesh(k: Any, n: Any = None, *, p: Any = 1, latency: Any = 1, width: Any = 1) -> nx.Graph:
    """k-ary n-cube mesh: k^n routers, n k^(n-1) (k-1) links; ``k`` may list per-dimension radices."""
    shape = _shape(k, n)
    return _cube("mesh", shape, False, p, latency, width, k=_plain(k), n=len(shape))


@register("topology", "torus")
def torus(k: Any, n: Any = None, *, p: Any = 1, latency: Any = 1, width: Any = 1) -> nx.Graph:
    """k-ary n-cube torus: k^n routers, n k^n links for k > 2; wrap links carry ``wrap=True``.

    A dimension of radix 2 has no separate wrap link: its +1 and -1 neighbours are the same router,
    so it gets the single mesh link (``wrap=False``) and no dateline is needed on it. A 2-ary n-cube
    torus is therefore the hypercube, the same graph as the 2-ary mesh.
    """
    shape = _shape(k, n)
    return _cube("torus", shape, True, p, latency, width, k=_plain(k), n=len(shape))


@register("topology", "ring")
def ring(k: Any, *, p: Any = 1, latency: Any = 1, width: Any = 1) -> nx.Graph:
    """Ring of k routers (a 1-D torus, ``dim=0``): k links for k > 2, the link k-1 -- 0 has ``wrap``."""
    shape = (require_int(k, minimum=2, where="k"),)
    return _cube("ring", shape, True, p, latency, width, k=shape[0])


@register("topology", "fully_connected")
def fully_connected(k: Any, *, p: Any = 1, latency: Any = 1, width: Any = 1) -> nx.Graph:
    """k routers, every pair linked: k(k-1)/2 links, diameter 1 (k = 1: a lone chip, no links)."""
    k = require_int(k, minimum=1, where="k")
    p = require_int(p, minimum=1, where="p")
    latency, width = _link_args(latency, width)
    G = _graph(
        "fully_connected",
        {"k": k, "p": p, "latency": latency, "width": width},
        _per_router(k, p),
    )
    for node in range(k):
        G.add_node(node, coords=(node,), role="router")
    for u in range(k):
        for v in range(u + 1, k):
            _link(G, u, v, latency, width)
    return G


# -- indirect networks ------------------------------------------------------------------------------
@register("topology", "tree")
def tree(radix: Any, levels: Any, *, latency: Any = 1, width: Any = 1) -> nx.Graph:
    """Complete radix-ary tree of switches, ``levels`` deep, radix terminals on each leaf switch.

    Level 0 is the root; level ``levels - 1`` holds the radix^(levels-1) leaves. Nodes are numbered
    level by level (root 0), coords ``(level, index within level)``; the parent of (l, i) is
    (l-1, i // radix). Terminal t attaches to leaf t // radix.
    """
    r = require_int(radix, minimum=2, where="radix")
    levels = require_int(levels, minimum=1, where="levels")
    latency, width = _link_args(latency, width)
    first = [(r**lv - 1) // (r - 1) for lv in range(levels)]  # id of the first node on each level
    leaves = r ** (levels - 1)
    G = _graph(
        "tree",
        {"radix": r, "levels": levels, "latency": latency, "width": width},
        [first[-1] + j for j in range(leaves) for _ in range(r)],
    )
    for lv in range(levels):
        role = "leaf" if lv == levels - 1 else "switch"
        for i in range(r**lv):
            G.add_node(first[lv] + i, coords=(lv, i), level=lv, role=role)
            if lv:
                _link(G, first[lv - 1] + i // r, first[lv] + i, latency, width)
    return G


@register("topology", "fat_tree")
def fat_tree(k: Any, levels: Any = 3, *, latency: Any = 1, width: Any = 1) -> nx.Graph:
    """Folded Clos of k-port switches (Al-Fares et al. 2008 for levels=3), k even, hosts at leaves.

    With h = k/2 and L = levels: 2 h^L terminals, (2L-1) h^(L-1) switches, 2 (L-1) h^L links, and
    every switch uses exactly k ports. Level 0 is the top (core) level of h^(L-1) switches, each
    with all k ports down; levels 1..L-1 form k pods of h^(L-2) switches per level, each with h
    ports up and h down; level L-1 switches are the leaves (edge), h terminals each. L = 2 is a
    leaf-spine (k leaves, h spines); L = 1 is one switch with k terminals.

    Within a pod, a switch is named by a word w of L-2 base-h digits; switch w on level l links to
    switch w' on level l+1 iff w and w' differ at most in digit l-1 (digit 0 least significant). Core
    switch ``w*h + j`` (j < h) links to level-1 switch w of every pod. Nodes are numbered level
    by level from the top; within level l >= 1 by (pod, w). Node attributes: ``level``, ``role``
    ("switch" or "leaf"), ``coords = (level, index within level)``, and ``pod`` below the core.
    """
    k = require_int(k, minimum=2, where="k")
    if k % 2:
        raise ConfigError(f"expected an even number of switch ports, found {k}", where="k")
    levels = require_int(levels, minimum=1, where="levels")
    latency, width = _link_args(latency, width)
    params = {"k": k, "levels": levels, "latency": latency, "width": width}
    if levels == 1:
        G = _graph("fat_tree", params, [0] * k)
        G.add_node(0, coords=(0, 0), level=0, role="leaf")
        return G
    h = k // 2
    words = h ** (levels - 2)  # switches per pod per level
    per_level = k * words  # switches on each level below the core
    cores = words * h

    def node(level: int, pod: int, w: int) -> int:
        return cores + (level - 1) * per_level + pod * words + w

    G = _graph("fat_tree", params, [node(levels - 1, 0, 0) + i // h for i in range(2 * h**levels)])
    for c in range(cores):
        G.add_node(c, coords=(0, c), level=0, role="switch")
    for level in range(1, levels):
        role = "leaf" if level == levels - 1 else "switch"
        for pod in range(k):
            for w in range(words):
                coords = (level, pod * words + w)
                G.add_node(node(level, pod, w), coords=coords, level=level, pod=pod, role=role)
    for pod in range(k):
        for w in range(words):
            for j in range(h):
                _link(G, w * h + j, node(1, pod, w), latency, width)
        for level in range(1, levels - 1):
            step = h ** (level - 1)
            for w in range(words):
                base = w - (w // step) % h * step  # w with digit (level-1) cleared
                for x in range(h):
                    _link(G, node(level, pod, w), node(level + 1, pod, base + x * step), latency, width)
    return G


@register("topology", "dragonfly")
def dragonfly(
    p: Any,
    a: Any,
    h: Any,
    g: Any = None,
    *,
    arrangement: Any = "absolute",
    latency: Any = 1,
    width: Any = 1,
    global_latency: Any = None,
    global_width: Any = None,
) -> nx.Graph:
    """Dragonfly (Kim et al. 2008): g groups of a routers, p terminals and h global links per router.

    Routers within a group are fully connected (``kind="local"``). ``g`` defaults to the balanced
    maximum a*h+1, where every pair of groups shares exactly one global link (``kind="global"``).
    Router ``index`` i of ``group`` G has id ``G*a + i`` and coords ``(G, i)``; its global ports are
    group ports ``i*h .. i*h+h-1``. Group port j goes to the group at offset o = j mod (g-1), copy
    j div (g-1) (with g < a*h+1 each pair of groups gets (a*h) div (g-1) links; leftover ports stay
    unused). ``arrangement`` maps the offset to a group:

    * ``"absolute"``: group G's offset o goes to group o if o < G, else o+1;
    * ``"palmtree"``: group G's offset o goes to group (G - o - 1) mod g.

    ``global_latency`` / ``global_width`` default to ``latency`` / ``width``.
    """
    p = require_int(p, minimum=1, where="p")
    a = require_int(a, minimum=1, where="a")
    h = require_int(h, minimum=1, where="h")
    g = a * h + 1 if g is None else require_int(g, minimum=2, where="g")
    if g > a * h + 1:
        raise ConfigError(f"expected at most a*h+1 = {a * h + 1} groups, found {g}", where="g")
    if arrangement not in ARRANGEMENTS:
        expected = ", ".join(map(repr, ARRANGEMENTS))
        raise ConfigError(f"expected one of {expected}, found {arrangement!r}", where="arrangement")
    latency, width = _link_args(latency, width)
    glat = latency if global_latency is None else _link_args(global_latency, 1, "global_")[0]
    gwid = width if global_width is None else _link_args(1, global_width, "global_")[1]
    params = {"p": p, "a": a, "h": h, "g": g, "arrangement": arrangement}
    links = {"latency": latency, "width": width, "global_latency": glat, "global_width": gwid}
    G = _graph("dragonfly", {**params, **links}, _per_router(a * g, p))
    for grp in range(g):
        for i in range(a):
            G.add_node(grp * a + i, coords=(grp, i), group=grp, index=i, role="router")
        for i in range(a):
            for j in range(i + 1, a):
                _link(G, grp * a + i, grp * a + j, latency, width, kind="local")

    def target(grp: int, offset: int) -> int:
        if arrangement == "absolute":
            return offset if offset < grp else offset + 1
        return (grp - offset - 1) % g

    def offset_of(grp: int, other: int) -> int:  # inverse of target(grp, .)
        if arrangement == "absolute":
            return other if other < grp else other - 1
        return (grp - other - 1) % g

    for grp in range(g):
        for port in range((a * h) // (g - 1) * (g - 1)):
            copy, offset = divmod(port, g - 1)
            other = target(grp, offset)
            if other < grp:
                continue  # added from the other side
            far = copy * (g - 1) + offset_of(other, grp)
            u, v = grp * a + port // h, other * a + far // h
            if G.has_edge(u, v):
                raise ConfigError(
                    f"expected g giving distinct router pairs, found g = {g} puts two global links "
                    f"between routers {u} and {v}",
                    where="g",
                )
            _link(G, u, v, glat, gwid, kind="global")
    return G


# -- a graph given link by link ---------------------------------------------------------------------
@register("topology", "explicit")
def explicit(nodes: Any, links: Any, terminals: Any = None, *, latency: Any = 1, width: Any = 1) -> nx.Graph:
    """A graph given link by link: ``links`` entries are ``[a, b]`` or ``{a, b, latency?, width?}``.

    ``terminals`` lists the router of each endpoint (default: one terminal per router, t -> t).
    Nodes get ``coords = (id,)`` and role "router".
    """
    nodes = require_int(nodes, minimum=1, where="nodes")
    latency, width = _link_args(latency, width)
    if terminals is None:
        terminals = list(range(nodes))
    elif not isinstance(terminals, Sequence) or isinstance(terminals, str):
        raise ConfigError(f"expected a list of node ids, found {terminals!r}", where="terminals")
    terminals = [require_node(r, nodes, where=f"terminals[{t}]") for t, r in enumerate(terminals)]
    if not isinstance(links, Sequence) or isinstance(links, str):
        raise ConfigError(f"expected a list of links, found {links!r}", where="links")
    normalized = [_explicit_link(e, nodes, latency, width, f"links[{i}]") for i, e in enumerate(links)]
    params = {"nodes": nodes, "links": normalized, "terminals": list(terminals)}
    G = _graph("explicit", {**params, "latency": latency, "width": width}, terminals)
    for node in range(nodes):
        G.add_node(node, coords=(node,), role="router")
    first: dict[tuple[int, int], int] = {}
    for i, link in enumerate(normalized):
        u, v = link["a"], link["b"]
        if u == v:
            raise ConfigError(f"expected two different nodes, found a link from {u} to itself",
                              where=f"links[{i}]")  # fmt: skip
        pair = (min(u, v), max(u, v))
        if pair in first:
            raise ConfigError(
                f"expected each pair of nodes linked at most once, found {pair[0]}-{pair[1]} again "
                f"(first at links[{first[pair]}])",
                where=f"links[{i}]",
            )
        first[pair] = i
        _link(G, u, v, link["latency"], link["width"])
    return G


def _explicit_link(entry: Any, nodes: int, latency: int, width: int, where: str) -> dict[str, int]:
    """One ``links`` entry, ``[a, b]`` or ``{a, b, latency?, width?}``, as a dict with every key."""
    if isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
        return {
            "a": require_node(entry[0], nodes, where=f"{where}[0]"),
            "b": require_node(entry[1], nodes, where=f"{where}[1]"),
            "latency": latency,
            "width": width,
        }
    if not isinstance(entry, Mapping):
        raise ConfigError(f"expected [a, b] or {{a = .., b = ..}}, found {entry!r}", where=where)
    defaults = {"latency": latency, "width": width}
    for key in entry:
        if key not in ("a", "b", *defaults):
            raise ConfigError(
                f"unknown key {key!r}; expected one of: a, b, latency, width", where=key_path(where, key)
            )
    out = {}
    for end in ("a", "b"):
        if end not in entry:
            raise ConfigError("expected a node id, found nothing", where=key_path(where, end))
        out[end] = require_node(entry[end], nodes, where=key_path(where, end))
    for key, default in defaults.items():
        out[key] = require_int(entry.get(key, default), minimum=1, where=key_path(where, key))
    return out


def _plain(k: Any) -> Any:
    """``k`` as stored in ``G.graph['params']``: an int, or a list for per-dimension radices."""
    return int(k) if is_int(k) else [int(x) for x in k]
