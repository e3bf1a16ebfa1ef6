"""System descriptions: chips (a compute die, named memories, optional near-memory MAC units) on a
fabric, read from TOML.

Schema (every key is checked; unknown keys are errors naming the file and key path)::

    [system]
    name = "gpu-hbm"                # label in results (default: file name)
    description = "..."
    chips = 8                       # identical chips

    [chip.compute]                  # ComputeDie parameters (memwall describe die)
    peak_bf16 = "989TFLOPS"

    [chip.memory.hbm]               # a memory named "hbm" on every chip
    preset = "hbm3"                 # a memory preset, or kind = a registered memory kind
    stacks = 5                      # identical devices (stacks) that interleave the memory
    static_power = "0W"             # optional: background power per stack
    [chip.memory.hbm.params]        # device parameter overrides (units accepted)
    tsv_rate = "5.24Gb/s"
    [chip.memory.hbm.near_memory]   # optional: MAC units beside this memory (NearMemoryParams)
    units = 32
    [chip.memory.hbm.prefetch]      # optional: a weight-prefetch buffer (PrefetchBufferParams);
    window = "8MiB"                 # flash kinds get one by default, enabled = false removes it
    buffer = "die"                  # its SRAM: "memory" (controller_sram) or "die" (chip.compute.sram)

    [fabric]                        # NetworkParams + fidelity; the topology's terminals are chips
    fidelity = "message"
    flit_bytes = "256B"
    [fabric.topology]               # a [topology] table (see topologies/README.md)
    kind = "fully_connected"
    k = 8
    [fabric.router]                 # RouterParams
    vcs = 2

    [mapping]                       # defaults for the mapping (overridable per run)
    tp = 8
    weights = "hbm"
    kv = "hbm"

    [batching]                      # a registered batching policy and its parameters
    policy = "continuous"
    max_batch = 64

``[mapping]``, ``[batching]`` and the optional ``[disaggregation]`` (a prefill and a decode pool,
:class:`sim.serving.disagg.DisaggParams`) are kept as raw tables here and validated by their owners
(:mod:`sim.serving.mapping`, :mod:`sim.serving.batching`, :mod:`sim.experiments.disagg`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from sim.compute.die import ComputeDieParams
from sim.compute.nearmem import NearMemoryParams
from sim.core.errors import CapacityError, ConfigError, MemwallError, join_where
from sim.core.params import ParamSet
from sim.core.preset import get_preset, preset_values
from sim.core.registry import lookup, names
from sim.core.tomlfile import read_toml
from sim.core.units import TIME, UnitError, format_size, parse_power
from sim.fabric.network import NetworkParams
from sim.fabric.router import RouterParams
from sim.memory.device import MemoryDevice
from sim.memory.prefetch import PrefetchBufferParams
from sim.system.software import SoftwareParams, software_params

FABRIC_FIDELITIES = ("message", "flit", "analytic")


@dataclass(frozen=True)
class MemorySpec:
    """One named memory of a chip: a device kind with resolved params, times ``stacks``, and the
    parts it owns (a prefetch buffer, near-memory MAC units)."""

    name: str
    cls: type[MemoryDevice]
    params: ParamSet
    stacks: int
    preset: str | None
    near_memory: NearMemoryParams | None
    static_power_w: float = 0.0  # per stack: background / refresh-idle power not counted by events
    prefetch: PrefetchBufferParams | None = None

    @property
    def kind(self) -> str:
        return self.cls.registered_name  # type: ignore[attr-defined]

    def device_capacity(self) -> int:
        """Capacity of one stack, from its parameters."""
        return self.cls.capacity_of(self.params)

    def capacity_bytes(self) -> int:
        return self.stacks * self.device_capacity()

    def peak_bandwidth_Bps(self) -> float:
        return self.stacks * self.cls.peak_bandwidth_of(self.params)

    def prefetch_buffer_bytes(self) -> int:
        """SRAM the prefetch buffer of all stacks takes (0 without one)."""
        return self.stacks * self.prefetch.window if self.prefetch is not None else 0


@dataclass(frozen=True)
class SystemSpec:
    """A resolved system: what ``build_system`` elaborates and what results record."""

    name: str
    description: str
    chips: int
    compute: ComputeDieParams
    memories: dict[str, MemorySpec]
    topology: nx.Graph
    network: NetworkParams
    router: RouterParams
    fabric_fidelity: str
    mapping: dict[str, Any] = field(default_factory=dict)
    batching: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    software: SoftwareParams = field(default_factory=SoftwareParams)
    collective_launch: dict[int, int] = field(default_factory=dict)  # group size -> ps per collective
    disaggregation: dict[str, Any] = field(default_factory=dict)  # raw [disaggregation] table, if any
    transfer_launch: int = 0  # ps before a point-to-point transfer (pipeline stages)

    def prefetch_buffers(self, where: str | None = None) -> dict[str, tuple[int, int]]:
        """SRAM the prefetch buffers take per chip, ``{sram: (used, total)}``; CapacityError if they do
        not fit. A buffer on the compute die counts against ``chip.compute.sram`` (shared by every
        memory's die-side buffer); one on a memory counts against that memory's ``controller_sram``."""
        where = self.source if where is None else where
        out: dict[str, tuple[int, int]] = {}
        die_used = 0
        for name, mem in self.memories.items():
            pf = mem.prefetch
            if pf is None:
                continue
            key = join_where(where, f"chip.memory.{name}.prefetch.window")
            if pf.buffer == "die":
                die_used += mem.prefetch_buffer_bytes()
                if die_used > self.compute.sram:
                    raise CapacityError(
                        f"prefetch buffers on the compute die need {format_size(die_used)} per chip "
                        f"({format_size(pf.window)} x {mem.stacks} stacks of memory {name!r} included), "
                        f"more than chip.compute.sram = {format_size(self.compute.sram)}; shrink the window "
                        "or put the buffer on the memory (buffer = 'memory')",
                        where=key,
                    )
                continue
            room = mem.params.controller_sram  # type: ignore[attr-defined]
            if pf.window > room:
                raise CapacityError(
                    f"a {format_size(pf.window)} prefetch window per stack does not fit the controller "
                    f"SRAM of memory {name!r} ({format_size(room)} per stack); shrink the window, raise "
                    f"chip.memory.{name}.controller_sram, put the buffer on the die (buffer = 'die') or "
                    "turn it off (enabled = false)",
                    where=key,
                )
            out[f"{name}.controller_sram"] = (mem.prefetch_buffer_bytes(), mem.stacks * room)
        if die_used:
            out["sram"] = (die_used, self.compute.sram)
        return out

    def resolved(self) -> dict[str, Any]:
        """Everything in internal units, for the resolved configuration written beside results."""
        return {
            "name": self.name,
            "description": self.description,
            "chips": self.chips,
            "compute": self.compute.as_dict(),
            "memories": {
                n: {
                    "kind": m.kind,
                    "preset": m.preset,
                    "stacks": m.stacks,
                    "capacity_bytes": m.capacity_bytes(),
                    "peak_bandwidth_Bps": m.peak_bandwidth_Bps(),
                    "params": m.params.as_dict(),
                    "near_memory": m.near_memory.as_dict() if m.near_memory else None,
                    "prefetch": m.prefetch.as_dict() if m.prefetch else None,
                }
                for n, m in self.memories.items()
            },
            "fabric": {
                "fidelity": self.fabric_fidelity,
                "collective_launch": dict(self.collective_launch),
                "transfer_launch": self.transfer_launch,
                "topology": self.topology.graph.get("kind"),
                "network": self.network.as_dict(),
                "router": self.router.as_dict(),
            },
            "mapping": dict(self.mapping),
            "batching": dict(self.batching),
            "cost": dict(self.cost),
            "software": self.software.as_dict(),
            "source": self.source,
            **({"disaggregation": dict(self.disaggregation)} if self.disaggregation else {}),
        }


TOP_KEYS = {"system", "chip", "fabric", "mapping", "batching", "cost", "software", "disaggregation"}
SYSTEM_KEYS = {"name", "description", "chips"}
MEMORY_KEYS = {"preset", "kind", "stacks", "params", "near_memory", "static_power", "prefetch"}
FABRIC_KEYS = {"fidelity", "topology", "router", "collective_launch", "transfer_launch"}


def _unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {key!r}; expected one of: {', '.join(sorted(allowed))}",
                where=join_where(where, key),
            )


def _table(data: Mapping[str, Any], key: str, where: str, required: bool = False) -> dict[str, Any]:
    value = data.get(key, None)
    if value is None:
        if required:
            raise ConfigError(f"expected a [{key}] table, found none", where=where)
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a table, found {value!r}", where=join_where(where, key))
    return dict(value)


def _memory(name: str, table: Mapping[str, Any], where: str) -> MemorySpec:
    _unknown(table, MEMORY_KEYS, where)
    preset_name = table.get("preset")
    preset = None
    if preset_name is not None:
        try:
            preset = get_preset(str(preset_name))
        except MemwallError as exc:
            raise ConfigError(exc.message, where=join_where(where, "preset")) from None
    kind = table.get("kind", preset.kind if preset else None)
    if not isinstance(kind, str) or kind not in names("memory"):
        raise ConfigError(
            f"expected kind = one of {', '.join(names('memory'))} (or a preset), found {kind!r}",
            where=join_where(where, "kind"),
        )
    if preset is not None and preset.kind != kind:
        raise ConfigError(
            f"preset {preset.name!r} is for kind {preset.kind!r}, not {kind!r}",
            where=join_where(where, "preset"),
        )
    cls = lookup("memory", kind)
    overrides = _table(table, "params", where)
    base = preset.raw_values() if preset else {}
    params = cls.Params.from_mapping({**base, **overrides}, where=join_where(where, "params"))
    stacks = table.get("stacks", 1)
    if isinstance(stacks, bool) or not isinstance(stacks, int) or stacks < 1:
        raise ConfigError(
            f"expected a whole number >= 1, found {stacks!r}", where=join_where(where, "stacks")
        )
    near = table.get("near_memory")
    near_params = None
    if near is not None:
        if not isinstance(near, Mapping):
            raise ConfigError(f"expected a table, found {near!r}", where=join_where(where, "near_memory"))
        near_params = NearMemoryParams.from_mapping(near, where=join_where(where, "near_memory"))
    prefetch = _prefetch(cls, params, table.get("prefetch"), join_where(where, "prefetch"))
    try:
        static = parse_power(table.get("static_power", 0))
    except UnitError as exc:
        raise ConfigError(str(exc), where=join_where(where, "static_power")) from None
    if static < 0:
        raise ConfigError(f"expected a power >= 0, found {static}", where=join_where(where, "static_power"))
    return MemorySpec(
        name, cls, params, stacks, preset.name if preset else None, near_params, static, prefetch
    )


def _prefetch(
    cls: type[MemoryDevice], params: ParamSet, table: Any, where: str
) -> PrefetchBufferParams | None:
    """The memory's prefetch buffer: its ``prefetch`` table; without one, the kind's default buffer
    when the kind takes one and its controller SRAM holds the default window (else none)."""
    if table is None:
        if not cls.takes_prefetcher:
            return None
        default = PrefetchBufferParams()
        fits = default.window <= getattr(params, "controller_sram", 0)
        return default if fits else None
    if not isinstance(table, Mapping):
        raise ConfigError(f"expected a table, found {table!r}", where=where)
    params = PrefetchBufferParams.from_mapping(table, where=where)
    return params if params.enabled else None


def _compute(table: dict[str, Any], where: str) -> ComputeDieParams:
    """The compute die: a ``preset`` (``h100-sxm``, ``a100-sxm``...) with overrides, or plain values."""
    name = table.pop("preset", None)
    base = preset_values(name, "die", "a compute die", where) if name is not None else {}
    return ComputeDieParams.from_mapping({**base, **table}, where=where)


def launch_for(table: Mapping[int, Any], ranks: int) -> Any:
    """The launch latency of a group of ``ranks`` from a table by group size: the entry of the largest
    listed group not larger (the smallest listed for smaller groups); 0 for an empty table."""
    if not table:
        return 0
    fitting = [p for p in table if p <= ranks]
    return table[max(fitting)] if fitting else table[min(table)]


def _time(value: Any, where: str) -> int:
    try:
        ps = TIME.parse(value)
    except UnitError as exc:
        raise ConfigError(str(exc), where=where) from None
    if ps < 0:
        raise ConfigError(f"expected a time >= 0, found {value!r}", where=where)
    return int(ps)


def _launches(table: dict[str, Any], where: str) -> dict[int, int]:
    """``[fabric.collective_launch]``: the time a collective costs before its first transfer (library
    and kernel launch, synchronisation), by group size: ``2 = "30.9us"``."""
    out: dict[int, int] = {}
    for key, value in table.items():
        if not str(key).isdigit() or int(key) < 2:
            raise ConfigError(
                f"expected a group size (a whole number >= 2), found {key!r}",
                where=join_where(where, str(key)),
            )
        out[int(key)] = _time(value, join_where(where, str(key)))
    return dict(sorted(out.items()))


def _software(value: Any, where: str) -> SoftwareParams:
    """``[software]``: a table (``preset`` + overrides), or a bare preset name (``--set software=none``)."""
    if value is None:
        return software_params({}, where)
    if isinstance(value, str):
        return software_params({"preset": value}, where)
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a table or a preset name, found {value!r}", where=where)
    return software_params(dict(value), where)


def system_from_mapping(data: Mapping[str, Any], where: str = "system") -> SystemSpec:
    """Build a :class:`SystemSpec` from parsed TOML (``where`` prefixes every error)."""
    from sim.topology import topology_from_mapping

    _unknown(data, TOP_KEYS, where)
    system = _table(data, "system", where, required=True)
    w_sys = join_where(where, "system")
    _unknown(system, SYSTEM_KEYS, w_sys)
    chips = system.get("chips")
    if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
        raise ConfigError(f"expected a whole number >= 1, found {chips!r}", where=join_where(w_sys, "chips"))
    chip = _table(data, "chip", where, required=True)
    w_chip = join_where(where, "chip")
    _unknown(chip, {"compute", "memory"}, w_chip)
    compute = _compute(_table(chip, "compute", w_chip), join_where(w_chip, "compute"))
    mem_tables = _table(chip, "memory", w_chip, required=True)
    if not mem_tables:
        raise ConfigError(
            "expected at least one [chip.memory.NAME] table", where=join_where(w_chip, "memory")
        )
    memories = {}
    for name, table in mem_tables.items():
        w_mem = join_where(w_chip, f"memory.{name}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"expected a table, found {table!r}", where=w_mem)
        memories[name] = _memory(name, table, w_mem)
    fabric = _table(data, "fabric", where)
    w_fab = join_where(where, "fabric")
    router_table = _table(fabric, "router", w_fab)
    topo_table = _table(fabric, "topology", w_fab) or {"kind": "fully_connected", "k": chips}
    fidelity = fabric.get("fidelity", "message")
    if fidelity not in FABRIC_FIDELITIES:
        raise ConfigError(
            f"expected one of {', '.join(FABRIC_FIDELITIES)}, found {fidelity!r}",
            where=join_where(w_fab, "fidelity"),
        )
    net_table = {k: v for k, v in fabric.items() if k not in FABRIC_KEYS}
    network = NetworkParams.from_mapping(net_table, where=w_fab)
    router = RouterParams.from_mapping(router_table, where=join_where(w_fab, "router"))
    topology = topology_from_mapping(topo_table, where=join_where(w_fab, "topology"))
    terminals = len(topology.graph["terminals"])
    if terminals != chips:
        raise ConfigError(
            f"expected a topology with one terminal per chip ({chips}), found {terminals}",
            where=join_where(w_fab, "topology"),
        )
    spec = SystemSpec(
        name=str(system.get("name", "system")),
        description=str(system.get("description", "")),
        chips=chips,
        compute=compute,
        memories=memories,
        topology=topology,
        network=network,
        router=router,
        fabric_fidelity=fidelity,
        mapping=_table(data, "mapping", where),
        batching=_table(data, "batching", where),
        cost=_table(data, "cost", where),
        source=where,
        software=_software(data.get("software"), join_where(where, "software")),
        collective_launch=_launches(
            _table(fabric, "collective_launch", w_fab), join_where(w_fab, "collective_launch")
        ),
        transfer_launch=_time(fabric.get("transfer_launch", 0), join_where(w_fab, "transfer_launch")),
        disaggregation=_table(data, "disaggregation", where),
    )
    spec.prefetch_buffers()  # refuse buffers that do not fit their SRAM, whatever the mapping
    return spec


def system_files() -> dict[str, Path]:
    """Systems shipped in ``topologies/`` (files with a [system] table), by name."""
    from sim.shipped import shipped_dir

    out = {}
    for path in sorted(shipped_dir("topologies").glob("*.toml")):
        try:
            data = read_toml(path)
        except ConfigError:
            continue
        if "system" in data:
            out[path.stem] = path
    return out


def apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any], where: str = "--set"
) -> dict[str, Any]:
    """Set dotted keys (``chip.memory.hbm.params.tRCD=16ns``) in a copy of parsed system TOML.

    ``chip.memory.NAME.KEY`` with a device parameter ``KEY`` is short for ``...NAME.params.KEY``, and
    ``chip.memory.NAME.near_memory.KEY`` / ``fabric.router.KEY`` reach the nested tables. The result
    is validated like the file itself, so a typo names its key path.
    """
    import copy

    out = copy.deepcopy(data)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if parts[:2] == ["chip", "memory"] and len(parts) == 4 and parts[3] not in MEMORY_KEYS:
            parts = [*parts[:3], "params", parts[3]]
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"expected a table at {'.'.join(parts[: i + 1])}, found {child!r}",
                    where=f"{where}.{dotted}",
                )
            node = child
        node[parts[-1]] = value
    return out


def _blame_override(exc: ConfigError, overrides: Mapping[str, Any], path: Path) -> ConfigError:
    """An error at a key that a ``--set`` override wrote is the override's, not the file's."""
    where = exc.where or ""
    inner = where.split(": ", 1)[1] if where.startswith(f"{path}: ") else where
    for key in sorted(overrides, key=len, reverse=True):
        if inner == key or inner.startswith(f"{key}.") or key.startswith(f"{inner}."):
            return ConfigError(exc.message, where=f"--set {key}")
    return exc


def load_system(spec: str, overrides: Mapping[str, Any] | None = None) -> SystemSpec:
    """A system by file path or by the name of a system in ``topologies/``, with dotted overrides."""
    path = Path(spec)
    if not (spec.endswith(".toml") or path.is_file()):
        known = system_files()
        if spec not in known:
            raise ConfigError(
                f"unknown system {spec!r}; expected a .toml file or one of: "
                f"{', '.join(known) or '(none found)'}",
                where="SYSTEM",
            )
        path = known[spec]
    data = read_toml(path)
    if not overrides:
        sys_spec = system_from_mapping(data, where=str(path))
    else:
        try:
            sys_spec = system_from_mapping(apply_overrides(data, overrides), where=str(path))
        except ConfigError as exc:
            raise _blame_override(exc, overrides, path) from None
    if "name" not in data.get("system", {}):
        sys_spec = SystemSpec(**{**sys_spec.__dict__, "name": path.stem})
    return sys_spec
