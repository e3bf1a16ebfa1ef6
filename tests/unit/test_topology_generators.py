"""Topology generators against closed forms: counts, coordinates, wrap links, distances, bisection."""

import itertools
import math

import networkx as nx
import pytest

from sim.core.errors import ConfigError
from sim.topology.generators import dragonfly, explicit, fat_tree, fully_connected, mesh, ring, torus, tree
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
from sim.topology.validate import validate


# -- brute-force references (independent of the helpers under test) --------------------------------
def brute_average_hops(G, include_self):
    dist = dict(nx.all_pairs_shortest_path_length(G))
    terms = G.graph["terminals"]
    pairs = [(s, d) for s in range(len(terms)) for d in range(len(terms)) if include_self or s != d]
    return sum(dist[terms[s]][terms[d]] for s, d in pairs) / len(pairs)


def brute_bisection(G):
    nodes = sorted(G.nodes)
    best = None
    for half in itertools.combinations(nodes[1:], len(nodes) // 2 - 1):  # node 0 on the left
        left = {nodes[0], *half}
        cut = sum(1 for u, v in G.edges if (u in left) != (v in left))
        best = cut if best is None else min(best, cut)
    return best


def global_links(G):
    return [(u, v) for u, v, kind in G.edges(data="kind") if kind == "global"]


# -- k-ary n-cubes ---------------------------------------------------------------------------------
CUBES = [(2, 1), (3, 1), (2, 2), (3, 2), (4, 2), (5, 2), (8, 2), (2, 3), (3, 3), (4, 3), (2, 4)]


@pytest.mark.parametrize(("k", "n"), CUBES)
def test_mesh_counts(k, n):
    G = validate(mesh(k, n))
    assert G.number_of_nodes() == k**n
    assert G.number_of_edges() == n * k ** (n - 1) * (k - 1)
    assert G.graph["terminals"] == list(range(k**n))
    assert G.graph["shape"] == (k,) * n
    assert not any(w for _, _, w in G.edges(data="wrap"))


@pytest.mark.parametrize(("k", "n"), [c for c in CUBES if c[0] > 2])
def test_torus_counts_and_wrap_links(k, n):
    G = validate(torus(k, n))
    assert G.number_of_nodes() == k**n
    assert G.number_of_edges() == n * k**n
    wraps = {frozenset((u, v)) for u, v, w in G.edges(data="wrap") if w}
    expected = set()
    for node in range(k**n):
        c = id_to_coords(node, (k,) * n)
        for d in range(n):
            if c[d] == k - 1:
                other = (*c[:d], 0, *c[d + 1 :])
                expected.add(frozenset((node, coords_to_id(other, (k,) * n))))
    assert wraps == expected
    assert len(wraps) == n * k ** (n - 1)
    assert all(G.degree(v) == 2 * n for v in G)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_radix2_torus_is_the_hypercube_without_duplicate_links(n):
    G = validate(torus(2, n))
    assert G.number_of_edges() == n * 2 ** (n - 1)
    assert set(G.edges) == set(mesh(2, n).edges)
    assert not any(w for _, _, w in G.edges(data="wrap"))
    assert nx.is_isomorphic(G, nx.hypercube_graph(n))


@pytest.mark.parametrize("gen", [mesh, torus])
@pytest.mark.parametrize("shape", [(3, 4), (2, 5), (4, 2, 3)])
def test_mixed_radix_cube_dims_and_coords(gen, shape):
    G = validate(gen(list(shape)))
    assert G.graph["shape"] == shape and G.graph["params"]["n"] == len(shape)
    assert G.number_of_nodes() == math.prod(shape)
    for u, v, attrs in G.edges(data=True):
        cu, cv = G.nodes[u]["coords"], G.nodes[v]["coords"]
        d = attrs["dim"]
        assert [i for i in range(len(shape)) if cu[i] != cv[i]] == [d]
        step = abs(cu[d] - cv[d])
        assert step == (shape[d] - 1 if attrs["wrap"] else 1)
        assert attrs["wrap"] == (gen is torus and shape[d] > 2 and step == shape[d] - 1)
    mesh_links = sum((k - 1) * math.prod(shape) // k for k in shape)
    wrap_links = sum(math.prod(shape) // k for k in shape if k > 2)
    assert G.number_of_edges() == mesh_links + (wrap_links if gen is torus else 0)


@pytest.mark.parametrize("shape", [(8, 8), (3, 4, 5), (2, 2, 2, 2), (7,)])
def test_coords_id_round_trip_dimension_zero_fastest(shape):
    G = mesh(list(shape))
    for node in range(math.prod(shape)):
        c = id_to_coords(node, shape)
        assert coords_to_id(c, shape) == node
        assert G.nodes[node]["coords"] == c
        assert node == sum(c[i] * math.prod(shape[:i]) for i in range(len(shape)))
    if shape == (8, 8):
        assert id_to_coords(9, shape) == (1, 1) and id_to_coords(10, shape) == (2, 1)
    with pytest.raises(ValueError):
        id_to_coords(math.prod(shape), shape)
    with pytest.raises(ValueError):
        coords_to_id((shape[0],) + (0,) * (len(shape) - 1), shape)


def test_cube_step_follows_links_and_wraps_only_on_a_torus():
    m, t = mesh(4), torus(4)
    assert cube_step(m, 0, 0, +1) == 1 and cube_step(m, 0, 1, +1) == 4
    assert cube_step(m, 0, 0, -1) is None and cube_step(m, 3, 0, +1) is None
    assert cube_step(t, 0, 0, -1) == 3 and cube_step(t, 12, 1, +1) == 0
    assert cube_step(torus(2), 0, 0, -1) == 1  # radix 2: -1 neighbour is the +1 neighbour


@pytest.mark.parametrize("k", [2, 3, 4, 5, 8])
def test_ring(k):
    G = validate(ring(k))
    assert G.number_of_nodes() == k
    assert G.number_of_edges() == (k if k > 2 else 1)
    assert all(d == 0 for _, _, d in G.edges(data="dim"))
    wraps = [frozenset((u, v)) for u, v, w in G.edges(data="wrap") if w]
    assert wraps == ([frozenset((0, k - 1))] if k > 2 else [])
    assert diameter(G) == k // 2


# -- distances on cubes ----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 3, 4, 5, 6, 8])
def test_mesh_average_hops_closed_forms(k):
    G = mesh(k)
    with_self = 2 * (k * k - 1) / (3 * k)  # E|x1-x2| = (k^2-1)/(3k) per dimension, x1 == x2 allowed
    without_self = 2 * k / 3  # the same sum over k^2 (k^2 - 1) ordered pairs of distinct nodes
    assert brute_average_hops(G, include_self=True) == pytest.approx(with_self)
    assert brute_average_hops(G, include_self=False) == pytest.approx(without_self)
    assert average_hops_uniform(G, include_self=True) == pytest.approx(with_self)
    assert average_hops_uniform(G) == pytest.approx(without_self)


@pytest.mark.parametrize(("k", "n"), [(3, 3), (4, 3), (2, 5), (5, 1)])
def test_mesh_average_hops_n_dimensions(k, n):
    with_self = n * (k * k - 1) / (3 * k)
    nodes = k**n
    assert average_hops_uniform(mesh(k, n), include_self=True) == pytest.approx(with_self)
    assert average_hops_uniform(mesh(k, n)) == pytest.approx(with_self * nodes / (nodes - 1))


@pytest.mark.parametrize(("k", "n"), [(3, 2), (4, 2), (5, 2), (6, 2), (3, 3), (4, 3), (8, 1), (7, 1)])
def test_torus_distances(k, n):
    G = torus(k, n)
    per_dim = k / 4 if k % 2 == 0 else (k * k - 1) / (4 * k)  # mean ring distance, self included
    assert average_hops_uniform(G, include_self=True) == pytest.approx(n * per_dim)
    assert average_hops_uniform(G) == pytest.approx(brute_average_hops(G, include_self=False))
    assert diameter(G) == n * (k // 2) == nx.diameter(G)


@pytest.mark.parametrize(("k", "n"), [(4, 2), (3, 3), (5, 1)])
def test_mesh_diameter(k, n):
    assert diameter(mesh(k, n)) == n * (k - 1)


def test_concentration_p_terminals_per_router():
    G = validate(mesh(3, p=2))
    assert G.graph["terminals"] == [t // 2 for t in range(18)]
    assert terminals_by_router(G)[4] == [8, 9]
    assert radix(G, 4) == 4 + 2
    for include_self in (False, True):
        assert average_hops_uniform(G, include_self=include_self) == pytest.approx(
            brute_average_hops(G, include_self)
        )


# -- bisection -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "G",
    [mesh(4), mesh(2, 3), mesh(2, 4), mesh([4, 3]), mesh([3, 6]), torus(4), torus(2, 3), torus([4, 3]),
     torus([4, 2]), ring(6), ring(8), ring(2), fully_connected(6), fully_connected(7)],
    ids=lambda G: f"{G.graph['kind']}{G.graph.get('shape', G.number_of_nodes())}",
)  # fmt: skip
def test_bisection_closed_form_matches_brute_force(G):
    assert bisection_links(G) == brute_bisection(G)


@pytest.mark.parametrize(("k", "n"), [(4, 2), (8, 2), (4, 3), (6, 2)])
def test_bisection_k_ary_n_cube(k, n):
    assert bisection_links(mesh(k, n)) == k ** (n - 1)
    assert bisection_links(torus(k, n)) == 2 * k ** (n - 1)


def test_bisection_without_closed_form_raises():
    with pytest.raises(ValueError, match="odd"):
        bisection_links(mesh([5, 2]))  # 3 links bisect it; a cut plane would cross 5
    assert brute_bisection(mesh([5, 2])) == 3
    with pytest.raises(ValueError, match="kind"):
        bisection_links(tree(2, 3))


# -- fully connected -------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_fully_connected(k):
    G = validate(fully_connected(k))
    assert G.number_of_edges() == k * (k - 1) // 2
    assert diameter(G) == 1
    assert average_hops_uniform(G) == 1.0


# -- trees ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("r", "levels"), [(2, 1), (2, 2), (2, 3), (3, 3), (4, 3), (2, 5)])
def test_tree(r, levels):
    G = validate(tree(r, levels))
    switches = (r**levels - 1) // (r - 1)
    assert G.number_of_nodes() == switches and G.number_of_edges() == switches - 1
    assert len(G.graph["terminals"]) == r**levels
    leaves = [v for v, role in G.nodes(data="role") if role == "leaf"]
    assert len(leaves) == r ** (levels - 1)
    assert all(G.nodes[v]["level"] == levels - 1 for v in leaves)
    assert set(G.graph["terminals"]) == set(leaves)
    assert G.nodes[0]["level"] == 0
    for v in range(1, switches):
        lv, i = G.nodes[v]["coords"]
        assert G.nodes[v]["level"] == lv
        parent = (r ** (lv - 1) - 1) // (r - 1) + i // r
        assert G.has_edge(v, parent) and G.nodes[parent]["level"] == lv - 1
    assert diameter(G) == 2 * (levels - 1)
    assert all(radix(G, v) == r + (v != 0) for v in G)  # r down (children or terminals) + 1 up


# -- fat trees --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "levels"), [(2, 1), (4, 1), (2, 3), (4, 2), (4, 3), (6, 2), (6, 3), (4, 4)])
def test_fat_tree_counts_and_full_radix(k, levels):
    G = validate(fat_tree(k, levels), max_radix=k)
    h = k // 2
    assert G.number_of_nodes() == (2 * levels - 1) * h ** (levels - 1)
    assert len(G.graph["terminals"]) == 2 * h**levels
    assert G.number_of_edges() == 2 * (levels - 1) * h**levels
    assert all(radix(G, v) == k for v in G)
    leaves = {v for v, role in G.nodes(data="role") if role == "leaf"}
    assert set(G.graph["terminals"]) == leaves
    assert all(G.nodes[v]["level"] == levels - 1 for v in leaves)
    for u, v in G.edges:
        assert abs(G.nodes[u]["level"] - G.nodes[v]["level"]) == 1
    for v in G:  # h up-links on every switch below the core, all k ports down on the core
        up = [w for w in G.adj[v] if G.nodes[w]["level"] < G.nodes[v]["level"]]
        assert len(up) == (0 if G.nodes[v]["level"] == 0 else h)
    if levels > 1:
        assert diameter(G) == 2 * (levels - 1)


def test_fat_tree_k4_matches_al_fares():
    G = fat_tree(4)
    by_level = [sorted(v for v in G if G.nodes[v]["level"] == lv) for lv in range(3)]
    assert [len(x) for x in by_level] == [4, 8, 8]  # core (k/2)^2, aggregation k*k/2, edge k*k/2
    assert len(G.graph["terminals"]) == 16  # k^3/4
    for pod in range(4):
        aggs = [v for v in by_level[1] if G.nodes[v]["pod"] == pod]
        edges = [v for v in by_level[2] if G.nodes[v]["pod"] == pod]
        assert all(G.has_edge(a, e) for a in aggs for e in edges)  # complete bipartite in a pod
    for core in by_level[0]:  # each core switch reaches every pod exactly once
        assert sorted(G.nodes[a]["pod"] for a in G.adj[core]) == [0, 1, 2, 3]


@pytest.mark.parametrize(("k", "levels"), [(4, 3), (6, 3), (4, 4), (6, 2)])
def test_fat_tree_path_diversity(k, levels):
    """Leaves in different pods have (k/2)^(L-1) shortest paths: one through each core switch."""
    G = fat_tree(k, levels)
    t = G.graph["terminals"]
    src, dst = t[0], t[-1]
    assert G.nodes[src]["pod"] != G.nodes[dst]["pod"]
    paths = list(nx.all_shortest_paths(G, src, dst))
    assert len(paths) == (k // 2) ** (levels - 1)
    assert {p[levels - 1] for p in paths} == {v for v in G if G.nodes[v]["level"] == 0}


# -- dragonfly -------------------------------------------------------------------------------------
BALANCED = [(1, 2, 1), (2, 4, 2), (1, 2, 2), (2, 2, 1), (1, 3, 2), (3, 6, 3), (1, 1, 3)]


@pytest.mark.parametrize("arrangement", ["absolute", "palmtree"])
@pytest.mark.parametrize(("p", "a", "h"), BALANCED)
def test_balanced_dragonfly(p, a, h, arrangement):
    G = validate(dragonfly(p, a, h, arrangement=arrangement))
    g = a * h + 1
    assert G.graph["params"]["g"] == g
    assert G.number_of_nodes() == a * g
    assert len(G.graph["terminals"]) == p * a * g
    local = [(u, v) for u, v, kind in G.edges(data="kind") if kind == "local"]
    glob = global_links(G)
    assert len(local) == g * a * (a - 1) // 2 and len(glob) == g * (g - 1) // 2
    assert all(G.nodes[u]["group"] == G.nodes[v]["group"] for u, v in local)
    group_pairs = [frozenset((G.nodes[u]["group"], G.nodes[v]["group"])) for u, v in glob]
    assert len(set(group_pairs)) == len(group_pairs) == g * (g - 1) // 2  # one link per group pair
    for r in G:
        assert sum(1 for w in G.adj[r] if G.edges[r, w]["kind"] == "global") == h
        assert r == G.nodes[r]["group"] * a + G.nodes[r]["index"]
    assert diameter(G) == (3 if a > 1 else 1)  # local-global-local


def test_dragonfly_global_arrangements_closed_form():
    a, h = 2, 1  # g = 3; router index i of group G owns group port i
    absolute = dragonfly(1, a, h)
    # group 0 port 0 -> group 0+1 = 1, which reaches group 0 through its port 0 (router 2)
    assert set(map(frozenset, global_links(absolute))) == {frozenset(e) for e in [(0, 2), (1, 4), (3, 5)]}
    palm = dragonfly(1, a, h, arrangement="palmtree")
    # group G port o -> group (G - o - 1) mod 3; group 0 port 0 -> group 2, which uses port 1 (router 5)
    assert set(map(frozenset, global_links(palm))) == {frozenset(e) for e in [(0, 5), (1, 2), (3, 4)]}


def test_dragonfly_fewer_groups_repeats_links_per_pair():
    G = validate(dragonfly(1, 4, 2, g=5))  # a*h = 8 ports per group, 2 links to each of 4 other groups
    glob = global_links(G)
    assert len(glob) == 2 * 5 * 4 // 2
    assert all(sum(1 for w in G.adj[r] if G.edges[r, w]["kind"] == "global") == 2 for r in G)
    assert diameter(G) <= 3


def test_dragonfly_global_latency_and_errors():
    G = dragonfly(1, 2, 1, latency=2, global_latency=10, global_width=4)
    assert {(d["kind"], d["latency"], d["width"]) for _, _, d in G.edges(data=True)} == {
        ("local", 2, 1),
        ("global", 10, 4),
    }
    with pytest.raises(ConfigError, match=r"^g: expected at most a\*h\+1 = 3 groups, found 4$"):
        dragonfly(1, 2, 1, g=4)
    with pytest.raises(ConfigError, match=r"^g: .*two global links between routers 0 and 1$"):
        dragonfly(1, 1, 3, g=2)
    with pytest.raises(ConfigError, match=r"^arrangement: expected one of 'absolute', 'palmtree'"):
        dragonfly(1, 2, 1, arrangement="random")
    with pytest.raises(ConfigError, match=r"^global_latency: expected an integer >= 1, found 0$"):
        dragonfly(1, 2, 1, global_latency=0)


# -- explicit, helpers and argument errors ----------------------------------------------------------
def test_explicit_graph_and_link_overrides():
    G = validate(explicit(3, [[0, 1], {"a": 1, "b": 2, "latency": 3}], latency=2, width=4))
    assert G.edges[0, 1]["latency"] == 2 and G.edges[1, 2]["latency"] == 3
    assert G.edges[1, 2]["width"] == 4
    assert G.graph["terminals"] == [0, 1, 2]
    assert hops(G, 0, 2) == 2
    assert explicit(2, [[0, 1]], terminals=[1, 1, 0]).graph["terminals"] == [1, 1, 0]


def test_port_map_is_sorted_neighbours():
    G = torus(4)
    assert port_map(G, 0) == [1, 3, 4, 12]
    assert port_map(G, 5) == sorted(G.adj[5])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mesh(1), "k: expected an integer >= 2, found 1"),
        (lambda: mesh(4, 0), "n: expected an integer >= 1, found 0"),
        (lambda: mesh(4.0), "k: expected an integer >= 2 or a list of them, found 4.0"),
        (lambda: torus([4, 1]), "k[1]: expected an integer >= 2, found 1"),
        (lambda: torus([4, 4], n=3), "n: expected n = len(k) = 2 (or n omitted), found 3"),
        (lambda: ring(True), "k: expected an integer >= 2, found True"),
        (lambda: mesh(3, p=0), "p: expected an integer >= 1, found 0"),
        (lambda: mesh(3, latency=0), "latency: expected an integer >= 1, found 0"),
        (lambda: fully_connected(4, width=1.5), "width: expected an integer >= 1, found 1.5"),
        (lambda: fat_tree(5), "k: expected an even number of switch ports, found 5"),
        (lambda: tree(1, 3), "radix: expected an integer >= 2, found 1"),
        (lambda: explicit(2, [[0, 2]]), "links[0][1]: expected a node id in 0..1, found 2"),
        (lambda: explicit(2, [[0, 1]], terminals=[3]), "terminals[0]: expected a node id in 0..1, found 3"),
    ],
)
def test_generator_argument_errors_name_the_argument(call, message):
    with pytest.raises(ConfigError) as exc:
        call()
    assert str(exc.value) == message
