"""``memwall trace gen``: lower a request trace to a decode trace with a batching policy.

The scheduler needs a clock to decide which requests have arrived. The clock is a registered
``trace_clock``:

* ``estimated`` (the default): no simulation; the clock advances by each iteration's estimate, every
  op's kernels timed by the die's kernel model at the memories' peak bandwidths, without queueing,
  collectives or the software stack's host time. Fast, but faster than the simulated hardware, so the
  trace holds more, smaller iterations than a live run forms, and a replay queues them.
* ``simulated`` (:mod:`sim.experiments.trace_clock`): the system is simulated as ``memwall run``
  would, and the batches its policy formed are written with their start times; a replay on the same
  system reproduces the live run.

The header says which (``"clock": NAME``); replaying the trace in memwall re-times every iteration
in full detail and never starts an iteration before its ``not_before_ps``.

The output is written whole or not at all: to a temporary file beside it, flushed to disk and
renamed over ``out`` only when every request has been lowered. An output that is a directory or
one of the inputs is refused before anything is read; a generation that fails, is interrupted or
would leave requests unscheduled leaves no file (and an existing ``out`` untouched).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.compute.kernels import KernelModel, Sources
from sim.core.atomic import atomic_path
from sim.core.errors import ConfigError, SimulationError
from sim.core.registry import lookup, names, register
from sim.core.tomlfile import read_toml
from sim.core.units import PS_PER_S
from sim.model.spec import ModelSpec
from sim.requests.record import Request
from sim.requests.synthetic import SyntheticParams, synthetic_requests
from sim.serving.batching import make_policy
from sim.serving.decode_trace import DecodeTraceWriter
from sim.serving.lowering import Lowering
from sim.serving.mapping import MappingParams, Plan, plan
from sim.serving.scheduler import Batch
from sim.system.spec import SystemSpec


def estimate_iteration_ps(
    lowering: Lowering, system: SystemSpec, weights_mem: str, kv_mem: str, batch: Batch
) -> tuple[int, dict[str, float]]:
    """Roofline time of one iteration on one replica, and its whole-replica work totals."""
    m = lowering.plan.mapping
    bw_w = system.memories[weights_mem].peak_bandwidth_Bps()
    bw_kv = system.memories[kv_mem].peak_bandwidth_Bps()
    model = KernelModel(system.compute)
    src = Sources(bw_w, bw_kv, bw_kv)
    t = 0.0
    totals = {
        "tokens": float(batch.num_tokens),
        "weight_bytes": 0.0,
        "kv_read_bytes": 0.0,
        "kv_write_bytes": 0.0,
        "flops": 0.0,
    }
    for layer in range(lowering.model.layers):
        for op in lowering.layer_ops(layer, batch.entries):
            t += sum(model.time(k, src).total_ps for k in op.kernels) / PS_PER_S
            totals["weight_bytes"] += op.weight_bytes * m.tp
            totals["kv_read_bytes"] += op.kv_read_bytes * lowering.kv_split
            totals["kv_write_bytes"] += op.kv_write_bytes * lowering.kv_split
            totals["flops"] += op.flops * m.tp
    return int(t * PS_PER_S), totals


def generate(
    model: ModelSpec,
    system: SystemSpec,
    mapping: MappingParams,
    requests: Iterable[Request],
    out: str | Path,
    *,
    batching: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    max_iterations: int = 1_000_000,
    inputs: Sequence[str | Path | None] = (),
    progress: Callable[[int, int], None] | None = None,
    clock: str = "estimated",
) -> dict[str, Any]:
    """Write a decode trace to ``out``; returns counts for the CLI. ``progress(iterations, tokens)``
    is called now and then while it runs (a display only); ``clock`` is a registered
    ``trace_clock`` (see the module docstring).

    ``inputs`` are the files the trace is made from (``source["requests"]`` is one too): ``out``
    may be none of them. At most ``max_iterations`` iterations are written; a workload that needs
    more is refused (never a silently truncated trace).
    """
    target = check_output(out, [*(inputs or ()), (source or {}).get("requests")])
    if mapping.dp != 1:
        raise ConfigError(
            f"a decode trace holds one replica's iterations; expected mapping.dp = 1, found {mapping.dp} "
            "(replicas route requests at run time: memwall run --set mapping.dp=N on the request trace)",
            where="mapping.dp",
        )
    if clock not in names("trace_clock"):
        raise ConfigError(
            f"expected one of {', '.join(names('trace_clock'))}, found {clock!r}", where="--clock"
        )
    p = plan(model, system, mapping)
    lowering = Lowering(model, p)
    table = {**system.batching, **(batching or {})}
    policy_name = str(table.pop("policy", "continuous"))
    policy = make_policy(policy_name, table, kv_capacity_tokens=p.kv_capacity_tokens, where="batching")
    header = {
        "model": model.name,
        "weight_dtype": str(p.weight_dtype),
        "kv_dtype": mapping.kv_dtype,
        "mapping": {k: getattr(mapping, k) for k in ("tp", "pp", "ep", "dp")},
        "system": system.name,
        "source": source or {},
        "scheduler": {"policy": policy_name, **table},
        "clock": clock,
    }
    inputs_ = ClockInputs(model, system, mapping, p, lowering, policy, requests, max_iterations)
    batches = lookup("trace_clock", clock)(inputs_)
    # written beside the output under a hidden name (same suffix: .gz decides the compression)
    with atomic_path(target, ".gz" if target.suffix == ".gz" else "") as tmp:
        writer = DecodeTraceWriter(tmp, header)
        iterations = tokens = span = 0
        try:
            for batch, end in batches:
                span = end
                _, work = estimate_iteration_ps(lowering, system, p.weights_memory, p.kv_memory, batch)
                writer.iteration(batch, work)
                iterations += 1
                tokens += sum(1 for e in batch.entries if e.emits_token and not e.padding)
                if progress is not None and not iterations & 255:
                    progress(iterations, tokens)
        finally:
            writer.close()
    return {
        "out": str(out),
        "iterations": iterations,
        "tokens": tokens,
        "clock": clock,
        "span_s": span / PS_PER_S,
    }


@dataclass(frozen=True)
class ClockInputs:
    """What a trace clock schedules: the policy (fresh, nothing added yet) and the requests."""

    model: ModelSpec
    system: SystemSpec
    mapping: MappingParams
    plan: Plan
    lowering: Lowering
    policy: Any
    requests: Iterable[Request]
    max_iterations: int


TraceClock = Callable[[ClockInputs], Iterator[tuple[Batch, int]]]
"""Yields every batch the policy forms, in order, each with the time its iteration ended (ps)."""


@register("trace_clock", "estimated")
def estimated_clock(x: ClockInputs) -> Iterator[tuple[Batch, int]]:
    """The policy on a clock advanced by each iteration's kernel estimate (no simulation)."""
    policy, pending = x.policy, iter(x.requests)
    nxt = next(pending, None)
    now = iterations = 0
    while iterations < x.max_iterations:
        while nxt is not None and nxt.arrival_ps <= now:
            policy.add(nxt, now)
            nxt = next(pending, None)
        batch = policy.next_batch(now)
        if batch is None:
            wake = policy.wake_time(now)
            times = [t for t in (wake, nxt.arrival_ps if nxt else None) if t is not None and t > now]
            if not times:
                break
            now = min(times)
            continue
        dt, _ = estimate_iteration_ps(x.lowering, x.system, x.plan.weights_memory, x.plan.kv_memory, batch)
        now += max(1, dt)
        policy.complete(batch, now)
        iterations += 1
        yield batch, now
    check_finished(policy, iterations, x.max_iterations, unfinished=nxt is not None or not policy.idle)


