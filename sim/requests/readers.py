"""Request-trace readers: Azure, Splitwise, Mooncake and length-only traces, streamed line by line.

Each reader yields :class:`~sim.requests.record.Request` records.
Trace readers are registered by format name (``@register("trace_reader", name)``) and are
generators: they read one line at a time (plain or gzip), check every field and stop after
``limit`` requests, so an hour-long trace never sits in memory. Any bad input raises one
:class:`ConfigError` naming the file, line and column, what was expected and what was found::

    for req in open_trace("traces/azure_conv_200.csv"):          # format guessed from the header
        ...
    reqs = list(open_trace(path, format="mooncake", limit=1000))

Formats (see ``traces/README.md`` for attribution and column meanings):

* ``azure``: Azure LLM inference trace 2023, ``TIMESTAMP,ContextTokens,GeneratedTokens``, wall-clock
  date-times with up to 12 fractional digits of seconds (parsed exactly, no float rounding);
* ``splitwise``: Vidur's processed Azure traces, ``arrived_at,num_prefill_tokens,num_decode_tokens``,
  seconds since the first request;
* ``mooncake``: Mooncake FAST'25 JSONL, ``{"timestamp": ms, "input_length", "output_length",
  "hash_ids"}`` with 512-token prefix blocks;
* ``lengths``: token counts without arrival times (Vidur's ``arxiv_summarization_stats_*.csv``:
  ``num_prefill_tokens,num_decode_tokens,...``); arrivals are *synthesised* from a Poisson or gamma
  process, so the caller must give ``rate=`` (and a seed).

Arrival times must not go backwards within a file (the real traces are sorted); a reader cannot sort
a stream, so a backwards step is an error naming its line.

Input is checked against the documented limits (:mod:`sim.core.limits`): lines of at most
``MAX_LINE_BYTES`` (an endless line is refused, not read on), UTF-8 text or gzip (other compressed
or binary data is refused), arrivals within ``MAX_SIM_PS`` of the first, token counts up to
``MAX_TOKENS`` and at most ``MAX_REQUESTS`` requests per trace. A trace without requests (empty or
header-only) is an error. Messages say what was expected and where, never quoting the file's lines.

Synthetic requests are in :mod:`sim.requests.synthetic`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sim.core.errors import ConfigError
from sim.core.limits import MAX_REQUESTS, MAX_SIM_PS, MAX_TOKENS
from sim.core.registry import lookup, names, register
from sim.core.textfile import INT64_MAX, brief, open_regular, text_lines
from sim.core.units import PS_PER_S, format_time
from sim.requests.record import Request
from sim.requests.synthetic import ArrivalParams, arrival_times, as_generator

MOONCAKE_BLOCK_TOKENS = 512
"""Tokens per prefix-hash block in the Mooncake traces (FAST'25 release README)."""


# -- field parsing ---------------------------------------------------------------------------------

_INT = re.compile(r"^\s*\+?\d+\s*$")
_DECIMAL = re.compile(r"^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$")
_DATETIME = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,12})\d*)?\s*$")


_MAX_TIME = "2^62 ps (MAX_SIM_PS, about 53 days)"


def _where(file: str, line: int, column: str | None = None) -> str:
    return f"{file}: line {line}: {column}" if column else f"{file}: line {line}"


def _tokens(text: str, where: str, minimum: int = 1) -> int:
    if _INT.match(text):
        digits = text.strip().lstrip("+").lstrip("0")
        value = int(digits or "0") if len(digits) <= 18 else MAX_TOKENS + 1
        if value > MAX_TOKENS:
            raise ConfigError(
                f"expected a whole number of tokens <= {MAX_TOKENS:,} (MAX_TOKENS), "
                f"found {brief(text.strip())}",
                where=where,
            )
        if value >= minimum:
            return value
    raise ConfigError(
        f"expected a whole number of tokens >= {minimum}, found {brief(text.strip())}", where=where
    )


