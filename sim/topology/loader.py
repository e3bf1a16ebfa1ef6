"""Build a topology graph from a TOML file or mapping, and write one back as a mapping.

A topology file holds one ``[topology]`` table (schema in ``topologies/README.md``)::

    [topology]
    kind = "mesh"        # any registered topology generator, or "explicit"
    k = 4                # the generator's arguments
    n = 2
    [topology.link]      # optional: latency / width of every link
    latency = 2
    width = 1

The table may also carry ``name`` and ``description`` strings (stored as graph attributes). Every
other key must be an argument of the generator; unknown keys, missing arguments, bad values and
unknown kinds are :class:`~sim.core.errors.ConfigError` lines naming the file and key path, e.g.
``mesh8.toml: topology.links[3].b: expected a node id in 0..3, found 7``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx

import sim.topology.generators  # noqa: F401  (registers the built-in generators)
from sim.core.errors import ConfigError, RegistryError
from sim.core.registry import REGISTRY, lookup
from sim.core.tomlfile import read_toml
from sim.topology.size import check_network, check_topology_size
from sim.topology.validate import key_path, validate

TABLE_KEYS = ("kind", "link", "name", "description")
LINK_KEYS = ("latency", "width")


def load_topology(path: str | Path, *, max_radix: int | None = None) -> nx.Graph:
    """Read, build and validate the topology in ``path`` (a file holding one ``[topology]`` table)."""
    path = Path(path)
    where = str(path)
    data = read_toml(path)
    for key in data:
        if key != "topology":
            raise ConfigError(f"unknown table {key!r}; expected only [topology]", where=key_path(where, key))
    if "topology" not in data:
        raise ConfigError("expected a [topology] table, found none", where=where)
    G = topology_from_mapping(data["topology"], where=key_path(where, "topology"), max_radix=max_radix)
    G.graph.setdefault("name", path.stem)
    return G


def topology_from_mapping(data: Any, where: str = "topology", *, max_radix: int | None = None) -> nx.Graph:
    """Build and validate a topology from the contents of a ``[topology]`` table.

    ``where`` locates the table (``"system.toml: topology"``) and prefixes every error.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a table, found {data!r}", where=where)
    kind = data.get("kind")
    gen = generator(kind, where=key_path(where, "kind"))
    params = inspect.signature(gen).parameters.values()
    accepted = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    names = {p.name for p in accepted}
    args: dict[str, Any] = {}
    origin: dict[str, str] = {}  # argument -> key path it came from
    link = data.get("link", {})
    if not isinstance(link, Mapping):
        raise ConfigError(f"expected a [topology.link] table, found {link!r}", where=key_path(where, "link"))
    for key, value in link.items():
        if key not in LINK_KEYS or key not in names:
            expected = ", ".join(k for k in LINK_KEYS if k in names)
            raise ConfigError(
                f"unknown key {key!r}; expected one of: {expected}", where=key_path(where, f"link.{key}")
            )
        args[key], origin[key] = value, f"link.{key}"
    for key, value in data.items():
        if key in TABLE_KEYS:
            continue
        if key not in names:
            expected = ", ".join(sorted(names | set(TABLE_KEYS)))
            raise ConfigError(
                f"unknown key {key!r} for kind {kind!r}; expected one of: {expected}",
                where=key_path(where, key),
            )
        if key in args:
            raise ConfigError(f"{key} is given here and in [topology.link]", where=key_path(where, key))
        args[key], origin[key] = value, key
    for p in accepted:
        if p.default is p.empty and p.name not in args:
            raise ConfigError(f"kind {kind!r} needs {p.name}, found nothing", where=key_path(where, p.name))
    check_topology_size({"kind": kind, **args}, where=where)  # before building: no huge graph
    try:
        G = gen(**args)
    except ConfigError as exc:
        inner = exc.where or ""
        head = re.match(r"\w*", inner).group()  # type: ignore[union-attr]
        located = key_path(where, origin.get(head, head) + inner[len(head) :]) if inner else where
        raise ConfigError(exc.message, where=located) from None
    for key in ("name", "description"):
        if key in data:
            if not isinstance(data[key], str):
                raise ConfigError(f"expected a string, found {data[key]!r}", where=key_path(where, key))
            G.graph[key] = data[key]
    check_network(G, where=where)
    return validate(G, where=where, max_radix=max_radix)


def generator(kind: Any, *, where: str | None = None) -> Callable[..., nx.Graph]:
    """The generator registered as ``kind`` (built-ins, then plugins); ConfigError if unknown."""
    table = REGISTRY.entries.get("topology", {})
    if isinstance(kind, str):
        if kind in table:
            return table[kind]
        try:
            return lookup("topology", kind)  # loads plugins
        except (RegistryError, ImportError):
            # ImportError: a built-in module of another package failed to import; every topology
            # generator of memwall is registered already, so report the kind as unknown instead.
            pass
    found = "nothing" if kind is None else repr(kind)
    raise ConfigError(f"expected kind = one of: {', '.join(sorted(table))}, found {found}", where=where)


def to_mapping(G: nx.Graph) -> dict[str, Any]:
    """The ``[topology]`` table that rebuilds ``G``: its kind and resolved generator arguments."""
    return {"kind": G.graph["kind"], **_plain(G.graph["params"])}


def to_explicit(G: nx.Graph) -> dict[str, Any]:
    """``G`` as an ``explicit`` topology table: node count, terminals and every link."""
    return {
        "kind": "explicit",
        "nodes": G.number_of_nodes(),
        "terminals": list(G.graph["terminals"]),
        "links": [
            {"a": u, "b": v, "latency": attrs["latency"], "width": attrs["width"]}
            for u, v, attrs in sorted((min(u, v), max(u, v), d) for u, v, d in G.edges(data=True))
        ],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
