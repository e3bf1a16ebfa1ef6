"""A run as a Chrome / Perfetto trace-event timeline (``memwall run --timeline FILE``).

The file is the trace-event "JSON Object format": ``{"traceEvents": [...], "displayTimeUnit": "ns"}``
with complete events (``ph: "X"``, ``ts`` and ``dur`` in microseconds of simulated time) and metadata
events (``ph: "M"``, ``process_name`` / ``thread_name`` / ``*_sort_index``) naming every track. It
opens in ui.perfetto.dev or chrome://tracing.

Processes (tracks):

* **requests**: one thread per request; ``prefill/TTFT`` from arrival (queued) to its first token and
  ``decode`` from its first to its last token.
* **iterations**: one event per iteration (requests, tokens, prefill tokens, top blame causes).
* **critical path**: one thread per chip (``stage0``, ``stage1``...) with every op it ran, and a
  ``fabric`` thread with the collectives and the stage-to-stage activation transfers. The ops of an
  iteration form its critical path, so on these threads they tile the iteration exactly. The driver
  does not log stage transfers as ops; they are the gaps between consecutive ops of an iteration and
  are drawn on ``fabric`` as ``stage transfer``.
* **memories / compute**: derived from each op's blame (APPROXIMATION): for every op, a sub-event on
  ``memory: NAME`` lasting the op's memory-bandwidth + queueing (+ prefetch stall) time and one on the
  compute thread (``compute die`` or ``near-memory MACs (NAME)``) lasting its compute (+ MAC busy)
  time, both drawn from the op's start. Blame only names what bounded the op, so an op that was
  compute bound shows no memory sub-event though its memory was busy too; these threads show who
  held the critical path, not utilization.

Every op's ``args`` carry its blame by cause in microseconds. Large runs are cut to an op budget
(``--timeline-ops``, default ``MAX_OPS``): when the op log holds more, the ops of whole iterations are
kept, either the first ones that fit (``keep = "first"``) or every k-th iteration over the whole run
with the smallest k that fits (``keep = "spread"``, a sample of the run's phases). The requests and
iterations tracks always stay complete. The cut names the iterations kept, in ``otherData``, in the
``process_labels`` of the critical-path process and in the :class:`TimelineCut` returned to the
caller (the command line prints it). A ``.gz`` file name writes gzip (deterministic: no time stamp
in the header); 24 requests on the default system are ~87 MB of JSON and ~4 MB gzipped.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.core.atomic import atomic_path
from sim.core.errors import ConfigError
from sim.driver.blame import COMPUTE, COMPUTE_DIE, COMPUTE_WAIT, MEMORY, PIPELINE_TRANSFER, Cause
from sim.requests import timing

PS_PER_US = 1_000_000
MAX_OPS = 200_000
"""Default op budget: ~100 MB of JSON (~5 MB gzipped), which ui.perfetto.dev still opens."""
KEEP = ("first", "spread")

PID_REQUESTS = 1
PID_ITERATIONS = 2
PID_CRITICAL = 3
PID_UNITS = 4


def _us(ps: float) -> float:
    return ps / PS_PER_US


def _x(name: str, cat: str, start_ps: float, end_ps: float, pid: int, tid: int, args: dict[str, Any]) -> dict:
    return {
        "name": name,
        "cat": cat,
        "ph": "X",
        "ts": _us(start_ps),
        "dur": _us(max(0.0, end_ps - start_ps)),
        "pid": pid,
        "tid": tid,
        "args": args,
    }


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": args}


def _blame_us(blame: dict[Cause, float]) -> dict[str, float]:
    return {c.label: _us(v) for c, v in sorted(blame.items(), key=lambda kv: -kv[1])}


def _split(blame: dict[Cause, float]) -> tuple[dict[str, dict[Cause, float]], dict[str, dict[Cause, float]]]:
    """An op's blame as {memory: {cause: ps}} and {compute unit: {cause: ps}}, by each cause's unit."""
    memory: dict[str, dict[Cause, float]] = {}
    compute: dict[str, dict[Cause, float]] = {}
    busy: dict[Cause, float] = {}
    for cause, ps in blame.items():
        if cause.unit == MEMORY:
            memory.setdefault(cause.resource, {})[cause] = ps
        elif cause.unit == COMPUTE:
            compute.setdefault(cause.label, {})[cause] = ps
        elif cause.unit == COMPUTE_WAIT:
            busy[cause] = busy.get(cause, 0.0) + ps
    if busy:  # waiting for MACs: on whichever compute unit bounded the op
        unit = next(iter(compute), COMPUTE_DIE.label)
        compute.setdefault(unit, {}).update(busy)
    return memory, compute


def _chip_order(where: str) -> tuple[int, int, str]:
    m = re.fullmatch(r"stage(\d+)", where)
    if m:
        return (0, int(m.group(1)), where)
    return (2, 0, where) if where == "fabric" else (1, 0, where)


@dataclass(frozen=True)
class TimelineCut:
    """Which iterations' ops a timeline holds when the op log is over budget."""

    kept: frozenset[int]  # iteration indices whose ops are written (all of each)
    ops_written: int
    ops_total: int
    iterations: int
    description: str  # e.g. "iterations 0..57" or "every 4th iteration (0, 4, ... 1284)"

    def message(self, budget: int) -> str:
        return (
            f"the run logged {self.ops_total:,} ops, over the timeline's budget of {budget:,}: wrote "
            f"the ops of {self.description} ({len(self.kept)} of {self.iterations} iterations, "
            f"{self.ops_written:,} ops); requests and iterations are complete"
        )