def _json_tokens(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        if value > MAX_TOKENS:
            raise ConfigError(
                f"expected a whole number of tokens <= {MAX_TOKENS:,} (MAX_TOKENS), found {brief(value)}",
                where=where,
            )
        return value
    raise ConfigError(f"expected a whole number of tokens >= {minimum}, found {brief(value)}", where=where)


def _scaled_ps(value: Decimal | int, ps_per_unit: int, text: object, where: str, unit: str) -> int:
    """Exact integer picoseconds from a non-negative decimal count of ``unit``, at most MAX_SIM_PS."""
    if isinstance(value, Decimal) and not value.is_finite():
        raise ConfigError(f"expected a finite time in {unit} >= 0, found {brief(text)}", where=where)
    if value < 0:
        raise ConfigError(f"expected a time in {unit} >= 0, found {brief(text)}", where=where)
    if value > Decimal(MAX_SIM_PS) / ps_per_unit:  # compared before scaling: 1e999999 never becomes an int
        raise ConfigError(
            f"expected a time in {unit} of at most {_MAX_TIME}, found {brief(text)}",
            where=where,
        )
    return int((Decimal(value) * ps_per_unit).to_integral_value(ROUND_HALF_EVEN))


def _seconds_ps(text: str, where: str) -> int:
    if not _DECIMAL.match(text):
        raise ConfigError(
            f"expected a time in seconds >= 0 such as 4.3146, found {brief(text.strip())}", where=where
        )
    return _scaled_ps(Decimal(text.strip()), PS_PER_S, text.strip(), where, "seconds")


def _datetime_ps(text: str, where: str) -> int:
    """Picoseconds since 0001-01-01 of a naive ``YYYY-MM-DD HH:MM:SS[.fraction]`` (exact)."""
    m = _DATETIME.match(text)
    if m:
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        try:
            days = datetime(year, month, day, hour, minute, second).toordinal()
        except ValueError:
            pass
        else:
            whole = days * 86400 + hour * 3600 + minute * 60 + second
            return whole * PS_PER_S + int((m.group(7) or "").ljust(12, "0"))
    raise ConfigError(
        f"expected a date-time such as '2023-11-16 18:15:46.6805900', found {brief(text.strip())}",
        where=where,
    )


# -- streaming input -------------------------------------------------------------------------------


_MAX_LINES = 2 * MAX_REQUESTS + 1
"""Lines read from one request trace: a header, the requests and as many blank lines."""


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text with its line end) of a plain or gzip UTF-8 trace, each line capped."""
    return text_lines(path, "UTF-8 text (a plain or gzip trace)", gzip_ok=True, max_lines=_MAX_LINES)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line end) for each line of ``path``."""
    for number, text in _text_lines(path):
        yield number, text.rstrip("\r\n")


def _no_requests(file: str) -> ConfigError:
    return ConfigError(
        "expected at least one request, found none (an empty or header-only trace)", where=file
    )


def _count(rid: int, file: str, line: int) -> None:
    """Refuse the request after the first MAX_REQUESTS of a trace."""
    if rid >= MAX_REQUESTS:
        raise ConfigError(
            f"expected at most {MAX_REQUESTS:,} requests (MAX_REQUESTS), found more; pass a limit",
            where=_where(file, line),
        )


def _first_line(path: Path) -> str:
    for _, text in _lines(path):
        if text.strip():
            return text
    return ""


class _CsvColumns:
    """Header of a CSV trace: locate required columns by name (case- and space-insensitive)."""

    def __init__(self, header: Sequence[str], required: Sequence[str], file: str) -> None:
        found = [h.strip() for h in header]
        lowered = {h.lower(): i for i, h in enumerate(found)}
        missing = [c for c in required if c.lower() not in lowered]
        if missing:
            raise ConfigError(
                f"expected a header line with columns {', '.join(required)}; missing "
                f"{', '.join(missing)} (the header line has {len(found)} columns)",
                where=_where(file, 1),
            )
        self.index = {c: lowered[c.lower()] for c in required}
        self.width = max(self.index.values()) + 1