def check_finished(policy: Any, iterations: int, max_iterations: int, unfinished: bool) -> None:
    """Refuse a trace that would leave requests unscheduled, or hold no iteration at all."""
    if unfinished and iterations >= max_iterations:
        raise ConfigError(
            f"expected a workload of at most {max_iterations:,} iterations, found more; "
            "fewer requests (--limit N) give a shorter trace",
            where="--requests",
        )
    if unfinished:
        raise SimulationError(
            f"the batching policy stopped after {iterations:,} iterations with "
            f"{policy.num_waiting + policy.num_running:,} requests unfinished and nothing to wake it",
            where="batching",
        )
    if iterations == 0:
        rejected = len(getattr(policy, "rejected", ()) or ())
        raise ConfigError(
            "expected at least one request to lower, found "
            + (f"{rejected:,} requests, all rejected as oversize" if rejected else "none"),
            where="--requests",
        )


def check_output(out: str | Path, inputs: Iterable[str | Path | None] = ()) -> Path:
    """``out`` as a path for a new decode trace: not a directory, not one of ``inputs``, in a
    directory that exists or can be created. Errors name ``--out``."""
    target = Path(out)
    if "\x00" in str(target) or not target.name:
        raise ConfigError("expected a file name for the decode trace, found an invalid path", where="--out")
    if target.is_dir():
        raise ConfigError(
            f"expected a file name for the decode trace, found the directory {target}", where="--out"
        )
    for given in inputs:
        if not given or not isinstance(given, str | Path):
            continue
        src = Path(given)
        try:
            same = target.exists() and src.exists() and target.samefile(src)
            same = same or target.resolve() == src.resolve()
        except (OSError, ValueError, RuntimeError):
            same = False
        if same:
            raise ConfigError(
                f"{target} is an input of this command ({given}); expected a new file for the decode trace",
                where="--out",
            )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "invalid path"
        raise ConfigError(f"cannot create the directory {target.parent}: {reason}", where="--out") from None
    if not os.access(target.parent, os.W_OK):
        raise ConfigError(f"cannot write in the directory {target.parent}: permission denied", where="--out")
    return target


def synthetic_source(path: str | Path, limit: int | None) -> tuple[list[Request], dict[str, Any]]:
    """Requests from a TOML file's ``[synthetic]`` table (SyntheticParams keys plus ``seed``).

    The number of requests is ``--limit`` if given, else the table's ``count``; one of the two is
    required so that a forgotten limit does not silently generate the default 1000 requests.
    Returns the requests and the ``source`` record for the trace header.
    """
    path = Path(path)
    data = read_toml(path)
    where = str(path)
    for key in data:
        if key != "synthetic":
            raise ConfigError(
                f"unknown table or key {key!r}; expected a [synthetic] table", where=f"{where}: {key}"
            )
    table = data.get("synthetic")
    if not isinstance(table, dict):
        raise ConfigError("expected a [synthetic] table of request-generator parameters", where=where)
    table = dict(table)
    seed = table.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"expected a whole number >= 0, found {seed!r}", where=f"{where}: synthetic.seed")
    if limit is None and "count" not in table:
        raise ConfigError(
            "expected the number of requests: synthetic.count in the file or --limit N",
            where=f"{where}: synthetic",
        )
    params = SyntheticParams.from_mapping(table, where=f"{where}: synthetic")
    requests = list(synthetic_requests(params, seed, limit=limit))
    source = {
        "requests": str(path),
        "format": "synthetic",
        "limit": limit,
        "seed": seed,
        "params": params.as_dict(),
    }
    return requests, source
