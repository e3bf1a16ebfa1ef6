"""One end-to-end run: model + system + mapping + workload -> simulated tokens and a summary.

The workload is a request trace (lowered on the fly by a batching policy, in simulated time), or a
fixed decode batch (``batch`` sequences at ``context`` tokens for ``steps`` iterations, no prefill):
the classic decode study.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sim.core.errors import ConfigError, SimulationError, join_where
from sim.core.limits import MAX_BATCH, MAX_STEPS
from sim.core.registry import lookup
from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S
from sim.driver.token_driver import DriverParams, TokenDriver
from sim.model.spec import ModelSpec
from sim.observe.summary import (
    energy_and_cost,
    mean_by_key,
    queueing,
    replica_figures,
    token_figures,
    utilization,
)
from sim.requests.load import offered_load
from sim.requests.record import Request
from sim.serving.batching import make_policy
from sim.serving.failures import FailureManager, FailureParams, FeedGroup, HeldFeed, collective_summary
from sim.serving.mapping import MappingParams, Plan, plan
from sim.serving.prefix_cache import PrefixCacheParams
from sim.serving.router import RequestFeed, Router, RouterParams, replica_load
from sim.serving.scheduler import FixedDecodeBatch, Scheduler
from sim.shipped import shipped_dir
from sim.system.build import build_system
from sim.system.spec import SystemSpec


@dataclass
class RunSpec:
    """Everything a run needs, resolved."""

    model: ModelSpec
    system: SystemSpec
    mapping: MappingParams
    requests: Iterable[Request] | None = None  # None: fixed decode batch
    batch: int = 1
    context: int = 1024
    steps: int = 16
    batching: dict[str, Any] = field(default_factory=dict)
    driver: DriverParams = field(default_factory=DriverParams)
    seed: int = 0
    label: str = ""
    load: dict[str, Any] = field(default_factory=dict)  # how the requests were offered (rate scale, profile)
    router: RouterParams = field(default_factory=RouterParams)  # spreads requests over mapping.dp replicas
    failures: FailureParams = field(default_factory=FailureParams)  # chip failures and recovery (off)
    disagg: Any = None  # a prefill and a decode pool (sim.experiments.disagg.DisaggSpec); None: one pool
    prefix_cache: PrefixCacheParams = field(default_factory=PrefixCacheParams)  # off by default


def execute(
    spec: RunSpec, scheduler: Scheduler | None = None, progress: Any = None
) -> tuple[dict[str, Any], TokenDriver, Simulation]:
    """Simulate ``spec``; returns the summary, the driver (per-iteration records) and the sim.

    ``scheduler`` replaces the batching policy (e.g. a decode-trace replay); ``progress(driver, sim)``
    is called now and then while it runs (for a progress display; it must not touch the simulation;
    with replicas it gets the list of every replica's driver).
    """
    if spec.disagg is not None:  # refused with a replay scheduler when it was built (build_run)
        from sim.experiments import disagg

        return disagg.execute(spec, progress)
    p = plan(spec.model, spec.system, spec.mapping)
    if spec.mapping.dp > 1 or spec.failures.enabled:
        return _execute_replicas(spec, p, scheduler, progress)
    kv_tokens, cache = p.kv_capacity_tokens, None
    if spec.prefix_cache.enabled:
        from sim.serving.prefix_cache import plan_prefix_cache

        if scheduler is not None or spec.requests is None:
            raise ConfigError(
                "prefix caching needs a request trace run by a batching policy (not a fixed batch "
                "or a decode-trace replay)",
                where="--set prefix_cache.enabled",
            )
        cache, kv_tokens, free = plan_prefix_cache(spec.prefix_cache, p, "--set prefix_cache")
        spec.requests = _checked_trace(spec, cache)
    if scheduler is not None:
        requests: Iterable[Request] = spec.requests or ()
    elif spec.requests is None:
        scheduler = FixedDecodeBatch(spec.batch, spec.context, spec.steps)
        requests = scheduler.requests
    else:
        table = {**spec.system.batching, **spec.batching}
        name = str(table.pop("policy", "continuous"))
        scheduler = make_policy(name, table, kv_capacity_tokens=kv_tokens, where="batching")
        requests = spec.requests
        if cache is not None and spec.prefix_cache.shared_prefix_tokens:
            from sim.serving.prefix_cache import with_shared_prefix

            pc = spec.prefix_cache
            requests = with_shared_prefix(requests, pc.shared_prefix_tokens, pc.block_tokens)
    sim = Simulation(seed=spec.seed, config=_config(spec))
    hardware = build_system(
        sim, spec.system, chips=p.mapping.pp, network=TokenDriver.needs_network(spec.driver, p)
    )
    ordered = _sorted(requests, spec.mapping.max_context(spec.model))
    traffic = None
    if cache is not None:
        from sim.driver.kv_tiers import KVTierTraffic
        from sim.serving.prefix_cache import attach

        attach(scheduler, cache, "--set prefix_cache")
        traffic = KVTierTraffic(sim.env, hardware.chips, cache, free)
    driver = TokenDriver(
        sim, "run", spec.model, hardware, p, scheduler, ordered, spec.driver, kv_tiers=traffic
    )
    if progress is not None:  # called every few thousand events with (driver, sim); display only
        sim.env.on_tick = lambda: progress(driver, sim)
    t0 = time.perf_counter()
    error = None
    try:
        sim.run(until=driver.done)
    except SimulationError as exc:  # a stalled run: keep what was computed, say why it stopped
        error = str(exc)
    wall = time.perf_counter() - t0
    sim.finalize()
    summary = token_figures(driver)
    if spec.requests is not None or scheduler is not None:
        arrivals = [r.request.arrival_ps for r in driver.records.values()]
        summary["offered_load"] = {"source": spec.label, **spec.load, **offered_load(arrivals)}
    if error is not None:
        summary["error"] = error
    if cache is not None and traffic is not None:
        computed = sum(it.prefill_tokens for it in driver.iterations)
        summary["prefix_cache"] = {
            **cache.summary(),
            "prefill_tokens_computed": computed,
            **traffic.summary(sim.now),
            "kv_capacity_tokens_plan": p.kv_capacity_tokens,  # before the pool was carved out
        }
    summary = {
        "system": spec.system.name,
        "model": spec.model.name,
        "mapping": {k: v for k, v in spec.mapping.as_dict().items()},
        **summary,
        **energy_and_cost(driver, sim.now / PS_PER_S),
        "utilization": utilization(driver),
        "queueing_us": queueing(driver),
        **_run_figures(p, sim, wall, kv_tokens),
    }
    _collective_figures(summary, [driver])
    return summary, driver, sim


def _collective_figures(summary: dict[str, Any], drivers: list[TokenDriver]) -> None:
    """The collective timeout's figures, when a timeout or straggler is set (else nothing moves)."""
    d = drivers[0].params
    if d.collective_timeout or d.straggler_delay:  # type: ignore[attr-defined]
        summary["collective_timeout"] = collective_summary(drivers)


def _config(spec: RunSpec) -> dict[str, Any]:
    """The resolved configuration a run writes beside its results."""
    return {
        "system": spec.system.resolved(),
        "model": spec.model.summary(),
        "mapping": spec.mapping.as_dict(),
        "driver": spec.driver.as_dict(),
        "workload": (
            {"batch": spec.batch, "context": spec.context, "steps": spec.steps}
            if spec.requests is None
            else {"trace": spec.label}
        ),
        **({"prefix_cache": spec.prefix_cache.as_dict()} if spec.prefix_cache.enabled else {}),
    }


def _execute_replicas(
    spec: RunSpec, p: Plan, scheduler: Scheduler | None, progress: Any
) -> tuple[dict[str, Any], TokenDriver, Simulation]:
    """``mapping.dp`` replicas in one simulation, each its own chips (built under ``replicaI``),
    driver (``runI``) and batching policy, behind a :class:`~sim.serving.router.Router`. Returns
    the merged summary (``replicas`` holds each one's figures), the first replica's driver and the
    sim (every driver and the router are among ``sim.roots``)."""
    dp = spec.mapping.dp
    pc = spec.prefix_cache
    if pc.enabled and spec.failures.enabled:  # build_run refuses it by key; a RunSpec built in Python too
        raise ConfigError(
            "prefix caching runs on replicas without failures (not yet with failures): drop one",
            where="--set prefix_cache.enabled",
        )
    if pc.enabled and (scheduler is not None or spec.requests is None):
        raise ConfigError(
            "prefix caching needs a request trace run by a batching policy (not a fixed batch "
            "or a decode-trace replay)",
            where="--set prefix_cache.enabled",
        )
    if scheduler is not None or spec.requests is None:
        what = "a decode-trace replay" if scheduler else "a fixed decode batch"
        if spec.failures.enabled:
            raise ConfigError(
                f"failures take requests off a replica and requeue them; {what} has no requests to "
                "requeue (use a request trace or --load)",
                where="failures",
            )
        _one_replica(spec.mapping, what, "mapping")
    table = {**spec.system.batching, **spec.batching}
    name = str(table.pop("policy", "continuous"))
    sim = Simulation(seed=spec.seed, config={**_config(spec), "router": spec.router.as_dict()})
    network = TokenDriver.needs_network(spec.driver, p)
    group = FeedGroup() if spec.failures.enabled else None
    feeds = [RequestFeed(sim.env) if group is None else HeldFeed(sim.env, group) for _ in range(dp)]
    drivers: list[TokenDriver] = []
    tiers: list[Any] = []  # each replica's KV tier traffic (its prefix cache's), when caching
    for i in range(dp):
        hardware = build_system(sim, spec.system, chips=p.mapping.pp, network=network, name=f"replica{i}")
        kv_tokens, traffic = p.kv_capacity_tokens, None
        if pc.enabled:  # one cache per replica (sim.serving.prefix_replicas says why)
            from sim.driver.kv_tiers import KVTierTraffic
            from sim.serving.prefix_cache import attach, plan_prefix_cache

            cache, kv_tokens, free = plan_prefix_cache(pc, p, "--set prefix_cache")
            spec.requests = _checked_trace(spec, cache)
        policy = make_policy(name, table, kv_capacity_tokens=kv_tokens, where="batching")
        if pc.enabled:
            attach(policy, cache, "--set prefix_cache")
            traffic = KVTierTraffic(sim.env, hardware.chips, cache, free)
            tiers.append(traffic)
        drivers.append(
            TokenDriver(
                sim,
                f"run{i}",
                spec.model,
                hardware,
                p,
                policy,
                (),
                spec.driver,
                feed=feeds[i],
                kv_tiers=traffic,
            )
        )
    requests = spec.requests
    if pc.enabled and pc.shared_prefix_tokens:
        from sim.serving.prefix_cache import with_shared_prefix

        requests = with_shared_prefix(requests, pc.shared_prefix_tokens, pc.block_tokens)
    ordered = _sorted(requests, spec.mapping.max_context(spec.model))
    probes = [partial(replica_load, i, d.scheduler, feeds[i]) for i, d in enumerate(drivers)]
    manager = None
    if group is not None:
        group.schedulers = [d.scheduler for d in drivers]
        chips = p.mapping.pp * p.mapping.tp
        manager = FailureManager(
            sim, "failures", spec.failures, drivers, feeds, p.weight_bytes_per_chip, chips
        )
    router = Router(sim, "router", ordered, feeds, probes, spec.router, manager.up if manager else None)
    if manager is not None:
        manager.attach(router)
    if progress is not None:
        sim.env.on_tick = lambda: progress(drivers, sim)
    t0 = time.perf_counter()
    error = None
    try:
        sim.run(until=sim.env.all_of([d.done for d in drivers]))
    except SimulationError as exc:
        error = str(exc)
    wall = time.perf_counter() - t0
    sim.finalize()
    summary = token_figures(drivers)
    arrivals = sorted(r.request.arrival_ps for d in drivers for r in d.records.values())
    summary["offered_load"] = {"source": spec.label, **spec.load, **offered_load(arrivals)}
    if error is not None:
        summary["error"] = error
    parts = replica_figures(drivers, router)
    if tiers:
        from sim.serving.prefix_replicas import merged_summary

        for part, d, traffic in zip(parts, drivers, tiers, strict=True):
            computed = sum(it.prefill_tokens for it in d.iterations)
            part["prefix_cache"] = {
                **traffic.cache.summary(),
                "prefill_tokens_computed": computed,
                **traffic.summary(sim.now),
            }
        summary["prefix_cache"] = merged_summary([part["prefix_cache"] for part in parts])
        summary["prefix_cache"]["kv_capacity_tokens_plan"] = p.kv_capacity_tokens
    summary = {
        "system": spec.system.name,
        "model": spec.model.name,
        "mapping": dict(spec.mapping.as_dict()),
        "router": spec.router.as_dict(),
        **summary,
        **energy_and_cost(drivers, sim.now / PS_PER_S),
        "utilization": mean_by_key([r["utilization"] for r in parts]),
        "queueing_us": mean_by_key([r["queueing_us"] for r in parts]),
        "replicas": parts,
        **_run_figures(p, sim, wall, kv_tokens),
    }
    if manager is not None:
        summary["failures"] = manager.summary()
    _collective_figures(summary, drivers)
    return summary, drivers[0], sim


def _one_replica(mapping: MappingParams, what: str, where: str) -> None:
    """Data parallelism routes requests; a workload without requests to route is one replica's."""
    if mapping.dp != 1:
        raise ConfigError(
            f"data parallelism routes requests to replicas; {what} has none to route: expected "
            f"mapping.dp = 1, found {mapping.dp} (a fixed batch or a decode trace on dp replicas is dp "
            "copies of one)",
            where=join_where(where, "mapping.dp"),
        )


def _run_figures(p: Any, sim: Simulation, wall: float, kv_tokens: int | None = None) -> dict[str, Any]:
    """What every run reports after its simulated figures: capacity, and the simulator's own speed.
    ``kv_tokens``: the KV capacity the batching policy had (the plan's, less a prefix-cache pool)."""
    perf = sim.performance()
    sim_s = sim.now / PS_PER_S
    return {
        "capacity": {f"{n}": v for n, v in p.capacity_report().items()},
        "kv_capacity_tokens": p.kv_capacity_tokens if kv_tokens is None else kv_tokens,
        "sim_time_s": sim_s,
        "events": perf["events"],
        "wall_s": wall,
        "events_per_s": perf["events"] / wall if wall > 0 else 0.0,
        "sim_s_per_wall_s": sim_s / wall if wall > 0 else 0.0,
    }


def _checked_trace(spec: RunSpec, cache: Any) -> list[Request]:
    """The run's requests as a list, with a prefix cache's capacity checked against the trace's
    block size before the run (a tier below one block could never hold one)."""
    from sim.serving.prefix_cache import trace_block_tokens

    requests = list(spec.requests or ())
    cache.check_capacity(
        trace_block_tokens(spec.prefix_cache, requests, (), "--set prefix_cache"), "--set prefix_cache"
    )
    return requests


def _sorted(requests: Iterable[Request], max_context: int) -> Iterator[Request]:
    """Requests in arrival order (trace readers already yield them so; fixed batches too), each
    within the model's longest context."""
    last = -1
    for r in requests:
        if r.arrival_ps < last:
            raise ConfigError(f"request {r.id} arrives before the one listed before it", where="trace")
        if r.prompt_tokens + r.output_tokens - 1 > max_context:  # the last token is not fed back
            raise ConfigError(
                f"request {r.id} reaches {r.prompt_tokens + r.output_tokens - 1:,} tokens of context, "
                f"beyond the model's longest context of {max_context:,} (--set mapping.context_limit=N "
                "to study longer ones)",
                where="trace",
            )
        last = r.arrival_ps
        yield r


# -- building a run from plain settings (the CLI and sweeps share this) --------------------------------
DEFAULT_TRACE = shipped_dir("traces") / "azure_conv_200.csv"
DEFAULT_MODEL = "llama-3.1-8b"
DEFAULT_LIMIT = 24  # requests of the built-in sample trace: a quick look at a real trace
SYSTEM_ROOTS = ("system.", "chip.", "fabric.", "software.", "cost.")
SYSTEM_KEYS = ("software",)  # whole system tables a bare value replaces (software=none: a preset)
RUN_SETTINGS = (
    "system",
    "model",
    "trace",
    "format",
    "limit",
    "batch",
    "context",
    "steps",
    "seed",
    "rate_scale",
    "load",
    "rate",
    "arrival_cv",
)

Tables = tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]]


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


