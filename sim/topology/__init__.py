"""Network topologies as ``networkx`` graphs: generators, a TOML loader and validation.

The graph contract (what the router, routing functions and collectives rely on)
------------------------------------------------------------------------------
* ``networkx.Graph``, undirected and simple: each edge is a pair of opposite unidirectional
  channels. Nodes are routers or switches with integer ids ``0..N-1``.
* Graph attributes:

  - ``kind``: the generator name (``"mesh"``, ``"torus"``, ``"ring"``, ``"fully_connected"``,
    ``"tree"``, ``"fat_tree"``, ``"dragonfly"``, ``"explicit"``);
  - ``params``: the generator's arguments, resolved (defaults filled in, e.g. dragonfly ``g``);
  - ``terminals``: entry t is the router id endpoint t attaches to; endpoints are ``0..T-1``.
    Direct networks attach ``p`` terminals to every router (terminal t on router t // p); trees
    attach terminals only to leaf switches;
  - ``shape`` (mesh, torus, ring only): the radix of each dimension, e.g. ``(8, 8)``;
  - ``name`` / ``description`` when loaded from a file.

* Node attributes: ``coords`` (tuple of ints) and ``role`` (``"router"``, ``"switch"`` or
  ``"leaf"``). In a k-ary n-cube coordinate i is dimension i and the node id is
  ``sum(coords[i] * prod(shape[:i]))``: dimension 0 varies fastest (``coords_to_id`` /
  ``id_to_coords``). Trees and fat trees add ``level`` (0 = the root / top level, leaves have the
  highest level; a link is "up" from the node with the higher level) and coords ``(level, index)``;
  fat trees add ``pod`` below the core. Dragonfly routers add ``group`` and ``index`` (id =
  ``group * a + index``, coords ``(group, index)``).
* Edge attributes: ``latency`` (cycles, int >= 1) and ``width`` (flits per cycle, int >= 1) on every
  link. Mesh, torus and ring links add ``dim`` and ``wrap`` (True only on the wrap-around link of a
  dimension of radix > 2; routing functions put their dateline there). Dragonfly links add
  ``kind`` = ``"local"`` or ``"global"``.
* Port order: network port i of router r leads to ``port_map(G, r)[i]`` (ascending neighbour id).

Hop counts are router-to-router links; injection and ejection links are not counted.

Generators are registered under kind ``topology`` in :mod:`sim.topology.generators`.
"""

from sim.topology.generators import (
    dragonfly,
    explicit,
    fat_tree,
    fully_connected,
    mesh,
    ring,
    torus,
    tree,
)
from sim.topology.graph import (
    average_hops_uniform,
    bisection_links,
    coords_to_id,
    cube_step,
    diameter,
    hops,
    id_to_coords,
    port_map,
    radix,
    terminals_by_router,
)
from sim.topology.loader import load_topology, to_explicit, to_mapping, topology_from_mapping
from sim.topology.validate import validate

__all__ = [
    "average_hops_uniform",
    "bisection_links",
    "coords_to_id",
    "cube_step",
    "diameter",
    "dragonfly",
    "explicit",
    "fat_tree",
    "fully_connected",
    "hops",
    "id_to_coords",
    "load_topology",
    "mesh",
    "port_map",
    "radix",
    "ring",
    "terminals_by_router",
    "to_explicit",
    "to_mapping",
    "topology_from_mapping",
    "torus",
    "tree",
    "validate",
]
