"""Named parameter presets. Every value carries its source; assumptions say so.

A preset is registered under kind ``preset`` by the module that defines it::

    register_preset(Preset(
        name="hbm3", kind="dram3d", description="...",
        values={"channels": (16, "JESD238 HBM3: 16 channels x 64 bit"), ...},
    ))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.core.errors import ConfigError
from sim.core.params import ParamSet
from sim.core.registry import REGISTRY, lookup


@dataclass(frozen=True)
class Preset:
    """A named set of parameter values for one registered component ``kind``."""

    name: str
    kind: str
    description: str
    values: Mapping[str, tuple[Any, str]]

    def __post_init__(self) -> None:
        for key, entry in self.values.items():
            if not (isinstance(entry, tuple) and len(entry) == 2 and str(entry[1]).strip()):
                raise ValueError(f"preset {self.name!r}: {key} needs (value, source)")

    def raw_values(self) -> dict[str, Any]:
        return {key: value for key, (value, _) in self.values.items()}

    def sources(self) -> dict[str, str]:
        return {key: source for key, (_, source) in self.values.items()}

    def params(
        self,
        params_cls: type[ParamSet],
        overrides: Mapping[str, Any] | None = None,
        *,
        where: str | None = None,
    ) -> ParamSet:
        """Resolve to ``params_cls`` with ``overrides`` on top (validated, key paths in errors)."""
        base = params_cls.from_mapping(self.raw_values(), where=f"preset {self.name}")
        if overrides:
            return base.replace(overrides, where=where)
        return base


def register_preset(preset: Preset) -> Preset:
    REGISTRY.add("preset", preset.name, preset)
    return preset


def get_preset(name: str) -> Preset:
    preset = lookup("preset", name)
    if not isinstance(preset, Preset):  # pragma: no cover - registry misuse
        raise ConfigError(f"{name!r} is not a preset")
    return preset


def preset_values(name: Any, kind: str, noun: str, where: str) -> dict[str, Any]:
    """The raw values of preset ``name``, which must be for ``kind`` (``noun`` names that kind in the
    error); a ConfigError at ``where.preset`` otherwise. A table then layers its own keys on top."""
    from sim.core.errors import MemwallError, join_where

    try:
        preset = get_preset(str(name))
    except MemwallError as exc:
        raise ConfigError(exc.message, where=join_where(where, "preset")) from None
    if preset.kind != kind:
        raise ConfigError(
            f"preset {preset.name!r} is for kind {preset.kind!r}, not {noun}",
            where=join_where(where, "preset"),
        )
    return preset.raw_values()
