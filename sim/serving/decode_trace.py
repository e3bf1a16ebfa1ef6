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

Times are integer picoseconds. Unknown record types are errors; unknown keys are ignored (so later
minor versions can add fields). Adding optional keys keeps ``version`` 1; any change that an old
reader would misread (renamed or re-typed keys, new entry fields, new record types) bumps it.
Gzip output is written with a zero timestamp, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sim.core.errors import ConfigError
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


def _bad(path: Path, line: int, msg: str) -> ConfigError:
    return ConfigError(msg, where=f"{path}: line {line}")


def read_decode_trace(path: str | Path) -> DecodeTrace:
    """Parse and validate a decode trace (errors name file and line)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file not found", where=str(path))
    requests: dict[int, Request] = {}
    batches: list[Batch] = []
    header: dict[str, Any] | None = None
    n = 0
    try:
        with _open(path, "r") as fh:
            for n, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    rec = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise _bad(
                        path, n, f"expected one JSON object per line, found malformed JSON ({exc.msg})"
                    ) from None
                if not isinstance(rec, dict):
                    raise _bad(path, n, f"expected a JSON object, found {type(rec).__name__}")
                kind = rec.get("record")
                if header is None:
                    if kind != "header" or rec.get("format") != FORMAT:
                        raise _bad(path, n, f"expected a {FORMAT} header first, found {text[:60]!r}")
                    if rec.get("version") != VERSION:
                        raise _bad(path, n, f"expected version {VERSION}, found {rec.get('version')!r}")
                    header = rec
                elif kind == "request":
                    req = _request(rec, path, n)
                    requests[req.id] = req
                elif kind == "iteration":
                    batches.append(_batch(rec, requests, path, n, len(batches)))
                else:
                    raise _bad(path, n, f"expected record = request or iteration, found {kind!r}")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        # n is the last line read whole; the failure is in the line after it
        reason = str(exc) or type(exc).__name__
        raise _bad(path, n + 1, f"cannot read decode trace (truncated or corrupt file?): {reason}") from None
    if header is None:
        raise ConfigError("empty decode trace (no header)", where=str(path))
    return DecodeTrace(path, header, requests, batches)


def _request(rec: dict[str, Any], path: Path, n: int) -> Request:
    try:
        return Request(
            int(rec["id"]), int(rec["arrival_ps"]), int(rec["prompt_tokens"]), int(rec["output_tokens"])
        )
    except KeyError as exc:
        raise _bad(path, n, f"request record misses key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise _bad(path, n, f"request record: {exc}") from None
    except ConfigError as exc:
        raise _bad(path, n, exc.message) from None


def _batch(rec: dict[str, Any], requests: dict[int, Request], path: Path, n: int, position: int) -> Batch:
    entries = []
    raw = rec.get("entries")
    if not isinstance(raw, list) or not raw:
        raise _bad(path, n, "expected a non-empty entries list")
    for i, e in enumerate(raw):
        if not (isinstance(e, list) and len(e) == 5):
            raise _bad(path, n, f"entries[{i}]: expected [id, 'p'|'d', tokens, context, emits], found {e!r}")
        rid, phase, tokens, context, emits = e
        if rid not in requests:
            raise _bad(path, n, f"entries[{i}]: request {rid!r} has no request record before it")
        if (
            phase not in ("p", "d")
            or not isinstance(tokens, int)
            or not isinstance(context, int)
            or tokens < 1
            or context < tokens
            or emits not in (0, 1)
        ):
            raise _bad(
                path, n, f"entries[{i}]: expected phase p/d, 1 <= tokens <= context, emits 0/1, found {e!r}"
            )
        entries.append(
            BatchEntry(requests[rid], "prefill" if phase == "p" else "decode", tokens, context, bool(emits))
        )
    index, start = rec.get("index", position), rec.get("not_before_ps", 0)
    if not isinstance(index, int) or not isinstance(start, int) or start < 0:
        raise _bad(path, n, f"expected integer index and not_before_ps >= 0, found {index!r}, {start!r}")
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
