"""The decode-trace format (version 1): JSON Lines, optionally gzip, one record per line.

A decode trace is what a batching scheduler decided, iteration by iteration, plus the work that
follows from it, so that a simulator (memwall or another tool) can replay it without re-running the
scheduler. Records, in order:

1. a header::

     {"record": "header", "format": "memwall-decode-trace", "version": 1,
      "model": "llama-3.1-8b", "weight_dtype": "bf16", "kv_dtype": "bf16",
      "mapping": {"tp": 1, "pp": 1, "ep": 1, "dp": 1},
      "source": {"requests": "traces/azure_conv_200.csv", "format": "azure", "limit": 50},
      "scheduler": {"policy": "continuous", ...}, "clock": "estimated"}

2. one ``request`` record per request, before the first iteration that uses it::

     {"record": "request", "id": 7, "arrival_ps": 1250000000, "prompt_tokens": 374,
      "output_tokens": 44}

3. one ``iteration`` record per iteration::

     {"record": "iteration", "index": 12, "not_before_ps": 1250000000,
      "entries": [[7, "p", 374, 374, 1], [3, "d", 1, 420, 1], ...],
      "work": {"tokens": 375, "weight_bytes": 1.6e10, "kv_read_bytes": 3.4e7,
               "kv_write_bytes": 4.9e7, "flops": 6.0e12}}

   Each entry is ``[request id, "p" (prefill) or "d" (decode), new tokens, context tokens after the
   iteration, 1 if the iteration emits an output token for it else 0]``. ``not_before_ps`` is the
   time the scheduler formed the batch in the writer's clock (a replay never starts it earlier).
   ``work`` totals the whole model for one replica (all chips of a stage and all stages), for
   checking and for tools that do not model the hardware; memwall recomputes per-chip work from
   the model and mapping.

Times are integer picoseconds. Integer fields must be JSON integers (not ``1.7``, ``"5"`` or
``true``) within the limits of :mod:`sim.core.limits`; a trace is read line by line (each line at
most ``MAX_LINE_BYTES``, gzip recognised by its magic bytes) and must hold at least one iteration.
Unknown record types are errors; unknown keys are ignored (so later
minor versions can add fields). Adding optional keys keeps ``version`` 1; any change that an old
reader would misread (renamed or re-typed keys, new entry fields, new record types) bumps it.
Gzip output is written with a zero timestamp, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sim.core.errors import ConfigError
from sim.core.limits import MAX_BATCH, MAX_CHIPS, MAX_REQUESTS, MAX_SIM_PS, MAX_STEPS, MAX_TOKENS
from sim.core.textfile import INT64_MAX, brief, text_lines, where_line
from sim.requests.record import Request
from sim.serving.scheduler import Batch, BatchEntry, Scheduler

FORMAT = "memwall-decode-trace"
VERSION = 1


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, mode + "b"), encoding="utf-8")  # type: ignore[arg-type]
    return path.open(mode, encoding="utf-8")


class DecodeTraceWriter:
    """Writes a decode trace; call :meth:`request` before the first :meth:`iteration` using it."""

    def __init__(self, path: str | Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw: IO[bytes] | None = None
        if self.path.suffix == ".gz":
            # no file name and mtime 0 in the gzip header: the same trace gives the same bytes
            self._raw = self.path.open("wb")
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
            self.fh: IO[str] = io.TextIOWrapper(gz, encoding="utf-8")  # type: ignore[arg-type]
        else:
            self.fh = _open(self.path, "w")
        self._write({"record": "header", "format": FORMAT, "version": VERSION, **header})
        self._seen: set[int] = set()

    def _write(self, record: dict[str, Any]) -> None:
        self.fh.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")

    def request(self, r: Request) -> None:
        if r.id not in self._seen:
            self._seen.add(r.id)
            self._write(
                {
                    "record": "request",
                    "id": r.id,
                    "arrival_ps": r.arrival_ps,
                    "prompt_tokens": r.prompt_tokens,
                    "output_tokens": r.output_tokens,
                }
            )

    def iteration(self, batch: Batch, work: dict[str, float]) -> None:
        for e in batch.entries:
            self.request(e.request)
        entries = [
            [
                e.request.id,
                "p" if e.phase == "prefill" else "d",
                e.tokens,
                e.context_tokens,
                int(e.emits_token and not e.padding),
            ]
            for e in batch.entries
        ]
        self._write(
            {
                "record": "iteration",
                "index": batch.index,
                "not_before_ps": batch.start_ps,
                "entries": entries,
                "work": work,
            }
        )

    def close(self) -> None:
        self.fh.close()
        if self._raw is not None:
            self._raw.close()


@dataclass
class DecodeTrace:
    """A parsed trace: header, requests by id, and the iterations in order."""

    path: Path
    header: dict[str, Any]
    requests: dict[int, Request]
    batches: list[Batch]


def _bad(path: Path, line: int, msg: str, key: str | None = None) -> ConfigError:
    return ConfigError(msg, where=where_line(str(path), line, key))


_MAPPING_KEYS = ("tp", "pp", "ep", "dp")
_MAX_LINES = 2 * (MAX_REQUESTS + MAX_STEPS) + 1
"""Lines read from one trace: a header, the requests and iterations, and as many blank lines."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def _no_constant(text: str) -> Any:
    raise _NotFinite(text)


