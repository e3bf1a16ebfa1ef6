"""Read-only helpers over a topology graph: coordinates, ports, terminals, hop counts, bisection.

All of them follow the graph contract in :mod:`sim.topology`. Hop counts are router-to-router link
traversals: the injection link from a terminal into its router and the ejection link out of the
destination router are not counted, so two terminals on the same router are 0 hops apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import networkx as nx


# -- k-ary n-cube coordinates ---------------------------------------------------------------------
def coords_to_id(coords: Sequence[int], shape: Sequence[int]) -> int:
    """Node id of ``coords`` in a cube of ``shape``: ``sum(c[i] * prod(shape[:i]))`` (dim 0 fastest)."""
    if len(coords) != len(shape):
        raise ValueError(f"expected {len(shape)} coordinates, found {tuple(coords)}")
    node, stride = 0, 1
    for c, k in zip(coords, shape, strict=True):
        if not 0 <= c < k:
            raise ValueError(f"coordinate {c} outside 0..{k - 1} in shape {tuple(shape)}")
        node += c * stride
        stride *= k
    return node


def id_to_coords(node: int, shape: Sequence[int]) -> tuple[int, ...]:
    """Inverse of :func:`coords_to_id`."""
    if not 0 <= node < math.prod(shape):
        raise ValueError(f"node {node} outside 0..{math.prod(shape) - 1} in shape {tuple(shape)}")
    out = []
    for k in shape:
        node, c = divmod(node, k)
        out.append(c)
    return tuple(out)


def cube_step(G: nx.Graph, node: int, dim: int, direction: int) -> int | None:
    """The neighbour of ``node`` one step along ``dim`` (``direction`` +1 or -1) in a mesh, torus or
    ring, wrapping where the graph has a wrap link; None at a mesh edge."""
    shape = G.graph["shape"]
    coords = list(id_to_coords(node, shape))
    coords[dim] = (coords[dim] + direction) % shape[dim]
    other = coords_to_id(coords, shape)
    return other if other != node and G.has_edge(node, other) else None


# -- ports and terminals ----------------------------------------------------------------------------
def port_map(G: nx.Graph, node: int) -> list[int]:
    """Neighbours of ``node`` in port order: network port ``i`` leads to ``port_map(G, node)[i]``.

    The order is ascending neighbour id, so it is stable across runs and Python versions. Terminal
    ports, if a router model numbers them, follow the network ports in terminal-id order
    (see :func:`terminals_by_router`).
    """
    return sorted(G.adj[node])


def terminals_by_router(G: nx.Graph) -> list[list[int]]:
    """Entry ``r`` lists the terminals (endpoint ids, ascending) attached to router ``r``."""
    out: list[list[int]] = [[] for _ in range(G.number_of_nodes())]
    for t, r in enumerate(G.graph["terminals"]):
        out[r].append(t)
    return out


def radix(G: nx.Graph, node: int) -> int:
    """Ports used on ``node``: its links plus the terminals attached to it."""
    return G.degree(node) + sum(1 for r in G.graph["terminals"] if r == node)


# -- distances --------------------------------------------------------------------------------------
def hops(G: nx.Graph, src_router: int, dst_router: int) -> int:
    """Shortest-path length in router-to-router links (unweighted; latency is not considered)."""
    return nx.shortest_path_length(G, src_router, dst_router)


def _bfs_rows(G: nx.Graph, sources: Iterable[int]) -> Iterator[tuple[int, dict[int, int]]]:
    for src in sources:
        yield src, nx.single_source_shortest_path_length(G, src)


def average_hops_uniform(G: nx.Graph, *, include_self: bool = False) -> float:
    """Mean hop count between terminals under uniform random traffic.

    Averages over ordered pairs of terminals ``(s, d)``: by default only ``s != d`` (every terminal
    sends to each of the other ``T - 1`` terminals equally often); with ``include_self=True`` over all
    ``T**2`` pairs, ``s == d`` counting 0 hops. Terminals sharing a router are 0 hops apart. For a
    k x k mesh with one terminal per router the two are ``2k/3`` and ``2(k^2-1)/(3k)``.
    """
    attached = [len(ts) for ts in terminals_by_router(G)]
    total = 0
    for src, dist in _bfs_rows(G, (r for r, c in enumerate(attached) if c)):
        total += attached[src] * sum(attached[dst] * d for dst, d in dist.items())
    t = len(G.graph["terminals"])
    pairs = t * t if include_self else t * (t - 1)
    return total / pairs if pairs else 0.0


def diameter(G: nx.Graph) -> int:
    """Largest hop count between two routers that have terminals attached (leaves, in trees)."""
    hosts = [r for r, ts in enumerate(terminals_by_router(G)) if ts]
    return max(max(dist[d] for d in hosts) for _, dist in _bfs_rows(G, hosts))


def bisection_links(G: nx.Graph) -> int:
    """Links crossing a minimum bisection (two router halves of equal size), in closed form.

    * mesh, torus, ring of shape ``(k_0, ..., k_{n-1})`` whose largest radix ``k_max`` is even: the
      cut plane halving that dimension, crossing ``N / k_max`` links, twice that with wrap links
      (``k_max > 2``). For a k-ary n-cube: mesh ``k^(n-1)``, torus ``2 k^(n-1)``.
    * fully connected k: ``floor(k/2) * ceil(k/2)``.

    Raises ValueError for other kinds and for cubes whose largest radix is odd (no closed form: a
    5 x 2 mesh is bisected by 3 links, not by the 5 a cut plane would cross).
    """
    kind = G.graph.get("kind")
    if kind == "fully_connected":
        k = G.number_of_nodes()
        return (k // 2) * (k - k // 2)
    if kind not in ("mesh", "torus", "ring"):
        raise ValueError(f"no closed-form bisection for topology kind {kind!r}")
    shape = G.graph["shape"]
    k_max = max(shape)
    if k_max % 2:
        raise ValueError(f"no closed-form bisection for shape {tuple(shape)}: largest radix is odd")
    crossing = math.prod(shape) // k_max
    return crossing * 2 if kind != "mesh" and k_max > 2 else crossing
