"""Random small parameters for every generator give valid, connected graphs with consistent terminals."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.core.errors import ConfigError
from sim.topology.generators import dragonfly, explicit, fat_tree, fully_connected, mesh, ring, torus, tree
from sim.topology.graph import coords_to_id, diameter, id_to_coords, radix, terminals_by_router
from sim.topology.loader import to_explicit, to_mapping, topology_from_mapping
from sim.topology.validate import validate

links = st.fixed_dictionaries({"latency": st.integers(1, 5), "width": st.integers(1, 4)})
shapes = st.lists(st.integers(2, 5), min_size=1, max_size=3).filter(lambda s: math.prod(s) <= 64)


@st.composite
def dragonflies(draw):
    a, h = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    g = draw(
        st.sampled_from([None, *[g for g in range(2, a * h + 2) if (a * h) % (g - 1) == 0 and g - 1 >= h]])
    )
    p, arrangement = draw(st.integers(1, 3)), draw(st.sampled_from(["absolute", "palmtree"]))
    return dragonfly(p, a, h, g, arrangement=arrangement, **draw(links))


@st.composite
def explicit_graphs(draw):
    """A random spanning tree plus random extra links, so the graph is connected by construction."""
    n = draw(st.integers(1, 12))
    pairs = {(draw(st.integers(0, v - 1)), v) for v in range(1, n)}
    pairs |= {
        (u, v) for u, v in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)))) if u < v
    }
    terminals = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=2 * n))
    return explicit(n, [list(p) for p in sorted(pairs)], terminals, **draw(links))


graphs = st.one_of(
    st.builds(mesh, shapes, p=st.integers(1, 3)),
    st.builds(torus, shapes, p=st.integers(1, 3)),
    st.builds(ring, st.integers(2, 16), p=st.integers(1, 3)),
    st.builds(fully_connected, st.integers(2, 10), p=st.integers(1, 3)),
    st.builds(tree, st.integers(2, 4), st.integers(1, 3)),
    st.builds(fat_tree, st.sampled_from([2, 4, 6]), st.integers(1, 3)),
    st.builds(lambda shape, kw: torus(shape, **kw), shapes, links),
    dragonflies(),
    explicit_graphs(),
)


@settings(max_examples=300, deadline=None)
@given(graphs)
def test_generated_graphs_are_valid_and_terminals_consistent(G):
    validate(G)
    n = G.number_of_nodes()
    terminals = G.graph["terminals"]
    by_router = terminals_by_router(G)
    assert sorted(t for ts in by_router for t in ts) == list(range(len(terminals)))
    assert all(terminals[t] == r for r, ts in enumerate(by_router) for t in ts)
    assert sum(radix(G, v) for v in G) == 2 * G.number_of_edges() + len(terminals)
    kind, params = G.graph["kind"], G.graph["params"]
    if kind in ("mesh", "torus", "ring", "fully_connected", "dragonfly"):
        assert terminals == [t // params["p"] for t in range(params["p"] * n)]
    if kind in ("tree", "fat_tree"):
        assert all(G.nodes[r]["role"] == "leaf" for r in terminals)
    if "shape" in G.graph:
        shape = G.graph["shape"]
        for v in G:
            assert (
                coords_to_id(id_to_coords(v, shape), shape) == v == coords_to_id(G.nodes[v]["coords"], shape)
            )
        wraps = sum(1 for _, _, w in G.edges(data="wrap") if w)
        expected = sum(n // k for k in shape if k > 2) if kind != "mesh" else 0
        assert wraps == expected
    if kind == "fat_tree":
        assert all(radix(G, v) == params["k"] for v in G)
    if kind == "dragonfly":
        glob = sum(1 for _, _, kd in G.edges(data="kind") if kd == "global")
        g, per_pair = params["g"], (params["a"] * params["h"]) // (params["g"] - 1)
        assert glob == g * (g - 1) // 2 * per_pair
    H = topology_from_mapping(to_mapping(G))
    assert set(H.edges) == set(G.edges) and H.graph["terminals"] == terminals
    E = topology_from_mapping(to_explicit(G))
    assert all(E.edges[u, v] == {k: d[k] for k in ("latency", "width")} for u, v, d in G.edges(data=True))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_dragonfly_any_group_count_builds_or_names_g(a, h, data):
    """Every g in 2..a*h+1 either builds a valid dragonfly or is refused with an error at ``g``."""
    g = data.draw(st.integers(2, a * h + 1))
    try:
        G = dragonfly(1, a, h, g)
    except ConfigError as exc:
        assert exc.where == "g" and g - 1 < h
        return
    validate(G)
    assert diameter(G) <= 3