class _NotFinite(ValueError):
    pass


def _whole(rec: dict[str, Any], key: str, path: Path, n: int, low: int, high: int, limit: str) -> int:
    """An integer field in ``[low, high]``; floats, strings and booleans are refused."""
    if key not in rec:
        raise _bad(path, n, f"{rec.get('record')} record misses key {key!r}")
    value = rec[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, n, f"expected a whole number (JSON integer), found {brief(value)}", key)
    if value < low:
        raise _bad(path, n, f"expected a whole number >= {low}, found {brief(value)}", key)
    if value > high:
        raise _bad(path, n, f"expected a whole number <= {high:,} ({limit}), found {brief(value)}", key)
    return value


def is_decode_trace(path: str | Path) -> bool:
    """Whether ``path`` is a regular file (plain or gzip) whose first line names this format.

    Reads at most one line of at most ``MAX_LINE_BYTES``: safe on ``/dev/zero``, pipes and
    directories (all False; the request-trace reader then says what is wrong with them).
    """
    try:
        for _, text in text_lines(Path(path), "a decode trace", gzip_ok=True):
            return FORMAT in text
    except ConfigError:
        return False
    return False


def read_decode_trace(path: str | Path) -> DecodeTrace:
    """Parse and validate a decode trace (errors name file and line).

    Besides the record syntax the reader checks what a replay relies on: integer fields are JSON
    integers within the documented limits (:mod:`sim.core.limits`), request ids are unique, an
    iteration holds each request at most once, no request emits more than its ``output_tokens`` nor
    attends to more than its prompt and output, and there is at least one iteration.
    """
    path = Path(path)
    requests: dict[int, Request] = {}
    emitted: dict[int, int] = {}
    batches: list[Batch] = []
    header: dict[str, Any] | None = None
    lines = text_lines(
        path, "a UTF-8 decode trace (JSON Lines, plain or gzip)", gzip_ok=True, max_lines=_MAX_LINES
    )
    for n, text in lines:
        if not text.strip():
            continue
        try:
            rec = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise _bad(
                path,
                n,
                f"expected one JSON object per line, found malformed JSON ({exc.msg} at column {exc.colno})",
            ) from None
        except _NotFinite:
            raise _bad(
                path, n, "expected finite numbers, found NaN, Infinity or a number beyond the float range"
            ) from None
        except RecursionError:
            raise _bad(path, n, "expected a JSON object, found arrays or objects nested too deeply") from None
        except ValueError:  # an integer literal beyond Python's digit limit
            raise _bad(path, n, "expected JSON numbers of at most 4300 digits, found a longer one") from None
        if not isinstance(rec, dict):
            raise _bad(path, n, f"expected a JSON object, found {type(rec).__name__}")
        kind = rec.get("record")
        if header is None:
            if kind != "header" or rec.get("format") != FORMAT:
                raise _bad(
                    path,
                    n,
                    f'expected a {FORMAT} header first ({{"record": "header", "format": "{FORMAT}", ...}}), '
                    "found another record",
                )
            version = rec.get("version")
            if version != VERSION or isinstance(version, bool):
                raise _bad(path, n, f"expected version {VERSION}, found {brief(version)}", "version")
            _check_header(rec, path, n)
            header = rec
        elif kind == "request":
            req = _request(rec, path, n)
            if req.id in requests:
                raise _bad(path, n, f"expected each request id once, found request {req.id} again", "id")
            if len(requests) >= MAX_REQUESTS:
                raise _bad(path, n, f"expected at most {MAX_REQUESTS:,} requests (MAX_REQUESTS), found more")
            requests[req.id] = req
            emitted[req.id] = 0
        elif kind == "iteration":
            if len(batches) >= MAX_STEPS:
                raise _bad(path, n, f"expected at most {MAX_STEPS:,} iterations (MAX_STEPS), found more")
            batches.append(_batch(rec, requests, emitted, path, n, len(batches)))
        else:
            raise _bad(path, n, f"expected record = request or iteration, found {brief(kind)}", "record")
    if header is None:
        raise ConfigError("empty decode trace (no header)", where=str(path))
    if not batches:
        raise ConfigError(
            "expected at least one iteration record, found none (a header-only trace replays nothing)",
            where=str(path),
        )
    return DecodeTrace(path, header, requests, batches)


def _check_header(rec: dict[str, Any], path: Path, n: int) -> None:
    """The header fields a replay uses: ``model`` (a name) and ``mapping`` (tp, pp, ep, dp)."""
    model = rec.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _bad(path, n, f"expected a model name (a string), found {brief(model)}", "model")
    mapping = rec.get("mapping")
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise _bad(
            path,
            n,
            f'expected an object such as {{"tp": 1, "pp": 1, "ep": 1, "dp": 1}}, found {brief(mapping)}',
            "mapping",
        )
    for key, value in mapping.items():
        if key not in _MAPPING_KEYS:
            raise _bad(
                path,
                n,
                f"expected keys {', '.join(_MAPPING_KEYS)}, found {brief(key)}",
                f"mapping.{key}"[:60],
            )
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CHIPS:
            raise _bad(
                path,
                n,
                f"expected a whole number in 1..{MAX_CHIPS:,} (MAX_CHIPS), found {brief(value)}",
                f"mapping.{key}",
            )