def _csv_records(
    path: Path, required: Sequence[str]
) -> Iterator[tuple[int, Callable[[str], tuple[str, str]]]]:
    """(line number, field getter) per data row; the getter returns (text, where) by column name."""
    file = str(path)
    line = 1
    reader = csv.reader(text for _, text in _text_lines(path))
    try:
        header = next(reader, None)
        if header is None:
            raise ConfigError(
                f"expected a header line with columns {', '.join(required)}, found an empty file",
                where=_where(file, 1),
            )
        cols = _CsvColumns(header, required, file)
        line = reader.line_num
        for row in reader:
            line = reader.line_num
            if not any(f.strip() for f in row):
                continue
            if len(row) < cols.width:
                raise ConfigError(
                    f"expected at least {cols.width} comma-separated fields, found {len(row)}",
                    where=_where(file, line),
                )

            def get(column: str, row: list[str] = row, line: int = line) -> tuple[str, str]:
                return row[cols.index[column]], _where(file, line, column)

            yield line, get
    except csv.Error as exc:
        raise ConfigError(
            f"expected a CSV record, found a malformed one ({exc})", where=_where(file, line + 1)
        ) from None


class _Normaliser:
    """Shift absolute arrival times so the first is 0, rejecting steps backwards."""

    def __init__(self) -> None:
        self.origin: int | None = None
        self.last = 0

    def __call__(self, absolute_ps: int, text: str, where: str) -> int:
        if self.origin is None:
            self.origin = absolute_ps
        rel = absolute_ps - self.origin
        if rel < self.last:
            raise ConfigError(
                f"expected arrival times in non-decreasing order (>= {format_time(self.last)} after the "
                f"first request), found {brief(text.strip())} = {format_time(rel)}; sort the trace first",
                where=where,
            )
        if rel > MAX_SIM_PS:
            raise ConfigError(
                f"expected arrival times at most {_MAX_TIME} after the first "
                f"request, found {brief(text.strip())} = {format_time(rel)} after it",
                where=where,
            )
        self.last = rel
        return rel


# -- registered formats ----------------------------------------------------------------------------


class TraceFormat:
    """A request-trace file format: recognises its first line and streams :class:`Request` records.

    Subclasses set ``extensions`` (a hint only; the first line decides) and implement
    :meth:`sniff` and :meth:`read`, and register with ``@register("trace_reader", name)``.
    """

    extensions: ClassVar[tuple[str, ...]] = ()
    registered_name: ClassVar[str]

    def sniff(self, first_line: str) -> bool:
        """Whether a file whose first non-blank line is ``first_line`` is in this format."""
        raise NotImplementedError

    def read(self, path: Path, **options: Any) -> Iterator[Request]:
        """Every request of ``path`` in file order, ids 0, 1, ...; arrivals start at 0."""
        raise NotImplementedError


def _header_fields(first_line: str) -> set[str]:
    return {f.strip().strip('"').lower() for f in first_line.split(",")}


@register("trace_reader", "azure")
class AzureFormat(TraceFormat):
    """Azure LLM inference trace 2023: TIMESTAMP (date-time), ContextTokens, GeneratedTokens."""

    extensions = (".csv",)
    columns = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")

    def sniff(self, first_line: str) -> bool:
        fields = _header_fields(first_line)
        return "timestamp" in fields or "contexttokens" in fields

    def read(self, path: Path, **options: Any) -> Iterator[Request]:
        _no_options(options, path)
        norm = _Normaliser()
        for rid, (line, get) in enumerate(_csv_records(path, self.columns)):
            _count(rid, str(path), line)
            text, where = get("TIMESTAMP")
            arrival = norm(_datetime_ps(text, where), text, where)
            prompt = _tokens(*get("ContextTokens"))
            output = _tokens(*get("GeneratedTokens"))
            yield Request(rid, arrival, prompt, output)
        if norm.origin is None:
            raise _no_requests(str(path))


