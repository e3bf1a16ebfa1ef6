"""A disaggregated run: a prefill pool and a decode pool in one simulation (:mod:`sim.serving.disagg`).

:func:`disaggregation` resolves the pools from a run's settings (``--set disagg.KEY=VALUE`` on top of
the run system's ``[disaggregation]`` table) and refuses what it cannot serve; :func:`execute` builds
both pools' replicas (each its own chips: ``prefillI`` / ``decodeI``), the prefill router, the KV
link and the hand-off, runs them to the last token and returns the merged summary.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

from sim.core.errors import ConfigError, MemwallError, SimulationError, join_where
from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S
from sim.driver.token_driver import TokenDriver
from sim.model.spec import ModelSpec
from sim.serving.batching import make_policy
from sim.serving.disagg import (
    DisaggParams,
    Handoff,
    HeldFeed,
    KvLink,
    Observed,
    kv_ready_policy,
    kv_transfer_bytes,
    prefill_stream,
)
from sim.serving.mapping import MappingParams, Plan, mapping_from, plan
from sim.serving.router import RequestFeed, Router, RouterParams, replica_load
from sim.system.build import build_system
from sim.system.spec import SystemSpec, load_system


@dataclass(frozen=True)
class Pool:
    """One pool of a disaggregated run: its system, the mapping of each replica and its plan."""

    role: str  # "prefill" or "decode"
    system: SystemSpec
    mapping: MappingParams
    plan: Plan
    replicas: int
    batching: dict[str, Any]

    @property
    def chips(self) -> int:
        return self.plan.mapping.tp * self.plan.mapping.pp


@dataclass(frozen=True)
class DisaggSpec:
    """A resolved disaggregated run: its parameters and both pools."""

    params: DisaggParams
    prefill: Pool
    decode: Pool

    def config(self) -> dict[str, Any]:
        """What is written beside the results."""
        return {
            **self.params.as_dict(),
            **{
                f"{pool.role}_pool": {
                    "system": pool.system.resolved(),
                    "mapping": pool.mapping.as_dict(),
                    "replicas": pool.replicas,
                }
                for pool in (self.prefill, self.decode)
            },
        }


def disaggregation(
    spec: Any,
    replay: Any,
    keys: Mapping[str, str],
    sets: Mapping[str, Any],
    routed: bool,
    where: str = "--set",
) -> DisaggSpec | None:
    """The pools of a run (``spec``: a :class:`~sim.experiments.run.RunSpec`), or None when the run is
    not disaggregated (no ``disagg.`` keys and no ``[disaggregation]`` table, or ``enabled = false``).

    ``keys``: the ``disagg.KEY`` settings without their prefix; ``sets``: every ``--set`` key (the
    ``mapping.`` ones apply to both pools); ``routed``: ``router.`` keys were given."""
    from sim.experiments.run import split_sets

    table = dict(spec.system.disaggregation)
    if not table and not keys:
        return None
    params = (
        DisaggParams.from_mapping(table, where=join_where(spec.system.source, "disaggregation"))
        if table
        else DisaggParams()
    )
    if keys:
        params = params.replace(keys, where=join_where(where, "disagg"))
    if not params.enabled:
        return None
    first = f"disagg.{next(iter(keys))}" if keys else "disaggregation"
    if replay is not None or spec.requests is None:
        what = "a decode-trace replay" if replay is not None else "a fixed decode batch"
        raise ConfigError(
            f"disaggregation moves requests from a prefill pool to a decode pool; {what} has no "
            "prefill (run a request trace or --load, or drop the disagg keys)",
            where=join_where(where, first),
        )
    if spec.mapping.dp != 1:
        raise ConfigError(
            f"a disaggregated run sizes its pools with disagg.prefill_replicas and "
            f"disagg.decode_replicas; expected mapping.dp = 1, found {spec.mapping.dp}",
            where=join_where(where, "mapping.dp"),
        )
    if routed:
        raise ConfigError(
            "a disaggregated run routes with disagg.prefill_router and disagg.decode_router, not router.KEY",
            where=join_where(where, "router"),
        )
    _, map_set, _, _ = split_sets(sets, where)
    pools = []
    for role, name, tp, pp, replicas in (
        ("prefill", params.prefill_system, params.prefill_tp, params.prefill_pp, params.prefill_replicas),
        ("decode", params.decode_system, params.decode_tp, params.decode_pp, params.decode_replicas),
    ):
        pools.append(_pool(spec, role, name, tp, pp, replicas, map_set, where))
    prefill, decode = pools
    if prefill.mapping.kv_dtype != decode.mapping.kv_dtype:
        raise ConfigError(
            f"the KV cache moves as it is: expected one KV dtype on both pools, found "
            f"{prefill.mapping.kv_dtype} (prefill) and {decode.mapping.kv_dtype} (decode)",
            where=join_where(where, "mapping.kv_dtype"),
        )
    name = str(decode.batching.get("policy", "continuous"))
    kv_ready_policy(  # refuse a policy with no KV-ready variant now, not at run time
        name,
        {k: v for k, v in decode.batching.items() if k != "policy"},
        decode.plan.kv_capacity_tokens,
        "batching",
    )
    return DisaggSpec(params, prefill, decode)


def _pool(
    spec: Any,
    role: str,
    system_name: str,
    tp: int,
    pp: int,
    replicas: int,
    map_set: Mapping[str, str],
    where: str,
) -> Pool:
    key = join_where(where, f"disagg.{role}_system")
    if system_name:
        try:
            system = load_system(system_name)
        except MemwallError as exc:  # the key the user typed, not the system loader's inner path
            raise type(exc)(exc.message, where=key) from None
    else:
        system = spec.system
    overrides = {k: v for k, v in map_set.items() if k != "dp"}
    if tp:
        overrides["tp"] = str(tp)
    if pp:
        overrides["pp"] = str(pp)
    mapping = mapping_from(system, overrides, where=join_where(where, f"disagg.{role}"))
    try:
        p = plan(spec.model, system, mapping)
    except MemwallError as exc:  # the knob that changes it: the pool's chips per replica
        raise type(exc)(
            f"the {role} pool ({system.name}, tp {mapping.tp}, pp {mapping.pp}): {exc}",
            where=join_where(where, f"disagg.{role}_{'pp' if pp and not tp else 'tp'}"),
        ) from None
    return Pool(role, system, mapping, p, replicas, {**system.batching, **spec.batching})


def execute(spec: Any, progress: Any = None) -> tuple[dict[str, Any], TokenDriver, Simulation]:
    """Simulate a disaggregated run; the merged summary, the first decode driver and the sim."""
    from sim.experiments.run import _config, _run_figures, _sorted
    from sim.observe.disagg import summary as disagg_summary

    d: DisaggSpec = spec.disagg
    params, pre, dec = d.params, d.prefill, d.decode
    model: ModelSpec = spec.model
    sim = Simulation(seed=spec.seed, config={**_config(spec), "disaggregation": d.config()})
    env = sim.env
    originals: dict[int, Any] = {}
    pre_feeds = [HeldFeed(env) for _ in range(pre.replicas)]
    dec_feeds = [RequestFeed(env) for _ in range(dec.replicas)]
    link = KvLink(sim, "kv_link", params, pre.chips, dec.chips)
    kv_dtype = pre.mapping.kv_dtype
    dec_name = str(dec.batching.get("policy", "continuous"))
    dec_table = {k: v for k, v in dec.batching.items() if k != "policy"}
    dec_policies = [
        kv_ready_policy(dec_name, dec_table, dec.plan.kv_capacity_tokens, "batching")
        for _ in range(dec.replicas)
    ]
    handoff = Handoff(
        sim,
        "handoff",
        params,
        link,
        dec_feeds,
        dec_policies,
        lambda r: kv_transfer_bytes(model, kv_dtype, r.prompt_tokens),
        originals,
    )
    pre_name = str(pre.batching.get("policy", "continuous"))
    pre_table = {k: v for k, v in pre.batching.items() if k != "policy"}
    prefill: list[TokenDriver] = []
    for i in range(pre.replicas):
        hw = build_system(
            sim,
            pre.system,
            chips=pre.plan.mapping.pp,
            network=TokenDriver.needs_network(spec.driver, pre.plan),
            name=f"prefill{i}",
        )
        policy = make_policy(
            pre_name, pre_table, kv_capacity_tokens=pre.plan.kv_capacity_tokens, where="batching"
        )
        sched = Observed(policy, partial(handoff.prefill_done, i), pre_feeds[i])
        handoff.prefill_schedulers.append(sched)
        prefill.append(
            TokenDriver(
                sim, f"prefill_run{i}", model, hw, pre.plan, sched, (), spec.driver, feed=pre_feeds[i]
            )  # type: ignore[arg-type]
        )
    decode: list[TokenDriver] = []
    for i in range(dec.replicas):
        hw = build_system(
            sim,
            dec.system,
            chips=dec.plan.mapping.pp,
            network=TokenDriver.needs_network(spec.driver, dec.plan),
            name=f"decode{i}",
        )
        sched = Observed(dec_policies[i], partial(handoff.decode_done, i))
        decode.append(
            TokenDriver(sim, f"decode_run{i}", model, hw, dec.plan, sched, (), spec.driver, feed=dec_feeds[i])  # type: ignore[arg-type]
        )
    longest = min(pre.mapping.max_context(model), dec.mapping.max_context(model))
    ordered = prefill_stream(_sorted(spec.requests, longest), originals)
    probes = [partial(replica_load, i, drv.scheduler, pre_feeds[i]) for i, drv in enumerate(prefill)]
    router = Router(
        sim, "prefill_router", ordered, pre_feeds, probes, RouterParams(policy=params.prefill_router)
    )
    handoff.close_when(env.all_of([drv.done for drv in prefill]))
    if progress is not None:  # the display reads every request's record and every pool's iterations
        views = [SimpleNamespace(records=handoff.records, iterations=())]
        views += [SimpleNamespace(records={}, iterations=d.iterations) for d in (*prefill, *decode)]
        env.on_tick = lambda: progress(views, sim)
    t0 = time.perf_counter()
    error = None
    try:
        sim.run(until=env.all_of([drv.done for drv in (*prefill, *decode)]))
    except SimulationError as exc:
        error = str(exc)
    wall = time.perf_counter() - t0
    sim.finalize()
    summary = disagg_summary(spec, d, prefill, decode, router, handoff, link, sim.now / PS_PER_S)
    if error is not None:
        summary["error"] = error
    figures = _run_figures(dec.plan, sim, wall)
    figures["capacity"] = {
        f"{pool.role}.{n}": v for pool in (pre, dec) for n, v in pool.plan.capacity_report().items()
    }
    return {**summary, **figures}, decode[0], sim
