"""``memwall trace gen``: lower a request trace to a decode trace with a batching policy.

The scheduler needs a clock to decide which requests have arrived; writing a trace must not need a
full simulation, so the clock advances by each iteration's estimate: every op's kernels timed by the
die's kernel model at the memories' peak bandwidths, without queueing or collectives.
The header says ``"clock": "estimated"``; replaying the trace in memwall re-times every iteration
in full detail and never starts an iteration before its ``not_before_ps``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sim.compute.kernels import KernelModel, Sources
from sim.core.errors import ConfigError
from sim.core.tomlfile import read_toml
from sim.core.units import PS_PER_S
from sim.model.spec import ModelSpec
from sim.requests.record import Request
from sim.requests.synthetic import SyntheticParams, synthetic_requests
from sim.serving.batching import make_policy
from sim.serving.decode_trace import DecodeTraceWriter
from sim.serving.lowering import Lowering
from sim.serving.mapping import MappingParams, plan
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
) -> dict[str, Any]:
    """Write a decode trace to ``out``; returns counts for the CLI."""
    p = plan(model, system, mapping)
    lowering = Lowering(model, p)
    table = {**system.batching, **(batching or {})}
    policy_name = str(table.pop("policy", "continuous"))
    policy = make_policy(policy_name, table, kv_capacity_tokens=p.kv_capacity_tokens, where="batching")
    writer = DecodeTraceWriter(
        out,
        {
            "model": model.name,
            "weight_dtype": str(p.weight_dtype),
            "kv_dtype": mapping.kv_dtype,
            "mapping": {k: getattr(mapping, k) for k in ("tp", "pp", "ep", "dp")},
            "system": system.name,
            "source": source or {},
            "scheduler": {"policy": policy_name, **table},
            "clock": "estimated",
        },
    )
    pending = iter(requests)
    nxt = next(pending, None)
    now = 0
    iterations = tokens = 0
    try:
        while iterations < max_iterations:
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
            dt, work = estimate_iteration_ps(lowering, system, p.weights_memory, p.kv_memory, batch)
            writer.iteration(batch, work)
            now += max(1, dt)
            policy.complete(batch, now)
            iterations += 1
            tokens += sum(1 for e in batch.entries if e.emits_token and not e.padding)
    finally:
        writer.close()
    return {"out": str(out), "iterations": iterations, "tokens": tokens, "estimated_span_s": now / PS_PER_S}


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
