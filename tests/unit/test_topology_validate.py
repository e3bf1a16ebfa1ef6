"""validate(): every broken part of the graph contract is one clear ConfigError line."""

import networkx as nx
import pytest

from sim.core.errors import ConfigError
from sim.topology.generators import mesh, tree
from sim.topology.validate import key_path, validate


def good():
    G = nx.Graph(kind="explicit", params={}, terminals=[0, 1, 2])
    for v in range(3):
        G.add_node(v, coords=(v,), role="router")
    G.add_edge(0, 1, latency=1, width=1)
    G.add_edge(1, 2, latency=2, width=1)
    return G


def broken(change):
    G = good()
    change(G)
    return G


CASES = [
    (lambda: nx.DiGraph(good()), "expected a simple undirected networkx.Graph, found DiGraph"),
    (lambda: nx.MultiGraph(good()), "expected a simple undirected networkx.Graph, found MultiGraph"),
    (lambda: nx.Graph(terminals=[0]), "expected at least one node, found none"),
    (lambda: nx.relabel_nodes(good(), {2: 5}), r"expected node ids 0\.\.2 \(contiguous integers\), found 5"),
    (lambda: nx.relabel_nodes(good(), {2: "c"}), r"expected node ids 0\.\.2 .*found 'c'"),
    (
        lambda: broken(lambda G: G.add_edge(1, 1, latency=1, width=1)),
        "expected no self-loops, found a link from node 1 to itself",
    ),
    (
        lambda: broken(lambda G: G.edges[1, 2].update(latency=0)),
        "link 1-2: expected latency = an integer >= 1, found 0",
    ),
    (
        lambda: broken(lambda G: G.edges[0, 1].pop("width")),
        "link 0-1: expected width = an integer >= 1, found None",
    ),
    (lambda: broken(lambda G: G.edges[0, 1].update(width=1.0)), "link 0-1: expected width = .*found 1.0"),
    (
        lambda: broken(lambda G: G.graph.pop("terminals")),
        "expected graph attribute 'terminals' = a list of router ids, found None",
    ),
    (lambda: broken(lambda G: G.graph.update(terminals=[])), "expected at least one terminal, found none"),
    (
        lambda: broken(lambda G: G.graph.update(terminals=[0, 3])),
        r"terminal 1: expected a router id in 0\.\.2, found 3",
    ),
    (
        lambda: broken(lambda G: G.remove_edge(1, 2)),
        r"expected a connected graph, found 2 components: \{0, 1\}; \{2\}",
    ),
    (lambda: broken(lambda G: G.graph.update(terminals=[0])), None),
]


@pytest.mark.parametrize(("make", "message"), CASES)
def test_contract_violations(make, message):
    G = make()
    if message is None:
        assert validate(G, where="x.toml: topology") is G
        return
    with pytest.raises(ConfigError) as exc:
        validate(G, where="x.toml: topology")
    assert str(exc.value).startswith("x.toml: topology: ") and "\n" not in str(exc.value)
    exc.match(message)


def test_tree_terminals_only_on_leaves():
    G = tree(2, 2)
    G.graph["terminals"] = [*G.graph["terminals"], 0]
    with pytest.raises(ConfigError, match="terminal 4: expected to attach to a leaf switch, found node 0 "):
        validate(G)


def test_cube_coords_must_encode_the_id():
    G = mesh(3)
    G.nodes[4]["coords"] = (0, 1)
    with pytest.raises(
        ConfigError, match=r"node 4: expected coords encoding id 4 in shape \(3, 3\), found \(0, 1\)"
    ):
        validate(G)


def test_max_radix_counts_links_and_terminals():
    G = mesh(3, p=2)
    assert validate(G, max_radix=6) is G
    with pytest.raises(
        ConfigError, match=r"^router 4: expected at most 5 ports, found 6 \(4 links \+ 2 terminals\)$"
    ):
        validate(G, max_radix=5)


def test_large_disconnected_graph_lists_few_components():
    G = nx.Graph(terminals=[0])
    G.add_nodes_from(range(20))
    with pytest.raises(ConfigError, match=r"found 20 components: \{0\}; \{1\}; \{2\}; \.\.\.$"):
        validate(G)


def test_key_path():
    assert key_path(None, "k") == "k"
    assert key_path("a/f.toml", "topology") == "a/f.toml: topology"
    assert key_path("a/f.toml: topology", "k") == "a/f.toml: topology.k"
    assert key_path("a/f.toml: topology.links", "[3]") == "a/f.toml: topology.links[3]"