@register("trace_reader", "splitwise")
class SplitwiseFormat(TraceFormat):
    """Vidur/Splitwise processed trace: arrived_at (s), num_prefill_tokens, num_decode_tokens."""

    extensions = (".csv",)
    columns = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")

    def sniff(self, first_line: str) -> bool:
        return "arrived_at" in _header_fields(first_line)

    def read(self, path: Path, **options: Any) -> Iterator[Request]:
        _no_options(options, path)
        norm = _Normaliser()
        for rid, (line, get) in enumerate(_csv_records(path, self.columns)):
            _count(rid, str(path), line)
            text, where = get("arrived_at")
            arrival = norm(_seconds_ps(text, where), text, where)
            prompt = _tokens(*get("num_prefill_tokens"))
            output = _tokens(*get("num_decode_tokens"))
            yield Request(rid, arrival, prompt, output)
        if norm.origin is None:
            raise _no_requests(str(path))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


@register("trace_reader", "mooncake")
class MooncakeFormat(TraceFormat):
    """Mooncake FAST'25 JSONL: timestamp (ms), input_length, output_length, hash_ids (512-token blocks)."""

    extensions = (".jsonl", ".json")
    keys = ("timestamp", "input_length", "output_length")

    def sniff(self, first_line: str) -> bool:
        return first_line.lstrip().startswith("{")

    def read(
        self, path: Path, *, block_tokens: int = MOONCAKE_BLOCK_TOKENS, **options: Any
    ) -> Iterator[Request]:
        _no_options(options, path)
        file = str(path)
        norm = _Normaliser()
        rid = 0
        for line, text in _lines(path):
            if not text.strip():
                continue
            where = _where(file, line)
            _count(rid, file, line)
            try:
                obj = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    "expected one JSON object per line, "
                    f"found malformed JSON ({exc.msg} at column {exc.colno})",
                    where=where,
                ) from None
            except RecursionError:
                raise ConfigError(
                    "expected one JSON object per line, found arrays or objects nested too deeply",
                    where=where,
                ) from None
            except ValueError as exc:
                raise ConfigError(f"expected one JSON object per line, found {exc}", where=where) from None
            if not isinstance(obj, dict):
                raise ConfigError(f"expected a JSON object, found {type(obj).__name__}", where=where)
            missing = [k for k in self.keys if k not in obj]
            if missing:
                raise ConfigError(
                    f"expected keys {', '.join(self.keys)} (and optional hash_ids); "
                    f"missing {', '.join(missing)}",
                    where=where,
                )
            stamp = obj["timestamp"]
            swhere = _where(file, line, "timestamp")
            if isinstance(stamp, bool) or not isinstance(stamp, int | Decimal):
                raise ConfigError(f"expected a time in ms >= 0, found {brief(stamp)}", where=swhere)
            arrival = norm(_scaled_ps(stamp, PS_PER_S // 1000, str(stamp), swhere, "ms"), str(stamp), swhere)
            prompt = _json_tokens(obj["input_length"], _where(file, line, "input_length"))
            output = _json_tokens(obj["output_length"], _where(file, line, "output_length"))
            hashes = obj.get("hash_ids", [])
            hwhere = _where(file, line, "hash_ids")
            if not isinstance(hashes, list):
                raise ConfigError(f"expected a list of block ids, found {brief(hashes)}", where=hwhere)
            for h in hashes:
                if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h <= INT64_MAX:
                    raise ConfigError(
                        f"expected block ids that are whole numbers in 0..2^63-1, found {brief(h)}",
                        where=hwhere,
                    )
            yield Request(rid, arrival, prompt, output, tuple(hashes), block_tokens if hashes else 0)
            rid += 1
        if rid == 0:
            raise _no_requests(file)


@register("trace_reader", "lengths")
class LengthsFormat(TraceFormat):
    """Token counts only (num_prefill_tokens, num_decode_tokens); arrivals synthesised from rate=."""

    extensions = (".csv",)
    columns = ("num_prefill_tokens", "num_decode_tokens")

    def sniff(self, first_line: str) -> bool:
        fields = _header_fields(first_line)
        return "num_prefill_tokens" in fields and "arrived_at" not in fields

    def read(
        self,
        path: Path,
        *,
        rate: float | str | None = None,
        arrival: str = "poisson",
        cv: float = 1.0,
        rng: np.random.Generator | int = 0,
        **options: Any,
    ) -> Iterator[Request]:
        _no_options(options, path)
        if rate is None:
            raise ConfigError(
                "this file has token counts but no arrival times; give an arrival process to synthesise "
                "them, e.g. open_trace(path, rate=2.0, rng=0) (Poisson) or add arrival='gamma', cv=2",
                where=str(path),
            )
        arrivals = ArrivalParams.from_mapping({"rate": rate, "arrival": arrival, "cv": cv}, where=str(path))
        times = arrival_times(arrivals, as_generator(rng), where=f"{path}: rate")
        rid = -1
        for rid, (line, get) in enumerate(_csv_records(path, self.columns)):
            _count(rid, str(path), line)
            prompt = _tokens(*get("num_prefill_tokens"))
            output = _tokens(*get("num_decode_tokens"))
            yield Request(rid, next(times), prompt, output)
        if rid < 0:
            raise _no_requests(str(path))


def _no_options(options: Mapping[str, Any], path: Path) -> None:
    if options:
        raise ConfigError(f"unknown reader option(s) {', '.join(sorted(options))}", where=str(path))


def guess_format(path: str | Path) -> str:
    """The registered format whose :meth:`TraceFormat.sniff` accepts the file's first line."""
    path = Path(path)
    first = _first_line(path)
    if not first:
        raise ConfigError("expected a trace, found an empty file", where=str(path))
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    candidates = []
    for name in names("trace_reader"):
        fmt = lookup("trace_reader", name)()
        if fmt.sniff(first):
            candidates.append((name, fmt))
    if len(candidates) > 1 and suffixes:  # the extension breaks ties
        by_ext = [c for c in candidates if suffixes[-1] in c[1].extensions]
        candidates = by_ext or candidates
    if len(candidates) != 1:
        known = "; ".join(
            f"{n} ({(lookup('trace_reader', n).__doc__ or '').strip().rstrip('.')})"
            for n in names("trace_reader")
        )
        what = f"it matches {', '.join(c[0] for c in candidates)}" if candidates else "it matches none"
        raise ConfigError(
            f"cannot tell the trace format from the first line ({what}); expected the first line of "
            f"one of {known}; pass format=",
            where=_where(str(path), 1),
        )
    return candidates[0][0]


def open_trace(
    path: str | Path, format: str | None = None, *, limit: int | None = None, **options: Any
) -> Iterator[Request]:
    """Stream the requests of a trace file (plain or gzip), at most ``limit`` of them.

    ``format`` is a registered ``trace_reader`` name; when None it is guessed from the first line.
    ``options`` go to the reader (``lengths`` needs ``rate=``; ``mooncake`` takes ``block_tokens=``).
    Errors in the file surface as :class:`ConfigError` while iterating; a missing file, unknown
    format or bad ``limit`` raise at once.
    """
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"expected limit to be a whole number >= 0, found {limit!r}", where=str(path))
    if not path.exists():
        raise ConfigError("cannot open trace: no such file", where=str(path))
    open_regular(path).close()  # a directory, device or pipe: say so now, not while iterating
    name = format if format is not None else guess_format(path)
    reader = lookup("trace_reader", name)()
    return _limited(reader.read(path, **options), limit)


def _limited(requests: Iterator[Request], limit: int | None) -> Iterator[Request]:
    if limit == 0:
        requests.close()  # type: ignore[attr-defined]
        return
    for count, req in enumerate(requests, start=1):
        yield req
        if limit is not None and count >= limit:
            requests.close()  # type: ignore[attr-defined]
            return


def read_trace(
    path: str | Path, format: str | None = None, *, limit: int | None = None, **options: Any
) -> list[Request]:
    """All requests of a trace (or the first ``limit``) as a list; see :func:`open_trace`."""
    return list(open_trace(path, format, limit=limit, **options))