MOVED_KEYS = {
    "prefetch_window": "window",
    "prefetch_unit": "unit",
    "prefetch_policy": "policy",
}
"""Driver settings that became hardware: the prefetch buffer belongs to the memory it serves."""


def _moved(key: str, where: str) -> None:
    bare = key.removeprefix("driver.")
    if bare in MOVED_KEYS:
        raise ConfigError(
            f"{key!r} moved to the system: the prefetch buffer is hardware on the memory it serves; "
            f"use chip.memory.NAME.prefetch.{MOVED_KEYS[bare]} (NAME: a memory of the system, e.g. "
            f"--set chip.memory.hbf.prefetch.{MOVED_KEYS[bare]}=...)",
            where=join_where(where, key),
        )


def split_sets(sets: Mapping[str, Any], where: str = "--set") -> Tables:
    """``--set`` keys by destination: (system file, mapping, driver, batching), values as strings.

    Dotted keys under ``chip.``, ``fabric.`` and ``system.`` change the system file; ``mapping.``,
    ``driver.`` and ``batching.`` name their table; a bare key goes to whichever of mapping or
    driver declares it, else to the batching policy (which validates its own keys).
    """
    mapping_keys = {n for n, _, _ in MappingParams.specs()}
    driver_keys = {n for n, _, _ in DriverParams.specs()}
    system: dict[str, str] = {}
    mapping: dict[str, str] = {}
    driver: dict[str, str] = {}
    batching: dict[str, str] = {}
    for key, raw in sets.items():
        _moved(key, where)
        value = _text(raw)
        table, _, bare = key.partition(".")
        if key.startswith(SYSTEM_ROOTS) or key in SYSTEM_KEYS:
            system[key] = value
        elif bare and table == "mapping":
            mapping[bare] = value
        elif bare and table == "driver":
            driver[bare] = value
        elif bare and table == "batching":
            batching[bare] = value
        elif key in mapping_keys:
            mapping[key] = value
        elif key in driver_keys:
            driver[key] = value
        else:
            batching[key] = value
    return system, mapping, driver, batching


