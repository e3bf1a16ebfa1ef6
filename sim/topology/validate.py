"""Structural checks on a topology graph, and the argument checks the generators share.

:func:`validate` checks the graph contract described in :mod:`sim.topology`: a simple undirected
``networkx.Graph`` whose nodes are the integers ``0..N-1``, connected, without self-loops, every link
carrying integer ``latency >= 1`` and ``width >= 1``, a non-empty terminal list naming existing
routers, trees attaching terminals only to leaves, k-ary n-cube coordinates that match node ids, and
optionally at most ``max_radix`` ports (links plus terminals) on any router. Every failure is one
:class:`~sim.core.errors.ConfigError` line naming where, what was expected and what was found.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import networkx as nx

from sim.core.errors import ConfigError
from sim.topology.graph import id_to_coords, terminals_by_router


def key_path(where: str | None, key: str) -> str:
    """``where`` extended by ``key``: ``f.toml`` + ``k`` -> ``f.toml: k``; ``f.toml: topology`` +
    ``links[3]`` -> ``f.toml: topology.links[3]``; ``links`` + ``[3]`` -> ``links[3]``."""
    if not where:
        return key
    if key.startswith("["):
        return where + key
    if ": " not in where and where.endswith(".toml"):
        return f"{where}: {key}"
    return f"{where}.{key}"


def is_int(value: Any) -> bool:
    """True for Python (and numpy) integers, false for bools, floats and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def require_int(value: Any, *, minimum: int, where: str | None) -> int:
    """``value`` as an int if it is an integer ``>= minimum``, else a ConfigError at ``where``."""
    if not is_int(value) or value < minimum:
        raise ConfigError(f"expected an integer >= {minimum}, found {value!r}", where=where)
    return int(value)


def require_node(value: Any, nodes: int, *, where: str | None) -> int:
    """``value`` as a node id in ``0..nodes-1``, else a ConfigError at ``where``."""
    if not is_int(value) or not 0 <= value < nodes:
        raise ConfigError(f"expected a node id in 0..{nodes - 1}, found {value!r}", where=where)
    return int(value)


def validate(G: Any, *, where: str | None = None, max_radix: int | None = None) -> nx.Graph:
    """Check ``G`` against the topology graph contract; return it unchanged or raise ConfigError."""
    if not isinstance(G, nx.Graph) or G.is_directed() or G.is_multigraph():
        raise ConfigError(
            f"expected a simple undirected networkx.Graph, found {type(G).__name__}", where=where
        )
    n = G.number_of_nodes()
    if n == 0:
        raise ConfigError("expected at least one node, found none", where=where)
    bad = sorted((repr(v) for v in G.nodes if not is_int(v) or not 0 <= v < n), key=str)
    if bad:
        raise ConfigError(
            f"expected node ids 0..{n - 1} (contiguous integers), found {', '.join(bad[:5])}", where=where
        )
    for u, _ in nx.selfloop_edges(G):
        raise ConfigError(f"expected no self-loops, found a link from node {u} to itself", where=where)
    for u, v, attrs in G.edges(data=True):
        for name in ("latency", "width"):
            value = attrs.get(name)
            if not is_int(value) or value < 1:
                raise ConfigError(
                    f"link {min(u, v)}-{max(u, v)}: expected {name} = an integer >= 1, found {value!r}",
                    where=where,
                )
    _check_terminals(G, n, where)
    if not nx.is_connected(G):
        parts = sorted((sorted(c) for c in nx.connected_components(G)), key=lambda c: c[0])
        shown = "; ".join(_brief(c) for c in parts[:3]) + ("; ..." if len(parts) > 3 else "")
        raise ConfigError(f"expected a connected graph, found {len(parts)} components: {shown}", where=where)
    _check_leaves(G, where)
    _check_coords(G, where)
    if max_radix is not None:
        attached = terminals_by_router(G)
        for node in range(n):
            ports = G.degree(node) + len(attached[node])
            if ports > max_radix:
                raise ConfigError(
                    f"router {node}: expected at most {max_radix} ports, found {ports} "
                    f"({G.degree(node)} links + {len(attached[node])} terminals)",
                    where=where,
                )
    return G


def _check_terminals(G: nx.Graph, n: int, where: str | None) -> None:
    terminals = G.graph.get("terminals")
    if not isinstance(terminals, Sequence) or isinstance(terminals, str):
        raise ConfigError(
            f"expected graph attribute 'terminals' = a list of router ids, found {terminals!r}", where=where
        )
    if not terminals:
        raise ConfigError("expected at least one terminal, found none", where=where)
    for t, r in enumerate(terminals):
        if not is_int(r) or not 0 <= r < n:
            raise ConfigError(f"terminal {t}: expected a router id in 0..{n - 1}, found {r!r}", where=where)


def _check_leaves(G: nx.Graph, where: str | None) -> None:
    """In trees (any node has role 'leaf') terminals attach only to leaves."""
    if not any(role == "leaf" for _, role in G.nodes(data="role")):
        return
    for t, r in enumerate(G.graph["terminals"]):
        role = G.nodes[r].get("role")
        if role != "leaf":
            raise ConfigError(
                f"terminal {t}: expected to attach to a leaf switch, found node {r} with role {role!r}",
                where=where,
            )


def _check_coords(G: nx.Graph, where: str | None) -> None:
    """For k-ary n-cubes (graph attribute 'shape'), ``coords`` must encode the node id."""
    shape = G.graph.get("shape")
    if shape is None:
        return
    for node, coords in G.nodes(data="coords"):
        if coords is None or tuple(coords) != id_to_coords(node, shape):
            raise ConfigError(
                f"node {node}: expected coords encoding id {node} in shape {tuple(shape)}, found {coords!r}",
                where=where,
            )


def _brief(nodes: list[int]) -> str:
    return "{" + ", ".join(map(str, nodes[:6])) + (", ..." if len(nodes) > 6 else "") + "}"
