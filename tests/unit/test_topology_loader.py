"""Topology TOML loader: the shipped examples, one-line errors naming file and key, round trips."""

import math
from pathlib import Path

import pytest

from sim.core.errors import ConfigError
from sim.core.registry import REGISTRY
from sim.core.tomlfile import read_toml
from sim.topology.generators import mesh
from sim.topology.graph import diameter
from sim.topology.loader import load_topology, to_explicit, to_mapping, topology_from_mapping

EXAMPLES = Path(__file__).resolve().parents[2] / "topologies"


def test_every_builtin_generator_is_registered():
    assert set(REGISTRY.entries["topology"]) >= {
        "mesh", "torus", "ring", "fully_connected", "tree", "fat_tree", "dragonfly", "explicit",
    }  # fmt: skip


# -- the shipped examples ----------------------------------------------------------------------------
# kind, routers, terminals, links, diameter: closed forms for each file's parameters
EXPECTED = {
    "mesh8x8": ("mesh", 8**2, 8**2, 2 * 8 * 7, 2 * 7),
    "torus4x4": ("torus", 4**2, 4**2, 2 * 4**2, 2 * 2),
    "ring8": ("ring", 8, 8, 8, 4),
    "fc8": ("fully_connected", 8, 8, 8 * 7 // 2, 1),
    "fattree4": ("fat_tree", 5 * 4**2 // 4, 4**3 // 4, 4**3 // 2, 4),
    "tree4x3": ("tree", 1 + 4 + 16, 4**3, 20, 4),
    "dragonfly-small": ("dragonfly", 4 * 9, 2 * 4 * 9, 9 * 4 * 3 // 2 + 9 * 8 // 2, 3),
    "explicit-square": ("explicit", 4, 4, 5, 2),
}


def test_every_example_file_is_listed():
    """Every topology file in topologies/ is checked below (system files there have their own tests)."""
    topology_files = {p.stem for p in EXAMPLES.glob("*.toml") if "system" not in read_toml(p)}
    assert topology_files == set(EXPECTED)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_example_loads_and_validates(stem):
    G = load_topology(EXAMPLES / f"{stem}.toml")
    kind, routers, terminals, links, diam = EXPECTED[stem]
    assert G.graph["kind"] == kind and G.graph["name"] == stem
    assert (G.number_of_nodes(), len(G.graph["terminals"]), G.number_of_edges()) == (
        routers,
        terminals,
        links,
    )
    assert diameter(G) == diam
    assert isinstance(G.graph["description"], str)


def test_link_table_and_per_link_overrides(tmp_path):
    G = load_topology(EXAMPLES / "explicit-square.toml")
    assert G.edges[0, 2]["latency"] == 3 and G.edges[0, 1]["latency"] == 1
    f = tmp_path / "m.toml"
    f.write_text('[topology]\nkind = "mesh"\nk = [2, 3]\n[topology.link]\nlatency = 4\nwidth = 2\n')
    G = load_topology(f)
    assert G.graph["shape"] == (2, 3)
    assert {(d["latency"], d["width"]) for _, _, d in G.edges(data=True)} == {(4, 2)}
    f.write_text('[topology]\nkind = "ring"\nk = 4\nlatency = 3\n')
    assert {d for _, _, d in load_topology(f).edges(data="latency")} == {3}


# -- errors -----------------------------------------------------------------------------------------
T = "[topology]\n"
BAD = [
    ("malformed", "[topology\nkind = 1\n", r"malformed TOML: .*line 1"),
    ("no-table", "[device]\nkind = 'hbf'\n", r"device: unknown table 'device'; expected only \[topology\]"),
    ("empty", "", r"expected a \[topology\] table, found none"),
    ("no-kind", T + "k = 4\n", r"topology\.kind: expected kind = one of: .*mesh.*, found nothing"),
    ("kind-type", T + "kind = 4\n", r"topology\.kind: expected kind = one of: .*, found 4"),
    (
        "unknown-kind",
        T + 'kind = "hypercube"\n',
        r"topology\.kind: expected kind = one of: dragonfly, explicit, fat_tree, .*found 'hypercube'",
    ),
    (
        "unknown-key",
        T + 'kind = "mesh"\nk = 4\nradix = 4\n',
        r"topology\.radix: unknown key 'radix' for kind 'mesh'; expected one of: description, k, kind, "
        r"latency, link, n, name, p, width",
    ),
    ("missing-arg", T + 'kind = "dragonfly"\np = 1\na = 2\n', r"topology\.h: kind 'dragonfly' needs h"),
    (
        "bad-type",
        T + 'kind = "mesh"\nk = "four"\n',
        r"topology\.k: expected an integer >= 2 or a list of them, found 'four'",
    ),
    ("bad-radix", T + 'kind = "torus"\nk = [4, 1]\n', r"topology\.k\[1\]: expected an integer >= 2, found 1"),
    (
        "zero-latency",
        T + 'kind = "mesh"\nk = 4\n[topology.link]\nlatency = 0\n',
        r"topology\.link\.latency: expected an integer >= 1, found 0",
    ),
    (
        "link-key",
        T + 'kind = "mesh"\nk = 4\n[topology.link]\nbandwidth = 2\n',
        r"topology\.link\.bandwidth: unknown key 'bandwidth'; expected one of: latency, width",
    ),
    (
        "twice",
        T + 'kind = "mesh"\nk = 4\nwidth = 2\n[topology.link]\nwidth = 2\n',
        r"topology\.width: width is given here and in \[topology\.link\]",
    ),
    (
        "bad-node",
        T + 'kind = "explicit"\nnodes = 4\nlinks = [[0, 1], [1, 2], [2, 3], {a = 3, b = 7}]\n',
        r"topology\.links\[3\]\.b: expected a node id in 0\.\.3, found 7",
    ),
    (
        "bad-pair",
        T + 'kind = "explicit"\nnodes = 2\nlinks = [[0, -1]]\n',
        r"topology\.links\[0\]\[1\]: expected a node id in 0\.\.1, found -1",
    ),
    (
        "link-zero-latency",
        T + 'kind = "explicit"\nnodes = 2\nlinks = [{a = 0, b = 1, latency = 0}]\n',
        r"topology\.links\[0\]\.latency: expected an integer >= 1, found 0",
    ),
    (
        "link-unknown",
        T + 'kind = "explicit"\nnodes = 2\nlinks = [{a = 0, b = 1, lat = 2}]\n',
        r"topology\.links\[0\]\.lat: unknown key 'lat'; expected one of: a, b, latency, width",
    ),
    (
        "link-missing-end",
        T + 'kind = "explicit"\nnodes = 2\nlinks = [{a = 0}]\n',
        r"topology\.links\[0\]\.b: expected a node id, found nothing",
    ),
    (
        "link-shape",
        T + 'kind = "explicit"\nnodes = 3\nlinks = [[0, 1, 2]]\n',
        r"topology\.links\[0\]: expected \[a, b\] or \{a = \.\., b = \.\.\}, found \[0, 1, 2\]",
    ),
    (
        "self-loop",
        T + 'kind = "explicit"\nnodes = 2\nlinks = [[0, 1], [1, 1]]\n',
        r"topology\.links\[1\]: expected two different nodes, found a link from 1 to itself",
    ),
    (
        "duplicate",
        T + 'kind = "explicit"\nnodes = 2\nlinks = [[0, 1], {a = 1, b = 0}]\n',
        r"topology\.links\[1\]: expected each pair of nodes linked at most once, found 0-1 again "
        r"\(first at links\[0\]\)",
    ),
    (
        "disconnected",
        T + 'kind = "explicit"\nnodes = 4\nlinks = [[0, 1], [2, 3]]\n',
        r"topology: expected a connected graph, found 2 components: \{0, 1\}; \{2, 3\}",
    ),
    (
        "bad-terminal",
        T + 'kind = "explicit"\nnodes = 2\nterminals = [0, 5]\nlinks = [[0, 1]]\n',
        r"topology\.terminals\[1\]: expected a node id in 0\.\.1, found 5",
    ),
    ("name-type", T + 'kind = "ring"\nk = 4\nname = 3\n', r"topology\.name: expected a string, found 3"),
    (
        "odd-fat-tree",
        T + 'kind = "fat_tree"\nk = 3\n',
        r"topology\.k: expected an even number of switch ports, found 3",
    ),
]


@pytest.mark.parametrize(("stem", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_files_give_one_line_errors_naming_file_and_key(tmp_path, stem, text, message):
    path = tmp_path / f"{stem}.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_topology(path)
    line = str(exc.value)
    assert "\n" not in line
    assert line.startswith(f"{path}: ")
    assert exc.match(message)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_topology(tmp_path / "nope.toml")


def test_max_radix(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[topology]\nkind = "torus"\nk = 4\n')
    assert load_topology(path, max_radix=5).number_of_nodes() == 16
    with pytest.raises(ConfigError, match=r"t\.toml: topology: router 0: expected at most 4 ports, found 5 "):
        load_topology(path, max_radix=4)


def test_from_mapping_default_where_and_embedding():
    with pytest.raises(ConfigError, match=r"^topology\.k: expected an integer >= 2, found 1$"):
        topology_from_mapping({"kind": "ring", "k": 1})
    with pytest.raises(ConfigError, match=r"^sys\.toml: topology\.kind: "):
        topology_from_mapping({"kind": "nope"}, where="sys.toml: topology")
    with pytest.raises(ConfigError, match=r"^topology: expected a table, found 3$"):
        topology_from_mapping(3)


# -- round trips ----------------------------------------------------------------------------------
def same_graph(G, H):
    assert dict(G.nodes(data=True)) == dict(H.nodes(data=True))
    assert {frozenset((u, v)): d for u, v, d in G.edges(data=True)} == {
        frozenset((u, v)): d for u, v, d in H.edges(data=True)
    }
    assert G.graph["terminals"] == H.graph["terminals"]


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_to_mapping_and_to_explicit_rebuild_the_graph(stem):
    G = load_topology(EXAMPLES / f"{stem}.toml")
    H = topology_from_mapping(to_mapping(G))
    same_graph(G, H)
    assert H.graph["params"] == G.graph["params"]
    E = topology_from_mapping(to_explicit(G))
    assert set(E.edges) == set(G.edges) and E.graph["terminals"] == G.graph["terminals"]
    for u, v in G.edges:
        assert (E.edges[u, v]["latency"], E.edges[u, v]["width"]) == (
            G.edges[u, v]["latency"],
            G.edges[u, v]["width"],
        )


def test_params_are_resolved():
    G = load_topology(EXAMPLES / "dragonfly-small.toml")
    assert G.graph["params"]["g"] == 4 * 2 + 1
    assert G.graph["params"]["global_latency"] == G.graph["params"]["latency"] == 1
    assert mesh([3, 3]).graph["params"] == {"k": [3, 3], "n": 2, "p": 1, "latency": 1, "width": 1}
    assert math.prod(mesh([3, 3]).graph["shape"]) == 9
