"""Turn a device name (preset, registered kind or TOML file) plus overrides into a built device.

A device TOML file looks like::

    [device]
    kind = "hbf"            # a registered memory kind (see `memwall describe memory`)
    preset = "hbf-gen1"     # optional starting point
    [device.params]
    tR = "15us"             # any parameter of that kind, with units
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.core.errors import ConfigError
from sim.core.params import ParamSet
from sim.core.preset import get_preset
from sim.core.registry import lookup, names
from sim.core.simulation import Simulation
from sim.core.tomlfile import read_toml
from sim.memory.device import MemoryDevice


@dataclass(frozen=True)
class DeviceSpec:
    """A fully resolved device: its label, class, parameters and where each value came from."""

    label: str
    cls: type[MemoryDevice]
    params: ParamSet
    sources: Mapping[str, str] = field(default_factory=dict)

    def build(self, sim: Simulation, name: str = "device") -> MemoryDevice:
        return self.cls(sim, name, params=self.params)

    def resolved(self) -> dict[str, Any]:
        """What gets written beside results: kind, label, every parameter in internal units."""
        return {
            "label": self.label,
            "kind": self.cls.registered_name,  # type: ignore[attr-defined]
            "params": self.params.as_dict(),
            "sources": dict(self.sources),
        }


def resolve_device(
    spec: str,
    overrides: Mapping[str, Any] | None = None,
    fidelity: str | None = None,
) -> DeviceSpec:
    """Resolve ``spec`` (TOML path, preset name or memory kind) with overrides applied last."""
    overrides = dict(overrides or {})
    if fidelity is not None:
        overrides["fidelity"] = fidelity
    if spec.endswith(".toml") or Path(spec).is_file():
        return _from_toml(Path(spec), overrides)
    if spec in names("preset"):
        preset = get_preset(spec)
        cls = lookup("memory", preset.kind)
        params = preset.params(cls.Params, overrides, where="--set")
        return DeviceSpec(spec, cls, params, preset.sources())
    if spec in names("memory"):
        cls = lookup("memory", spec)
        params = cls.Params().replace(overrides, where="--set") if overrides else cls.Params()
        return DeviceSpec(spec, cls, params, {})
    choices = ", ".join(names("preset") + names("memory"))
    raise ConfigError(
        f"unknown device {spec!r}; expected a preset or memory kind ({choices}) or a .toml file",
        where="--device",
    )


def _from_toml(path: Path, overrides: Mapping[str, Any]) -> DeviceSpec:
    where = str(path)
    data = read_toml(path)
    device = data.get("device")
    if not isinstance(device, dict):
        raise ConfigError("expected a [device] table", where=where)
    allowed = {"kind", "preset", "name", "params"}
    for key in device:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {key!r}; expected one of: {', '.join(sorted(allowed))}",
                where=f"{where}: device.{key}",
            )
    preset = None
    if "preset" in device:
        try:
            preset = get_preset(str(device["preset"]))
        except ConfigError as exc:
            raise exc.at(f"{where}: device.preset") from None
        except Exception as exc:
            raise ConfigError(str(exc), where=f"{where}: device.preset") from None
    kind = device.get("kind", preset.kind if preset else None)
    if not isinstance(kind, str):
        raise ConfigError("expected kind = a memory kind name", where=f"{where}: device.kind")
    if preset and preset.kind != kind:
        raise ConfigError(
            f"preset {preset.name!r} is for kind {preset.kind!r}, not {kind!r}",
            where=f"{where}: device.preset",
        )
    try:
        cls = lookup("memory", kind)
    except Exception as exc:
        raise ConfigError(str(exc), where=f"{where}: device.kind") from None
    values = device.get("params", {})
    if not isinstance(values, dict):
        raise ConfigError("expected a [device.params] table", where=f"{where}: device.params")
    base = preset.raw_values() if preset else {}
    params = cls.Params.from_mapping({**base, **values}, where=f"{where}: device.params")
    if overrides:
        params = params.replace(overrides, where="--set")
    sources = dict(preset.sources()) if preset else {}
    sources.update({k: f"{where}" for k in values})
    label = str(device.get("name", path.stem))
    return DeviceSpec(label, cls, params, sources)
