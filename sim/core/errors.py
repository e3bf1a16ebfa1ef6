"""One error hierarchy. Every message says where (file, line, key path), what was expected, what was found.

The CLI turns any :class:`MemwallError` into one line on stderr and exit code 2; anything else is a
bug in memwall and keeps its traceback.
"""

from __future__ import annotations


class MemwallError(Exception):
    """Base of every error memwall reports to a user.

    ``where`` is a location such as ``"system.toml: device.params.tR"``; it prefixes the message.
    """

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def at(self, outer: str) -> MemwallError:
        """The same error located inside ``outer`` (a file name or an enclosing key path)."""
        return type(self)(self.message, where=join_where(outer, self.where))


def join_where(outer: str | None, inner: str | None) -> str | None:
    """``file.toml: a.b`` from a file and a key path, or ``a.b.c`` from two key paths."""
    if not outer or not inner:
        return outer or inner
    if outer.endswith((".toml", ".json", ".jsonl", ".csv", ".gz")):
        return f"{outer}: {inner}"
    if outer.startswith("--") and " " not in outer:  # a flag: "--set" + "tp" -> "--set tp"
        return f"{outer} {inner}"
    return f"{outer}.{inner}"


class ConfigError(MemwallError):
    """A configuration value, key or file is wrong."""


class RegistryError(MemwallError):
    """An unknown registered name (kind, component, preset, policy...)."""


class CapacityError(MemwallError):
    """Something does not fit in the memory it was placed on."""


class SimulationError(MemwallError):
    """The simulation cannot make progress (deadlock, starvation) or broke an invariant."""


class TimingViolation(SimulationError):
    """A device command trace broke a timing rule (raised by the independent checkers)."""


class BoundViolation(MemwallError):
    """An op finished faster than a physical bound allows (raised only in strict mode, e.g. tests;
    otherwise counted in the summary's ``bound_violations``)."""
