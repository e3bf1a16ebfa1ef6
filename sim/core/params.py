"""Typed, documented, checked parameters declared once on a component class.

A component declares a frozen dataclass of parameters; each field says its dimension (unit), a doc
line and an optional check::

    @dataclass(frozen=True)
    class Params(ParamSet):
        tR: int = param("20us", TIME, "page read time (array to page register)", check=positive)

Values may be given as numbers in internal units or as strings with units ("20us", "4KiB",
"1.6TB/s"); ``__post_init__`` converts them, so ``Params(tR="30us").tR == 30_000_000``.
:meth:`ParamSet.from_mapping` builds a set from TOML-like data and rejects unknown keys, naming the
key path and the valid keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from sim.core.errors import ConfigError, join_where
from sim.core.units import DIMENSIONS, Dimension, UnitError

Check = Callable[[Any], str | None]
"""A check returns None when the value is acceptable, else what was expected (e.g. '> 0')."""


def positive(v: float) -> str | None:
    return None if v > 0 else "a value > 0"


def at_least(low: float, what: str) -> Check:
    """A value >= ``low``, described as ``what`` (e.g. 1 B/s: rates below it round to nothing)."""

    def check(v: float) -> str | None:
        return None if v >= low else f"a value >= {what}"

    return check


def non_negative(v: float) -> str | None:
    return None if v >= 0 else "a value >= 0"


def fraction(v: float) -> str | None:
    return None if 0 < v <= 1 else "a fraction in (0, 1]"


def power_of_two(v: int) -> str | None:
    return None if v > 0 and v & (v - 1) == 0 else "a power of two"


def one_of(*choices: str) -> Check:
    def check(v: str) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)

    check.choices = choices  # type: ignore[attr-defined]
    return check


@dataclass(frozen=True)
class ParamSpec:
    """What :func:`param` records about a field: dimension, doc and check."""

    dimension: Dimension | None  # None: a string or bool choice, stored as given
    doc: str
    check: Check | None
    kind: type = object


def param(
    default: Any,
    dimension: Dimension | str | type,
    doc: str,
    *,
    check: Check | None = None,
) -> Any:
    """Declare one parameter. ``dimension`` is a :class:`Dimension`, or ``str``/``bool``."""
    if isinstance(dimension, str):
        dimension = DIMENSIONS[dimension]
    if isinstance(dimension, Dimension):
        spec = ParamSpec(dimension, doc, check)
    else:
        spec = ParamSpec(None, doc, check, kind=dimension)
    return dataclasses.field(default=default, metadata={"memwall": spec})


@dataclass(frozen=True)
class ParamSet:
    """Base class of every component's parameter dataclass."""

    # Sources for the values that differ from the defaults (filled by presets): key -> citation.
    SOURCES: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            spec = f.metadata.get("memwall")
            if spec is None:
                continue
            raw = getattr(self, f.name)
            try:
                value = _convert(spec, raw)
            except UnitError as exc:
                raise ConfigError(str(exc), where=f.name) from None
            if spec.check is not None and (expected := spec.check(value)) is not None:
                raise ConfigError(f"expected {expected}, found {raw!r}", where=f.name)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; raise :class:`ConfigError` with ``where`` set to the key."""

    @classmethod
    def specs(cls) -> Iterator[tuple[str, ParamSpec, Any]]:
        """(name, spec, default) for each declared parameter, in declaration order."""
        for f in dataclasses.fields(cls):
            if "memwall" in f.metadata:
                yield f.name, f.metadata["memwall"], f.default

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str | None = None) -> Self:
        """Build from TOML-like data; unknown keys and bad values name their key path."""
        known = {name for name, _, _ in cls.specs()}
        for key in data:
            if key not in known:
                raise ConfigError(
                    f"unknown parameter {key!r}; expected one of: {', '.join(sorted(known))}",
                    where=join_where(where, key),
                )
        try:
            return cls(**dict(data))
        except ConfigError as exc:
            raise exc.at(where) if where else exc from None

    def replace(self, changes: Mapping[str, Any], *, where: str | None = None) -> Self:
        """A copy with ``changes`` applied (validated like :meth:`from_mapping`)."""
        merged = {**self.as_dict(), **dict(changes)}
        return type(self).from_mapping(merged, where=where)

    def as_dict(self) -> dict[str, Any]:
        """Resolved values in internal units (what is written next to every result)."""
        return {name: getattr(self, name) for name, _, _ in self.specs()}


def _convert(spec: ParamSpec, raw: Any) -> Any:
    if spec.dimension is not None:
        return spec.dimension.parse(raw)
    if spec.kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise UnitError(f"expected true or false, found {raw!r}")
    if spec.kind is str:
        if not isinstance(raw, str):
            raise UnitError(f"expected a string, found {raw!r}")
        return raw
    return raw


def parse_override(text: str) -> tuple[str, str]:
    """Split a CLI ``key=value`` override; the value stays a string for the param to parse."""
    if "=" not in text:
        raise ConfigError(f"expected key=value, found {text!r}", where="--set")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"expected key=value with a non-empty key, found {text!r}", where="--set")
    return key, value.strip()