def build_run(settings: Mapping[str, Any], where: str = "--set") -> tuple[RunSpec, Any]:
    """A :class:`RunSpec` (and a replay scheduler, or None) from ``memwall run`` settings; see
    :func:`_build_run`. ``router.KEY`` settings (:class:`~sim.serving.router.RouterParams`) choose
    how requests are spread over ``mapping.dp`` replicas; ``disagg.KEY`` settings
    (:class:`~sim.serving.disagg.DisaggParams`) split the run into a prefill and a decode pool."""
    from sim.experiments.disagg import disaggregation

    sets = dict(settings.get("set") or {})
    routing = {k.removeprefix("router."): _text(sets.pop(k)) for k in list(sets) if k.startswith("router.")}
    prefix = {
        k.removeprefix("prefix_cache."): _text(sets.pop(k))
        for k in list(sets)
        if k.startswith("prefix_cache.")
    }
    failing = {
        k.removeprefix("failures."): _text(sets.pop(k)) for k in list(sets) if k.startswith("failures.")
    }
    pools = {k.removeprefix("disagg."): _text(sets.pop(k)) for k in list(sets) if k.startswith("disagg.")}
    spec, scheduler = _build_run({**settings, "set": sets}, where)
    if prefix:
        spec.prefix_cache = PrefixCacheParams.from_mapping(prefix, where=join_where(where, "prefix_cache"))
        others = [k for k in prefix if k != "enabled"]
        if others and not spec.prefix_cache.enabled:
            key = others[0]
            raise ConfigError(
                "prefix caching is off, so this setting does nothing; add --set prefix_cache.enabled=true",
                where=join_where(where, f"prefix_cache.{key}"),
            )
        if spec.prefix_cache.enabled and spec.requests is not None:
            from sim.serving.prefix_cache import trace_block_tokens

            spec.requests = list(spec.requests)
            trace_block_tokens(spec.prefix_cache, spec.requests, prefix, join_where(where, "prefix_cache"))
    if failing:
        spec.failures = FailureParams.from_mapping(failing, where=join_where(where, "failures"))
        others = [k for k in failing if k not in ("at", "chip_fit")]
        if others and not spec.failures.enabled:
            raise ConfigError(
                "no failures are injected (neither failures.at nor failures.chip_fit), so this setting "
                "does nothing",
                where=join_where(where, f"failures.{others[0]}"),
            )
        if spec.failures.enabled and (scheduler is not None or spec.requests is None):
            raise ConfigError(
                "failures take requests off a replica and requeue them; a fixed batch or a decode-trace "
                "replay has none (use a request trace or --load)",
                where=join_where(where, f"failures.{next(iter(failing))}"),
            )
    spec.disagg = disaggregation(spec, scheduler, pools, sets, bool(routing), where)
    if spec.disagg is not None and spec.failures.enabled:
        raise ConfigError(
            "failures are injected into the replicas of one pool; a disaggregated run has two (not "
            "supported yet): drop the failures.* or the disagg.* settings",
            where=join_where(where, f"failures.{next(iter(failing))}"),
        )
    if spec.prefix_cache.enabled and (spec.disagg is not None or spec.failures.enabled):
        raise ConfigError(
            "prefix caching runs in one pool of replicas without failures (not yet with "
            + ("disaggregation" if spec.disagg is not None else "failures")
            + "): drop the prefix_cache.* settings or the other feature's",
            where=join_where(where, "prefix_cache.enabled"),
        )
    _check_collective_settings(spec, where)
    if routing:
        if spec.mapping.dp == 1:
            key = f"router.{next(iter(routing))}"
            raise ConfigError(
                "the request router spreads requests over replicas; it needs mapping.dp > 1",
                where=join_where(where, key),
            )
        spec.router = RouterParams.from_mapping(routing, where=join_where(where, "router"))
        needs_cache = getattr(lookup("request_router", spec.router.policy), "needs_prefix_cache", False)
        if needs_cache and not spec.prefix_cache.enabled:
            raise ConfigError(
                f"routing policy {spec.router.policy!r} routes by what the replicas' prefix "
                "caches hold; add --set prefix_cache.enabled=true",
                where=join_where(where, "router.policy"),
            )
    return spec, scheduler