def _request(rec: dict[str, Any], path: Path, n: int) -> Request:
    rid = _whole(rec, "id", path, n, 0, INT64_MAX, "64 bits")
    arrival = _whole(rec, "arrival_ps", path, n, 0, MAX_SIM_PS, "MAX_SIM_PS")
    prompt = _whole(rec, "prompt_tokens", path, n, 1, MAX_TOKENS, "MAX_TOKENS")
    output = _whole(rec, "output_tokens", path, n, 1, MAX_TOKENS, "MAX_TOKENS")
    return Request(rid, arrival, prompt, output)


def _batch(
    rec: dict[str, Any],
    requests: dict[int, Request],
    emitted: dict[int, int],
    path: Path,
    n: int,
    position: int,
) -> Batch:
    entries = []
    raw = rec.get("entries")
    if not isinstance(raw, list) or not raw:
        raise _bad(path, n, "expected a non-empty entries list", "entries")
    if len(raw) > MAX_BATCH:
        raise _bad(
            path, n, f"expected at most {MAX_BATCH:,} entries (MAX_BATCH), found {len(raw):,}", "entries"
        )
    seen: set[int] = set()
    for i, e in enumerate(raw):
        key = f"entries[{i}]"
        if not (isinstance(e, list) and len(e) == 5):
            raise _bad(path, n, f"expected [id, 'p'|'d', tokens, context, emits], found {brief(e)}", key)
        rid, phase, tokens, context, emits = e
        if isinstance(rid, bool) or not isinstance(rid, int):
            raise _bad(path, n, f"expected a request id (JSON integer), found {brief(rid)}", key)
        if rid not in requests:
            raise _bad(path, n, f"request {rid} has no request record before it", key)
        if rid in seen:
            raise _bad(
                path, n, f"expected each request at most once per iteration, found request {rid} again", key
            )
        seen.add(rid)
        req = requests[rid]
        if (
            phase not in ("p", "d")
            or isinstance(tokens, bool)
            or isinstance(context, bool)
            or isinstance(emits, bool)
            or not isinstance(tokens, int)
            or not isinstance(context, int)
            or tokens < 1
            or context < tokens
            or emits not in (0, 1)
        ):
            raise _bad(
                path, n, f"expected phase p/d, 1 <= tokens <= context, emits 0/1, found {brief(e)}", key
            )
        if context > req.prompt_tokens + req.output_tokens:
            raise _bad(
                path,
                n,
                f"expected context <= {req.prompt_tokens + req.output_tokens} (request {rid}'s prompt "
                f"and output tokens), found {context}",
                key,
            )
        emitted[rid] += emits
        if emitted[rid] > req.output_tokens:
            raise _bad(
                path,
                n,
                f"expected request {rid} to emit at most its {req.output_tokens} output tokens, found more",
                key,
            )
        entries.append(BatchEntry(req, "prefill" if phase == "p" else "decode", tokens, context, bool(emits)))
    index, start = rec.get("index", position), rec.get("not_before_ps", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= INT64_MAX:
        raise _bad(path, n, f"expected a whole number >= 0, found {brief(index)}", "index")
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= MAX_SIM_PS:
        raise _bad(
            path,
            n,
            f"expected a whole number in 0..{MAX_SIM_PS:,} (MAX_SIM_PS), found {brief(start)}",
            "not_before_ps",
        )
    return Batch(index, start, tuple(entries))


class ReplayScheduler(Scheduler):
    """Replays a decode trace's batches in order; a batch waits for its requests to arrive."""

    def __init__(self, trace: DecodeTrace) -> None:
        self.batches = trace.batches
        self.next = 0
        self.arrived: set[int] = set()

    def add(self, request: Request, now: int) -> None:
        self.arrived.add(request.id)

    def next_batch(self, now: int) -> Batch | None:
        if self.next >= len(self.batches):
            return None
        batch = self.batches[self.next]
        if batch.start_ps > now or any(e.request.id not in self.arrived for e in batch.entries):
            return None
        self.next += 1
        return batch

    def complete(self, batch: Batch, now: int) -> list[Any]:
        return []

    def wake_time(self, now: int) -> int | None:
        if self.next < len(self.batches):
            t = self.batches[self.next].start_ps
            return t if t > now else None
        return None

    @property
    def idle(self) -> bool:
        return self.next >= len(self.batches)

    @property
    def num_waiting(self) -> int:
        return len(self.batches) - self.next


def requests_in_order(trace: DecodeTrace) -> Iterator[Request]:
    return iter(sorted(trace.requests.values(), key=lambda r: (r.arrival_ps, r.id)))
