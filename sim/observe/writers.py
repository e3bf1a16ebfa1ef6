"""What ``memwall run --out DIR`` writes: the run's results as JSON and CSV files.

* ``config.json``: the resolved configuration (every parameter in internal units);
* ``summary.json``: the figures ``memwall run --json`` prints;
* ``stats.json``: the whole stats tree;
* ``requests.csv``: per request, its arrival, lengths and TTFT / TPOT / end-to-end latency
  (:mod:`sim.requests.timing`);
* ``iterations.csv``: per iteration, its step time, batch and top blame cause;
* ``ops.csv`` and ``blame.csv`` (with ``record_ops``): every op of every iteration's critical path,
  one row per op, and what it waited for, one row per (op, cause), joined on ``op_id``. The blame is
  typed (``cause``, ``resource``, ``unit``), so readers never parse labels.

A run of several replicas (``mapping.dp > 1``, or failures with recovery) writes every replica's rows
in these files, each with a leading ``replica`` column (iteration indices count per replica; op ids
are unique in the run).

A disaggregated run (``disagg.*``, :mod:`sim.observe.disagg_files`) writes every pool replica's rows
in ``iterations.csv``, ``ops.csv`` and ``blame.csv`` with a leading ``replica`` column naming the
replica (``prefill0``, ``decode1``: the pool and its index); ``requests.csv`` has one row per request
with its end-to-end figures as the summary defines them (TTFT ends when the KV reached the decode
replica), led by ``prefill_replica`` and ``decode_replica``; ``transfers.csv`` has one row per KV
transfer (request, from, to, bytes, its times in ms).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sim.core.atomic import result_dir
from sim.requests import timing

REQUEST_COLUMNS = (
    "id",
    "arrival_ms",
    "prompt_tokens",
    "output_tokens",
    "generated",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
)
ITERATION_COLUMNS = (
    "index",
    "start_ms",
    "step_ms",
    "requests",
    "tokens",
    "prefill_tokens",
    "top_cause",
    "top_cause_share",
    "reused",
)
OP_COLUMNS = ("op_id", "iteration", "where", "op", "layer", "start_us", "end_us")
BLAME_COLUMNS = ("op_id", "iteration", "cause", "resource", "unit", "label", "us")


def write_run(out: str | Path, summary: dict[str, Any], driver: Any, sim: Any) -> Path:
    """Write a finished run's files as the directory ``out``, whole: they are written to a hidden
    temporary directory that then replaces ``out`` (a previous run's directory, or nothing) in one
    rename, so ``out`` never holds a partial file or files of two runs (:mod:`sim.core.atomic`).
    ``driver`` is the run's driver or, for replicas, the list of every replica's."""
    drivers = list(driver) if isinstance(driver, list | tuple) else [driver]
    tag = _tagged if len(drivers) > 1 else _untagged
    with result_dir(out) as d:
        write_json(d, summary, sim)
        _csv(d / "requests.csv", tag(REQUEST_COLUMNS), _each(drivers, tag, _request_rows))
        if any(x.op_log for x in drivers):
            ops = [x.op_log for x in drivers]
            _csv(d / "ops.csv", tag(OP_COLUMNS), _each(drivers, tag, _op_rows, _first_ids(ops)))
            _csv(d / "blame.csv", tag(BLAME_COLUMNS), _each(drivers, tag, _blame_rows, _first_ids(ops)))
        _csv(
            d / "iterations.csv",
            tag(ITERATION_COLUMNS),
            _each(drivers, tag, lambda x: _iteration_rows(x.iterations)),
        )
    return Path(out)


def write_json(d: Path, summary: dict[str, Any], sim: Any) -> None:
    """``config.json``, ``summary.json`` and ``stats.json`` into the directory ``d``."""
    (d / "config.json").write_text(json.dumps(sim.config, indent=1, sort_keys=True, default=str) + "\n")
    (d / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    stats = json.dumps(sim.stats.collect(sim.now), sort_keys=True, default=str)
    (d / "stats.json").write_text(stats + "\n")


def _untagged(row: Sequence[Any], replica: int | None = None) -> list[Any]:
    return list(row)


def _tagged(row: Sequence[Any], replica: int | None = None) -> list[Any]:
    return ["replica" if replica is None else replica, *row]


def _first_ids(op_logs: Sequence[Sequence[Any]]) -> list[int]:
    """The op id each replica's first op gets, so op ids are unique in the run."""
    firsts, n = [], 0
    for log in op_logs:
        firsts.append(n)
        n += len(log)
    return firsts


def _each(
    drivers: Sequence[Any], tag: Any, rows: Any, first_ids: Sequence[int] | None = None
) -> Iterable[list[Any]]:
    for i, x in enumerate(drivers):
        produced = rows(x) if first_ids is None else rows(x.op_log, first_ids[i])
        for row in produced:
            yield tag(row, i)


def _csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _request_rows(driver: Any) -> Iterable[list[Any]]:
    """One row per request the driver saw, by id."""
    for r in sorted(driver.records.values(), key=lambda r: r.request.id):
        req = r.request
        tpot = timing.tpot_ms(r.first_token_ps, r.last_token_ps, r.generated)
        yield [
            req.id,
            req.arrival_ps / 1e9,
            req.prompt_tokens,
            req.output_tokens,
            r.generated,
            timing.ttft_ms(req.arrival_ps, r.first_token_ps) if r.generated else "",
            "" if tpot is None else tpot,
            timing.e2e_ms(req.arrival_ps, r.last_token_ps) if r.generated else "",
        ]


def _op_rows(op_log: Sequence[Any], first: int = 0) -> Iterable[list[Any]]:
    for op_id, o in enumerate(op_log, first):
        yield [op_id, o.iteration, o.where, o.op, o.layer, o.start_ps / 1e6, o.end_ps / 1e6]


def _blame_rows(op_log: Sequence[Any], first: int = 0) -> Iterable[list[Any]]:
    for op_id, o in enumerate(op_log, first):
        for cause, ps in sorted(o.blame.items(), key=lambda kv: -kv[1]):
            yield [op_id, o.iteration, cause.kind, cause.resource, cause.unit, cause.label, ps / 1e6]


def _iteration_rows(iterations: Sequence[Any]) -> Iterable[list[Any]]:
    for it in iterations:
        top = it.blame.top(1)
        share = top[0][1] / it.step_ps if top and it.step_ps else 0.0
        yield [
            it.index,
            it.start_ps / 1e9,
            it.step_ps / 1e9,
            it.requests,
            it.tokens,
            it.prefill_tokens,
            top[0][0] if top else "",
            share,
            int(it.reused),
        ]