def _check_collective_settings(spec: RunSpec, where: str) -> None:
    """Straggler and timeout settings act on collectives: refuse them where none run."""
    d = spec.driver
    if d.straggler_probability != 1.0 and not d.straggler_delay:
        raise ConfigError(
            "no straggler is injected (driver.straggler_delay = 0), so its probability does nothing",
            where=join_where(where, "driver.straggler_probability"),
        )
    m = spec.mapping
    if (d.collective_timeout or d.straggler_delay) and spec.disagg is None and m.tp == 1 and m.ep == 1:
        key = "collective_timeout" if d.collective_timeout else "straggler_delay"
        raise ConfigError(
            "this mapping runs no collectives (tp = 1, ep = 1), so this setting does nothing",
            where=join_where(where, f"driver.{key}"),
        )


def _build_run(settings: Mapping[str, Any], where: str = "--set") -> tuple[RunSpec, Any]:
    """A :class:`RunSpec` (and a replay scheduler, or None) from ``memwall run`` settings.

    ``settings`` holds any of :data:`RUN_SETTINGS` plus ``set``, a mapping of ``--set`` keys;
    ``system`` and ``model`` may be names, paths or already resolved specs. The
    workload is a decode trace (replayed), a request trace (``limit`` requests; the built-in sample
    trace when none is given) or, when ``batch``, ``context`` or ``steps`` is given, a fixed batch.
    """
    from sim.requests.load import profile_requests, rate_scaled
    from sim.requests.readers import open_trace
    from sim.serving.decode_trace import (
        ReplayScheduler,
        is_decode_trace,
        read_decode_trace,
        requests_in_order,
    )
    from sim.serving.mapping import mapping_from

    s = dict(settings)
    sys_set, map_set, drv_set, batch_set = split_sets(s.get("set") or {}, where)
    system = _system(s.get("system"), sys_set, where)
    driver = DriverParams.from_mapping(drv_set, where=join_where(where, "driver"))
    seed = int(s.get("seed") or 0)
    trace_path = s.get("trace")
    fixed = [k for k in ("batch", "context", "steps") if s.get(k) is not None]
    if trace_path and is_decode_trace(str(trace_path)):
        _unused(s, batch_set, ("format", "limit", *fixed, *LOAD_KEYS), "a decode-trace replay", where)
        trace = read_decode_trace(str(trace_path))
        model = _model(s.get("model") or trace.header.get("model", DEFAULT_MODEL))
        header = {k: _text(v) for k, v in trace.header.get("mapping", {}).items()}
        mapping = mapping_from(system, header, where=f"{trace_path}: header.mapping")
        if map_set:
            mapping = mapping.replace(map_set, where=f"{where} mapping")
        _one_replica(mapping, "a decode-trace replay", where)
        spec = RunSpec(
            model, system, mapping, requests_in_order(trace), driver=driver, seed=seed, label=str(trace_path)
        )
        return spec, ReplayScheduler(trace)
    model = _model(s.get("model") or DEFAULT_MODEL)
    mapping = mapping_from(system, map_set, where=f"{where} mapping")
    if fixed:
        _unused(
            s,
            batch_set,
            ("trace", "format", "limit", "requests", *LOAD_KEYS),
            "a fixed-batch decode run",
            where,
        )
        _one_replica(mapping, "a fixed decode batch", where)
        batch, context, steps = (
            _bounded(s, "batch", 1, MAX_BATCH),
            _bounded(s, "context", 1024, mapping.max_context(model)),
            _bounded(s, "steps", 16, MAX_STEPS),
        )
        if context + steps > mapping.max_context(model):
            raise ConfigError(
                f"expected context + steps <= {mapping.max_context(model):,} tokens ({model.name}'s "
                f"longest context; --set mapping.context_limit=N to go beyond it), found {context} + {steps}",
                where="--context",
            )
        spec = RunSpec(
            model,
            system,
            mapping,
            None,
            batch=batch,
            context=context,
            steps=steps,
            driver=driver,
            seed=seed,
            label="fixed batch",
        )
        return spec, None
    if s.get("requests") is not None:  # from Python: request records in arrival order
        _unused(s, {}, ("trace", "format", "limit", *LOAD_KEYS), "a run of request records", where)
        spec = RunSpec(
            model,
            system,
            mapping,
            s["requests"],
            batching=batch_set,
            driver=driver,
            seed=seed,
            label="requests (Python)",
        )
        return spec, None
    if s.get("load") is not None:
        if trace_path:
            raise ConfigError(
                "synthetic load (--load) and a trace are two workloads; give one", where="--load"
            )
        _unused(s, {}, ("format", "rate_scale"), "a synthetic load", where)
        rate = _positive(s, "rate", 1.0)
        cv = _positive(s, "arrival_cv", 1.0)
        count = s.get("limit") or DEFAULT_LOAD_REQUESTS
        profile = str(s["load"])
        requests = profile_requests(profile, rate, count, seed, cv)
        load = {"profile": profile, "nominal_rate_per_s": rate, "arrival_cv": cv}
        label = f"--load {profile} --rate {rate:g} ({count} requests)"
        return RunSpec(
            model,
            system,
            mapping,
            requests,
            batching=batch_set,
            driver=driver,
            seed=seed,
            label=label,
            load=load,
        ), None
    _unused(s, {}, ("rate", "arrival_cv"), "a trace replay (they shape --load)", where)
    path = str(trace_path or DEFAULT_TRACE)
    limit = s.get("limit")
    if limit is None and not trace_path:
        limit = DEFAULT_LIMIT
    trace_requests = open_trace(path, s.get("format"), limit=limit)
    scale = _positive(s, "rate_scale", 1.0)
    spec = RunSpec(
        model,
        system,
        mapping,
        rate_scaled(trace_requests, scale) if scale != 1.0 else trace_requests,
        batching=batch_set,
        driver=driver,
        seed=seed,
        label=f"{trace_path or 'traces/' + DEFAULT_TRACE.name} (limit {limit})",  # not where it is installed
        load={"rate_scale": scale},
    )
    return spec, None


