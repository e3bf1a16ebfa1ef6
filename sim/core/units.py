"""Physical quantities and their conversion to memwall's internal units.

This is the only module that converts units. Internally memwall uses:

* time: integer picoseconds (``env.now`` is in ps),
* size: integer bytes,
* bandwidth: float bytes per second,
* frequency: float hertz,
* energy: float picojoules,
* power: float watts.

Strings such as ``"1.6TB/s"``, ``"20us"``, ``"4KiB"``, ``"6.4Gb/s"`` or ``"3.9pJ"`` parse;
plain numbers are taken to be in the internal unit already.
Decimal prefixes (k, M, G, T) are powers of 1000; binary prefixes (Ki, Mi, Gi, Ti) are powers of
1024, as in IEC 80000-13. A lower-case ``b`` means bits and an upper-case ``B`` bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

PS_PER_S = 10**12
PS_PER_NS = 1000
PS_PER_US = 10**6

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-z/%µ]*)\s*$")

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_TIME = {"s": 1e12, "ms": 1e9, "us": 1e6, "µs": 1e6, "ns": 1e3, "ps": 1.0}
_ENERGY = {"J": 1e12, "mJ": 1e9, "uJ": 1e6, "µJ": 1e6, "nJ": 1e3, "pJ": 1.0, "fJ": 1e-3}
_POWER = {"W": 1.0, "mW": 1e-3, "kW": 1e3, "MW": 1e6}


class UnitError(ValueError):
    """A quantity string that does not parse as the expected kind (carries the expected form)."""


_MAX_MAGNITUDE = {True: float(2**63 - 1), False: 1e300}
"""Largest accepted magnitude: whole-unit quantities fit int64; others stay far from overflow."""
_LIMITS = {"time": float(2**58), "size": float(2**62)}
"""Tighter limits where values are added up in 64-bit arithmetic (device timing, addresses): a
time parameter of more than ~3 days (2^58 ps) or a size beyond 4 EiB is never meant."""


@dataclass(frozen=True)
class Dimension:
    """One kind of physical quantity: its name, internal unit and an example of accepted input."""

    name: str
    internal_unit: str
    example: str
    integral: bool

    def parse(self, value: object) -> int | float:
        """Convert ``value`` (a number in the internal unit, or a string with a unit) to internal.

        Results are finite, and whole-unit quantities fit a signed 64-bit integer (what numpy and
        the simulated clock hold), so ``"1e400GB"`` or ``1e30`` ps is an error here, not an overflow
        later."""
        result = _PARSERS[self.name](value)
        if not math.isfinite(result):
            raise UnitError(f"expected a finite {self.name} such as {self.example!r}, found {value!r}")
        limit = _LIMITS.get(self.name, _MAX_MAGNITUDE[self.integral])
        if abs(result) > limit:
            raise UnitError(f"expected a {self.name} below {limit:.3g} {self.internal_unit}, found {value!r}")
        return result

    def format(self, value: int | float) -> str:
        """Render an internal value for humans (used by ``memwall describe`` and reports)."""
        return _FORMATTERS[self.name](value)


def _split(value: object, dim: str, example: str) -> tuple[float, str]:
    if isinstance(value, bool):
        raise UnitError(f"expected a {dim} such as {example!r}, found {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise UnitError(f"expected a finite {dim} such as {example!r}, found {value!r}")
        return float(value), ""
    if not isinstance(value, str):
        raise UnitError(f"expected a {dim} such as {example!r}, found {type(value).__name__}")
    m = _QUANTITY.match(value)
    if not m:
        raise UnitError(f"expected a {dim} such as {example!r}, found {value!r}")
    number = float(m.group(1))
    if not math.isfinite(number):
        raise UnitError(f"expected a finite {dim} such as {example!r}, found {value!r}")
    return number, m.group(2)


def _finite(x: float, dim: str, value: object) -> float:
    if not math.isfinite(x) or abs(x) > _MAX_MAGNITUDE[True]:
        raise UnitError(
            f"expected a {dim} below {_MAX_MAGNITUDE[True]:.3g} in internal units, found {value!r}"
        )
    return x


def _prefixed(unit: str, base: str) -> float | None:
    """Multiplier of ``unit`` = prefix + ``base`` (e.g. 'GiB' with base 'B'), or None."""
    if not unit.endswith(base):
        return None
    prefix = unit[: len(unit) - len(base)]
    if prefix in _BINARY:
        return float(_BINARY[prefix])
    if prefix in _DECIMAL:
        return _DECIMAL[prefix]
    return None


def parse_time(value: object) -> int:
    """Time in integer picoseconds. Bare numbers are picoseconds."""
    number, unit = _split(value, "time", "20us")
    if unit == "":
        scale = 1.0
    elif unit in _TIME:
        scale = _TIME[unit]
    else:
        raise UnitError(f"expected a time such as '20us' (units s, ms, us, ns, ps), found {value!r}")
    return round(_finite(number * scale, "time", value))


def parse_size(value: object) -> int:
    """Size in integer bytes. Bare numbers are bytes; 'b' suffixes are bits (must give whole bytes)."""
    number, unit = _split(value, "size", "4KiB")
    if unit == "":
        scale = 1.0
    elif (m := _prefixed(unit, "B")) is not None:
        scale = m
    elif (m := _prefixed(unit, "b")) is not None:
        scale = m / 8.0
    else:
        raise UnitError(f"expected a size such as '4KiB' or '512GB', found {value!r}")
    result = _finite(number * scale, "size", value)
    if abs(result - round(result)) > 1e-6 * max(1.0, abs(result)):
        raise UnitError(f"expected a whole number of bytes, found {value!r} = {result} B")
    return round(result)


def parse_bandwidth(value: object) -> float:
    """Bandwidth in bytes per second. Accepts 'B/s' and 'b/s' (bits) with prefixes, e.g. '6.4Gb/s'."""
    number, unit = _split(value, "bandwidth", "1.6TB/s")
    if unit == "":
        return number
    if unit.endswith("/s"):
        base = unit[:-2]
        if (m := _prefixed(base, "B")) is not None:
            return number * m
        if (m := _prefixed(base, "b")) is not None:
            return number * m / 8.0
    if unit.endswith("bps") and (m := _prefixed(unit[:-2], "b")) is not None:  # '6400Mbps'
        return number * m / 8.0
    raise UnitError(f"expected a bandwidth such as '1.6TB/s' or '6.4Gb/s', found {value!r}")


def parse_frequency(value: object) -> float:
    """Frequency in hertz, e.g. '1.6GHz'."""
    number, unit = _split(value, "frequency", "1.6GHz")
    if unit == "":
        return number
    if (m := _prefixed(unit, "Hz")) is not None and not unit.startswith(tuple(_BINARY)):
        return number * m
    raise UnitError(f"expected a frequency such as '1.6GHz', found {value!r}")


def parse_energy(value: object) -> float:
    """Energy in picojoules, e.g. '3.9pJ'."""
    number, unit = _split(value, "energy", "3.9pJ")
    if unit == "":
        return number
    if unit in _ENERGY:
        return number * _ENERGY[unit]
    raise UnitError(f"expected an energy such as '3.9pJ' or '1.2nJ', found {value!r}")


def parse_power(value: object) -> float:
    """Power in watts, e.g. '40W'."""
    number, unit = _split(value, "power", "40W")
    if unit == "":
        return number
    if unit in _POWER:
        return number * _POWER[unit]
    raise UnitError(f"expected a power such as '40W' or '350mW', found {value!r}")


def parse_compute_rate(value: object) -> float:
    """Compute throughput in FLOP/s (or OP/s), e.g. '989TFLOPS', '1.2PFLOP/s', '393TOPS'."""
    number, unit = _split(value, "compute rate", "989TFLOPS")
    if unit == "":
        return number
    for suffix in ("FLOPS", "FLOP/s", "OPS", "OP/s"):
        if unit.endswith(suffix):
            prefix = unit[: -len(suffix)]
            if prefix in _DECIMAL:
                return number * _DECIMAL[prefix]
    raise UnitError(f"expected a compute rate such as '989TFLOPS', found {value!r}")


def parse_count(value: object) -> int:
    """A dimensionless whole number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UnitError(f"expected a whole number such as 16, found {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.replace("_", ""))
        except ValueError:
            raise UnitError(f"expected a whole number such as 16, found {value!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise UnitError(f"expected a whole number such as 16, found {value!r}")
    return int(value)


def parse_ratio(value: object) -> float:
    """A dimensionless real number; '85%' means 0.85."""
    number, unit = _split(value, "number", "0.85")
    if unit == "":
        return number
    if unit == "%":
        return number / 100.0
    raise UnitError(f"expected a number such as 0.85 or '85%', found {value!r}")


def _fmt_scaled(value: float, unit: str, prefixes: list[tuple[float, str]]) -> str:
    for scale, prefix in prefixes:
        if abs(value) >= scale:
            return f"{value / scale:.4g}{prefix}{unit}"
    return f"{value:.4g}{unit}"


def format_time(ps: int | float) -> str:
    """Human form of a picosecond time."""
    for scale, unit in ((1e12, "s"), (1e9, "ms"), (1e6, "us"), (1e3, "ns")):
        if abs(ps) >= scale:
            return f"{ps / scale:.4g}{unit}"
    return f"{ps:.4g}ps"


def format_size(nbytes: int | float) -> str:
    """Human form of a byte count: binary prefixes when exact, else decimal with 4 digits."""
    for scale, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if nbytes >= scale:
            if nbytes % scale == 0:
                return f"{int(nbytes) // scale}{unit}"
            break
    return _fmt_scaled(nbytes, "B", [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")])


def format_bandwidth(bps: float) -> str:
    return _fmt_scaled(bps, "B/s", [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")])


_DEC = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]

_PARSERS = {
    "time": parse_time,
    "size": parse_size,
    "bandwidth": parse_bandwidth,
    "frequency": parse_frequency,
    "energy": parse_energy,
    "power": parse_power,
    "compute_rate": parse_compute_rate,
    "count": parse_count,
    "ratio": parse_ratio,
}

_FORMATTERS = {
    "time": format_time,
    "size": format_size,
    "bandwidth": format_bandwidth,
    "frequency": lambda v: _fmt_scaled(v, "Hz", _DEC),
    "energy": lambda v: f"{v:.4g}pJ",
    "power": lambda v: f"{v:.4g}W",
    "compute_rate": lambda v: _fmt_scaled(v, "FLOPS", [(1e15, "P"), *_DEC]),
    "count": lambda v: str(v),
    "ratio": lambda v: f"{v:.4g}",
}

TIME = Dimension("time", "ps", "20us", True)
SIZE = Dimension("size", "B", "4KiB", True)
BANDWIDTH = Dimension("bandwidth", "B/s", "1.6TB/s", False)
FREQUENCY = Dimension("frequency", "Hz", "1.6GHz", False)
ENERGY = Dimension("energy", "pJ", "3.9pJ", False)
POWER = Dimension("power", "W", "40W", False)
COMPUTE_RATE = Dimension("compute_rate", "FLOP/s", "989TFLOPS", False)
COUNT = Dimension("count", "", "16", True)
RATIO = Dimension("ratio", "", "0.85", False)

DIMENSIONS = {
    d.name: d for d in (TIME, SIZE, BANDWIDTH, FREQUENCY, ENERGY, POWER, COMPUTE_RATE, COUNT, RATIO)
}


def cycles_to_ps(cycles: float, frequency_hz: float) -> int:
    """Whole picoseconds taken by ``cycles`` of a clock at ``frequency_hz``."""
    return round(cycles * PS_PER_S / frequency_hz)


def transfer_ps(nbytes: int | float, bandwidth_Bps: float) -> int:
    """Picoseconds to move ``nbytes`` at ``bandwidth_Bps`` (rounded up: never faster than peak)."""
    return math.ceil(nbytes * PS_PER_S / bandwidth_Bps - 1e-9)


def ps_to_s(ps: int | float) -> float:
    return ps / PS_PER_S


def ps_to_ns(ps: int | float) -> float:
    return ps / PS_PER_NS