def select_iterations(
    op_log: list[Any], iterations: int, max_ops: int, keep: str = "first"
) -> TimelineCut | None:
    """The iterations whose ops fit ``max_ops`` (None: the whole log fits)."""
    if keep not in KEEP:
        raise ConfigError(f"expected one of {', '.join(KEEP)}, found {keep!r}", where="--timeline-keep")
    if len(op_log) <= max_ops:
        return None
    per = Counter(o.iteration for o in op_log)
    if keep == "first" or max_ops <= 0:
        kept: list[int] = []
        total = 0
        for i in sorted(per):  # ops are logged iteration by iteration; keep whole iterations
            if total + per[i] > max_ops:
                break
            kept.append(i)
            total += per[i]
        what = f"iterations {kept[0]}..{kept[-1]}" if kept else "no iteration"
        return TimelineCut(frozenset(kept), total, len(op_log), iterations, what)
    last = max(per)
    stride = max(2, -(-len(op_log) // max_ops))
    while True:
        kept = [i for i in sorted(per) if i % stride == 0]
        total = sum(per[i] for i in kept)
        if total <= max_ops or stride > last:
            break
        stride += 1
    if total > max_ops:  # even one iteration is over budget
        return select_iterations(op_log, iterations, max_ops, "first")
    shown = ", ".join(str(i) for i in kept[:3]) + (f", ... {kept[-1]}" if len(kept) > 3 else "")
    what = f"every {_ordinal(stride)} iteration ({shown})"
    return TimelineCut(frozenset(kept), total, len(op_log), iterations, what)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _events(driver: Any, cut: TimelineCut | None, budget: int) -> Iterable[dict]:
    iterations = driver.iterations
    records = driver.records
    op_log = driver.op_log
    ops = op_log if cut is None else [o for o in op_log if o.iteration in cut.kept]
    end_ps = max([it.end_ps for it in iterations], default=0)

    yield _meta("process_name", PID_REQUESTS, 0, {"name": "requests"})
    yield _meta("process_sort_index", PID_REQUESTS, 0, {"sort_index": PID_REQUESTS})
    yield _meta("process_name", PID_ITERATIONS, 0, {"name": "iterations"})
    yield _meta("process_sort_index", PID_ITERATIONS, 0, {"sort_index": PID_ITERATIONS})
    yield _meta("thread_name", PID_ITERATIONS, 0, {"name": "iterations"})
    yield _meta("process_name", PID_CRITICAL, 0, {"name": "critical path"})
    yield _meta("process_sort_index", PID_CRITICAL, 0, {"sort_index": PID_CRITICAL})
    if cut is not None:
        yield _meta("process_labels", PID_CRITICAL, 0, {"labels": cut.message(budget)})
    yield _meta("process_name", PID_UNITS, 0, {"name": "memories / compute (from blame)"})
    yield _meta("process_sort_index", PID_UNITS, 0, {"sort_index": PID_UNITS})

    # requests
    for rid, rec in sorted(records.items()):
        req = rec.request
        yield _meta("thread_name", PID_REQUESTS, rid, {"name": f"request {rid}"})
        yield _meta("thread_sort_index", PID_REQUESTS, rid, {"sort_index": rid})
        args = {
            "id": rid,
            "prompt_tokens": req.prompt_tokens,
            "output_tokens": req.output_tokens,
            "generated": rec.generated,
        }
        if rec.generated == 0:  # never got a token before the run ended
            yield _x(
                "queued", "request", req.arrival_ps, max(req.arrival_ps, end_ps), PID_REQUESTS, rid, args
            )
            continue
        ttft = {**args, "ttft_ms": timing.ttft_ms(req.arrival_ps, rec.first_token_ps)}
        yield _x("prefill/TTFT", "request", req.arrival_ps, rec.first_token_ps, PID_REQUESTS, rid, ttft)
        if rec.last_token_ps > rec.first_token_ps:
            tpot = timing.tpot_ms(rec.first_token_ps, rec.last_token_ps, rec.generated)
            yield _x(
                "decode",
                "request",
                rec.first_token_ps,
                rec.last_token_ps,
                PID_REQUESTS,
                rid,
                {**args, "tpot_ms": tpot},
            )

    # iterations
    for it in iterations:
        kind = "prefill" if it.prefill_tokens else "decode"
        args = {
            "index": it.index,
            "requests": it.requests,
            "tokens": it.tokens,
            "prefill_tokens": it.prefill_tokens,
            "top_causes_us": {k: _us(v) for k, v in it.blame.top(3)},
        }
        yield _x(
            f"iteration {it.index} ({kind})", "iteration", it.start_ps, it.end_ps, PID_ITERATIONS, 0, args
        )

    # critical path: chips and fabric
    threads = sorted({o.where for o in ops} | {"fabric"}, key=_chip_order)
    tid_of = {w: i for i, w in enumerate(threads)}
    for w, tid in tid_of.items():
        yield _meta("thread_name", PID_CRITICAL, tid, {"name": w})
        yield _meta("thread_sort_index", PID_CRITICAL, tid, {"sort_index": tid})
    fabric = tid_of["fabric"]
    unit_tid: dict[str, int] = {}

    def unit(name: str) -> Iterable[dict]:
        if name not in unit_tid:
            unit_tid[name] = len(unit_tid)
            yield _meta("thread_name", PID_UNITS, unit_tid[name], {"name": name})
            yield _meta("thread_sort_index", PID_UNITS, unit_tid[name], {"sort_index": unit_tid[name]})

    prev: tuple[int, int, str] | None = None  # (iteration, end ps, where) of the previous op
    for o in ops:
        iteration, where, op, layer, start, end = o.iteration, o.where, o.op, o.layer, o.start_ps, o.end_ps
        if prev is not None and prev[0] == iteration and start > prev[1]:
            nxt = where
            yield _x(
                "stage transfer",
                "fabric",
                prev[1],
                start,
                PID_CRITICAL,
                fabric,
                {
                    "iteration": iteration,
                    "from": prev[2],
                    "to": nxt,
                    "blame_us": {PIPELINE_TRANSFER.label: _us(start - prev[1])},
                },
            )
        prev = (iteration, end, where)
        label = op if layer < 0 else f"{op} L{layer}"
        args = {"iteration": iteration, "layer": layer, "blame_us": _blame_us(o.blame)}
        yield _x(
            label, "fabric" if where == "fabric" else "op", start, end, PID_CRITICAL, tid_of[where], args
        )
        if where == "fabric":
            continue
        memory, compute = _split(o.blame)
        for prefix, parts in (("memory: ", memory), ("", compute)):
            for name, part in parts.items():
                thread = prefix + name
                yield from unit(thread)
                total = sum(part.values())
                sub = {"chip": where, "iteration": iteration, "blame_us": _blame_us(part)}
                yield _x(
                    label,
                    "memory" if prefix else "compute",
                    start,
                    start + total,
                    PID_UNITS,
                    unit_tid[thread],
                    sub,
                )


PIDS_PER_REPLICA = 10


def _as_replica(events: Iterable[dict], replica: int, label: str | None = None) -> Iterable[dict]:
    """One replica's tracks: its processes numbered from ``PIDS_PER_REPLICA * replica`` and named
    ``replica N: ...`` (or ``LABEL: ...``), so every replica's requests, iterations and critical path
    sit together."""
    shift = PIDS_PER_REPLICA * replica
    label = f"replica {replica}" if label is None else label
    for e in events:
        e["pid"] += shift
        if e["ph"] == "M" and e["name"] == "process_name":
            e["args"] = {"name": f"{label}: {e['args']['name']}"}
        elif e["ph"] == "M" and e["name"] == "process_sort_index":
            e["args"] = {"sort_index": e["args"]["sort_index"] + shift}
        yield e


def _outages(outages: Sequence[Mapping[str, Any]], replicas: int, end_ps: float) -> Iterable[dict]:
    """A ``down`` span per failure (``failures.events`` of the summary) on its replica's iterations
    process, thread ``failures``: from the failure to the replica's return (or the run's end)."""
    named: set[int] = set()
    for o in outages:
        i = int(o["replica"])
        pid = PID_ITERATIONS + (PIDS_PER_REPLICA * i if replicas > 1 else 0)
        if i not in named:
            named.add(i)
            yield _meta("thread_name", pid, 1, {"name": "failures"})
        start, back = float(o["at_s"]) * 1e12, float(o["back_s"]) * 1e12
        args = {"replica": i, "failed_at_s": o["at_s"], "back_at_s": o["back_s"]}
        yield _x("replica down (failure)", "failure", start, min(back, max(end_ps, start)), pid, 1, args)


def write_timeline(
    path: str | Path,
    driver: Any,
    max_ops: int | None = None,
    keep: str = "first",
    outages: Sequence[Mapping[str, Any]] = (),
) -> list[str]:
    """Write ``driver``'s run (records, iterations, op log) as trace-event JSON, gzipped when the
    name ends in ``.gz``; returns what was cut to fit ``max_ops`` (default ``MAX_OPS``), one message
    per cut op log (none: everything is in).

    ``driver`` may be the list of every replica's driver: each gets its own processes (``replica N:
    requests`` ...) and an equal share of the op budget.
    ``outages`` (the summary's ``failures.events``) draw each failure's downtime."""
    if max_ops is None:
        max_ops = MAX_OPS
    drivers = list(driver) if isinstance(driver, list | tuple) else [driver]
    share = max_ops // len(drivers)
    cuts = [select_iterations(d.op_log, len(d.iterations), share, keep) for d in drivers]
    if len(drivers) == 1:
        events = list(_events(drivers[0], cuts[0], share))
    else:
        events = [e for i, d in enumerate(drivers) for e in _as_replica(_events(d, cuts[i], share), i)]
    end_ps = max((it.end_ps for d in drivers for it in d.iterations), default=0)
    events += list(_outages(outages, len(drivers), end_ps))
    other: dict[str, Any] = {
        "generator": "memwall run --timeline",
        "time": "simulated; ts/dur in microseconds",
        "iterations": sum(len(d.iterations) for d in drivers),
        "ops": sum(len(d.op_log) for d in drivers),
        "op_budget": max_ops,
    }
    if len(drivers) > 1:
        other["replicas"] = len(drivers)
    for i, cut in enumerate(cuts):
        if cut is None:
            continue
        who = "" if len(drivers) == 1 else f"replica {i}: "
        other.setdefault("truncated", []).append(who + cut.message(share))
        key = "iterations_with_ops" if len(drivers) == 1 else f"replica{i}_iterations_with_ops"
        other[key] = sorted(cut.kept)
    said = list(other.get("truncated", []))
    if len(drivers) == 1 and "truncated" in other:
        other["truncated"] = other["truncated"][0]
    write_doc(path, events, other)
    return said


def write_doc(path: str | Path, events: list[dict], other: dict[str, Any]) -> None:
    """Write ``events`` as a trace-event JSON object (gzipped for a ``.gz`` name), whole or not at all."""
    doc = {"traceEvents": events, "displayTimeUnit": "ns", "otherData": other}
    data = (json.dumps(doc, separators=(",", ":")) + "\n").encode("utf-8")
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write timeline {path}: {exc.strerror}", where="--timeline") from None