LOAD_KEYS = ("rate_scale", "load", "rate", "arrival_cv")
DEFAULT_LOAD_REQUESTS = 200  # requests of a synthetic load when --limit is not given


def _positive(s: Mapping[str, Any], key: str, default: float) -> float:
    """A positive, finite real run setting (its default when not given)."""
    value = s.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigError(f"expected a number > 0, found {value!r}", where=f"--{key.replace('_', '-')}")
    return float(value)


def _unused(
    s: Mapping[str, Any], batching: Mapping[str, str], keys: tuple[str, ...], mode: str, where: str
) -> None:
    """A setting the run's mode does not use is an error, not silently ignored."""
    given = [k for k in keys if s.get(k) is not None]
    if given:
        flags = [f"--{k.replace('_', '-')}" for k in given]
        raise ConfigError(f"{mode} does not use {', '.join(flags)}; remove it", where=flags[0])
    if batching:
        bare = next(iter(batching))
        key = next((k for k in (s.get("set") or {}) if k in (bare, f"batching.{bare}")), bare)
        raise ConfigError(
            f"{mode} has no batching policy, and {key!r} is not a system, mapping or driver key "
            f"either (mapping keys: {', '.join(n for n, _, _ in MappingParams.specs())})",
            where=join_where(where, key),
        )


def _bounded(s: Mapping[str, Any], key: str, default: int, high: int) -> int:
    """A whole-number run setting in [1, high] (its default when not given)."""
    value = s.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        hint = (
            " (the model's longest context; --set mapping.context_limit=N to go beyond)"
            if key == "context"
            else ""
        )
        raise ConfigError(
            f"expected a whole number from 1 to {high:,}{hint}, found {value!r}", where=f"--{key}"
        )
    return value


def _system(system: Any, overrides: Mapping[str, str], where: str) -> SystemSpec:
    """A system by name or path (with ``--set`` overrides of its file), or a resolved spec as is."""
    from sim.system.spec import load_system

    if isinstance(system, SystemSpec):
        if overrides:
            raise ConfigError(
                f"cannot apply {', '.join(sorted(overrides))} to an already resolved system; pass its "
                "name or file, or build the SystemSpec with those values",
                where=where,
            )
        return system
    return load_system(str(system or "default"), overrides)


def _model(model: Any) -> ModelSpec:
    from sim.model.spec import load_model

    return model if isinstance(model, ModelSpec) else load_model(str(model))
