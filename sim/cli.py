"""The ``memwall`` command line: parses arguments, calls the runners and prints their results.

Simulation components never print; the commands here (and the ``report`` and ``sweep`` commands,
whose parsers live beside their runners in :mod:`sim.observe.report` and
:mod:`sim.experiments.sweep`, and the progress display of :mod:`sim.observe.progress`) are what
writes to the terminal. Every :class:`MemwallError` (bad input, unknown names, a stalled run)
becomes one line on stderr and exit code 2; so do argparse's usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from sim import __version__
from sim.core.errors import ConfigError, MemwallError, SimulationError
from sim.core.limits import MAX_BATCH, MAX_REQUESTS, MAX_STEPS, MAX_TIMELINE_OPS, MAX_TOKENS
from sim.core.params import parse_override
from sim.core.units import UnitError, format_bandwidth, format_size, parse_size
from sim.observe.progress import Status
from sim.observe.timeline import KEEP, MAX_OPS
from sim.program import EXIT_INTERRUPTED


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2 (never a usage dump on a typo)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"memwall: error: {message} (see '{self.prog} --help')\n")


def _size(text: str) -> int:
    try:
        value = parse_size(text)
    except UnitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a size > 0 such as '4KiB', found {text!r}")
    return value


def _positive_int(text: str, high: int = 2**62) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, found {text[:40]!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, found {text[:40]!r}")
    if value > high:
        raise argparse.ArgumentTypeError(f"expected a whole number up to {high:,}, found {text[:40]!r}")
    return value


def _up_to(high: int) -> Callable[[str], int]:
    """A positive whole number no larger than ``high`` (a documented limit of sim.core.limits)."""

    def parse(text: str) -> int:
        return _positive_int(text, high)

    parse.__name__ = "whole number"
    return parse


def _positive_real(text: str) -> float:
    """A finite number > 0 (rates and scales)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, found {text[:40]!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, found {text[:40]!r}")
    return value


def _overrides(items: Sequence[str] | None) -> dict[str, str]:
    return dict(parse_override(item) for item in items or ())


# -- membench ---------------------------------------------------------------------------------
def cmd_membench(args: argparse.Namespace) -> int:
    from sim.experiments.membench import MembenchParams, run_membench
    from sim.memory.factory import resolve_device

    spec = resolve_device(args.device, _overrides(args.set), args.fidelity)
    flags = {"request_size": "--request-size", "total_bytes": "--bytes", "write_ratio": "--write-ratio"}
    try:
        params = MembenchParams(
            pattern=args.pattern,
            request_size=args.request_size,
            concurrency=args.concurrency,
            total_bytes=args.bytes,
            write_ratio=args.write_ratio,
        )
    except ConfigError as exc:  # name the flag the user typed, not the parameter behind it
        raise ConfigError(exc.message, where=flags.get(exc.where or "", exc.where)) from None
    with Status("memwall membench", quiet=args.quiet or args.json, unit="requests") as status:
        result = run_membench(spec, params, seed=args.seed, progress=lambda done, n: status.update(done, n))
    if args.json:
        if not args.stats:
            result = {k: v for k, v in result.items() if k not in ("stats", "config")}
        print(json.dumps(result, sort_keys=True))
    elif not args.quiet:
        _print_membench(result)
    return 0


def _print_membench(r: dict[str, Any]) -> None:
    rows = [
        ("device", f"{r['device']} ({r['kind']}, {r['fidelity']})"),
        (
            "pattern",
            f"{r['pattern']}, {format_size(r['request_size_bytes'])} requests, "
            f"concurrency {r['concurrency']}, write ratio {r['write_ratio']:g}",
        ),
        ("moved", f"{format_size(r['bytes'])} in {r['requests']} requests"),
        (
            "achieved bandwidth",
            f"{format_bandwidth(r['achieved_bandwidth_Bps'])} ({100 * r['fraction_of_peak']:.1f}% of peak)",
        ),
        ("peak bandwidth (twin)", format_bandwidth(r["peak_bandwidth_Bps"])),
        (
            "latency mean / p50 / p99",
            f"{r['mean_latency_ns']:.1f} / {r['p50_latency_ns']:.1f} / {r['p99_latency_ns']:.1f} ns",
        ),
        ("unloaded latency (twin)", f"{r['unloaded_latency_ns']:.1f} ns"),
        ("energy", f"{r['energy_pj_per_byte']:.3g} pJ/B"),
        ("simulated time", f"{r['sim_time_s'] * 1e6:.3f} us"),
        (
            "simulator speed",
            f"{r['events']} events in {r['wall_s']:.3f} s = "
            f"{r['events_per_s']:,.0f} events/s, "
            f"{r['sim_s_per_wall_s'] * 1e6:.3g} us simulated per wall s, "
            f"{format_bandwidth(r['simulated_bytes_per_wall_s'])} simulated",
        ),
    ]
    _print_table("memwall membench", rows)


def _print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        width = max(len(k) for k, _ in rows)
        print(title)
        for key, value in rows:
            print(f"  {key:<{width}}  {value}")
        return
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


# -- describe ---------------------------------------------------------------------------------
def cmd_describe(args: argparse.Namespace) -> int:
    from sim.core import registry

    if args.name is None:
        for kind in registry.kinds():
            print(f"{kind}: {', '.join(registry.names(kind))}")
        return 0
    if args.name in registry.kinds():
        for name, obj in registry.items(args.name):
            print(f"{name:<24} {_first_line(obj)}")
        return 0
    found = registry.find(args.name)
    if not found:
        known = ", ".join(registry.kinds())
        raise ConfigError(
            f"nothing registered as {args.name!r}; try one of the kinds ({known}) "
            f"or 'memwall describe' for every name",
            where="describe",
        )
    for kind, obj in found:
        _describe_one(kind, args.name, obj)
    return 0


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "description", None) or (obj.__doc__ or "")
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _describe_one(kind: str, name: str, obj: Any) -> None:
    from sim.core.preset import Preset

    print(f"{kind} {name}: {_first_line(obj)}")
    if isinstance(obj, Preset):
        print(f"  for kind: {obj.kind}")
        width = max((len(k) for k in obj.values), default=0)
        for key, (value, source) in obj.values.items():
            print(f"  {key:<{width}}  {value!s:<12} {source}")
        return
    params_cls = getattr(obj, "Params", None)
    if params_cls is not None:
        print("  parameters:")
        for pname, spec, default in params_cls.specs():
            unit = spec.dimension.internal_unit if spec.dimension else spec.kind.__name__
            print(f"    {pname:<22} [{unit or '-'}] default {default!s:<10} {spec.doc}")
    stats = getattr(obj, "declared_stats", None)
    if stats is not None:
        print("  stats:")
        for decl in stats():
            print(f"    {decl.name:<22} {decl.kind:<9} [{decl.unit}] {decl.doc}")


# -- fabric: noc and collective ----------------------------------------------------------------
def _topology(args: argparse.Namespace) -> Any:
    """A validated topology graph from --topology (file or generator) and its size flags."""
    from pathlib import Path

    from sim.topology import load_topology, topology_from_mapping

    spec = args.topology
    if spec.endswith(".toml") or Path(spec).is_file():
        return load_topology(spec)
    table: dict[str, Any] = {"kind": spec}
    for flag in ("k", "n", "p", "radix", "levels", "a", "h", "g"):
        value = getattr(args, flag, None)
        if value is not None:
            table[flag] = value
    if args.link_latency is not None:
        table["latency"] = args.link_latency
    return topology_from_mapping(table, where="--topology")


def _fabric_params(args: argparse.Namespace) -> tuple[Any, Any]:
    """NetworkParams and RouterParams from flags plus --set overrides (routed by key name)."""
    from sim.fabric.network import NetworkParams
    from sim.fabric.router import RouterParams

    router_keys = {name for name, _, _ in RouterParams.specs()}
    net_keys = {name for name, _, _ in NetworkParams.specs()}
    router_set: dict[str, Any] = {"vcs": args.vcs, "vc_buffer": args.vc_buffer}
    net_set: dict[str, Any] = {"routing": args.routing}
    for key, value in _overrides(args.set).items():
        if key in router_keys:
            router_set[key] = value
        elif key in net_keys:
            net_set[key] = value
        else:
            known = ", ".join(sorted(router_keys | net_keys))
            raise ConfigError(f"unknown parameter {key!r}; expected one of: {known}", where=f"--set.{key}")
    return (
        NetworkParams.from_mapping(net_set, where="--set"),
        RouterParams.from_mapping(router_set, where="--set"),
    )


def cmd_noc(args: argparse.Namespace) -> int:
    from sim.experiments.noc import NocRunParams, run_noc, sweep_rates

    graph = _topology(args)
    net, router = _fabric_params(args)
    rates = sweep_rates(args.sweep) if args.sweep else [args.rate]
    if args.out:
        from sim.core.atomic import check_result_dir

        check_result_dir(args.out)  # before the run, not after it
    results = []
    for rate in rates:
        run = NocRunParams.from_mapping(
            {
                "traffic": args.traffic,
                "rate": rate,
                "packet_flits": args.packet_flits,
                "warmup": args.warmup,
                "measure": args.measure,
                "drain": args.drain,
                "fidelity": args.fidelity,
            },
            where="noc",
        )
        with Status("memwall noc", quiet=args.quiet or args.json, unit="cycles") as status:
            point = [f"rate {rate:g} ({len(results) + 1} of {len(rates)})"] if args.sweep else []
            r = run_noc(
                graph,
                run,
                net,
                router,
                seed=args.seed,
                progress=lambda c, n, at=point: status.update(c, n, at),
                links=bool(args.out),
            )
        results.append(r)
        if not args.json and not args.quiet:
            _print_noc(r)
        if r["saturated"] and args.sweep:
            break  # past saturation the latency is unbounded; stop the sweep there
    links = [r.pop("link_utilization", None) for r in results]
    if args.out:
        _write_noc(args.out, graph, results if args.sweep else results[0], links[-1])
    if args.json:
        print(json.dumps(results if args.sweep else results[0], sort_keys=True))
    return 0


def _write_noc(out: str, graph: Any, results: Any, links: dict[str, float] | None) -> None:
    """``noc.json`` and, for a square 2-D mesh or torus at flit level, ``mesh_links.json``."""
    from sim.core.atomic import result_dir

    shape = tuple(graph.graph.get("shape") or ())
    square = graph.graph.get("kind") in ("mesh", "torus") and len(shape) == 2 and shape[0] == shape[1]
    with result_dir(out) as tmp:
        (tmp / "noc.json").write_text(json.dumps(results, sort_keys=True, indent=1) + "\n", encoding="utf-8")
        if links is not None and square:
            mesh = {"k": shape[0], "links": links}
            (tmp / "mesh_links.json").write_text(json.dumps(mesh, sort_keys=True) + "\n", encoding="utf-8")


def _print_noc(r: dict[str, Any]) -> None:
    flag = "  SATURATED" if r["saturated"] else ""
    if r["deadlock"]:
        flag = f"  {r['deadlock']}"
    print(
        f"{r['topology']} {r['traffic']} {r['routing']} {r['fidelity']}: offered "
        f"{r['offered_flits_per_node_cycle']:.3f} accepted {r['accepted_flits_per_node_cycle']:.3f} "
        f"flits/node/cycle, latency mean {r['mean_packet_latency_cycles']:.1f} "
        f"p99 {r['p99_packet_latency_cycles']:.0f} cycles, hops {r['avg_hops']:.2f}; "
        f"{r['events']} events, {r['wall_s']:.2f} s, {r['flit_hops_per_s']:,.0f} flit-hops/s{flag}"
    )


def cmd_collective(args: argparse.Namespace) -> int:
    from sim.experiments.collective import run_collective
    from sim.fabric.collectives import DEFAULT_ALGORITHM, CollectiveCase

    graph = _topology(args)
    net, router = _fabric_params(args)
    terminals = len(graph.graph["terminals"])
    group = args.group or terminals
    if group > terminals:
        raise ConfigError(
            f"expected a group of at most {terminals} ranks (the topology's terminals), found {group}",
            where="--group",
        )
    algorithm = args.algorithm or DEFAULT_ALGORITHM.get(args.op, "ring")
    case = CollectiveCase(args.op, algorithm, args.bytes, tuple(range(group)))
    r = run_collective(graph, case, net, router, fidelity=args.fidelity, seed=args.seed)
    if args.json:
        print(json.dumps(r, sort_keys=True))
    else:
        print(
            f"{r['op']} ({r['algorithm']}) of {format_size(r['bytes'])} over {r['group']} ranks on "
            f"{r['topology']} [{r['fidelity']}]: {r['time_us']:.3f} us (alpha-beta twin "
            f"{r['twin_time_us']:.3f} us), {format_size(r['link_bytes'])} over links; "
            f"{r['events']} events in {r['wall_s']:.3f} s"
        )
    return 0


def _add_fabric_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--topology",
        default="mesh",
        help="generator name (mesh, torus, ring, fully_connected, tree, fat_tree, dragonfly) "
        "or a topology TOML file",
    )
    sp.add_argument("--k", type=_positive_int, help="radix (mesh, torus, ring, fully_connected, fat_tree)")
    sp.add_argument("--n", type=_positive_int, help="dimensions (mesh, torus)")
    sp.add_argument("--p", type=_positive_int, help="terminals per router (direct networks, dragonfly)")
    sp.add_argument("--radix", type=_positive_int, help="tree radix")
    sp.add_argument("--levels", type=_positive_int, help="tree / fat tree levels")
    sp.add_argument("--a", type=_positive_int, help="dragonfly routers per group")
    sp.add_argument("--h", type=_positive_int, help="dragonfly global links per router")
    sp.add_argument("--g", type=_positive_int, help="dragonfly groups")
    sp.add_argument("--link-latency", type=_positive_int, help="cycles per link (default 1)")
    sp.add_argument("--routing", default="auto", help="routing function (default: the topology's own)")
    sp.add_argument("--vcs", type=_positive_int, default=4)
    sp.add_argument("--vc-buffer", type=_positive_int, default=8, help="flits per VC buffer")
    sp.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any router or network parameter, e.g. --set t_rc=2 --set flit_bytes=32B",
    )
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--json", action="store_true")


# -- run, trace gen, mappings --------------------------------------------------------------------
def _sets(items: Sequence[str] | None) -> Any:
    """--set overrides by destination: (system file, mapping, driver, batching)."""
    from sim.experiments.run import split_sets

    return split_sets(_overrides(items))


def _requests(args: argparse.Namespace, path: str) -> Any:
    from sim.requests.readers import open_trace

    return open_trace(path, args.format, limit=args.limit)


def cmd_run(args: argparse.Namespace) -> int:
    from sim.experiments.run import build_run, execute
    from sim.observe.progress import RunProgress
    from sim.observe.writers import write_run

    sets = _overrides(args.set)
    if (args.out or args.timeline) and not any(k.endswith("record_ops") for k in sets):
        sets["driver.record_ops"] = "true"  # --out writes the full blame chain (ops.csv), --timeline draws it
    if not args.timeline:
        for flag, value in (("--timeline-ops", args.timeline_ops), ("--timeline-keep", args.timeline_keep)):
            if value is not None:
                raise ConfigError("it shapes the timeline, and no --timeline FILE is asked for", where=flag)
    if args.timeline:
        from pathlib import Path

        target = Path(args.timeline)  # checked before the run, not after it
        if target.is_dir() or not target.parent.is_dir():
            why = "it is a directory" if target.is_dir() else f"no directory {target.parent}"
            raise ConfigError(f"cannot write {target}: {why}", where="--timeline")
        for given in (args.trace, args.system):
            if given and target.exists() and Path(given).exists() and target.samefile(given):
                raise ConfigError(
                    f"{target} is an input of this run; choose another file", where="--timeline"
                )
    if args.out:
        from sim.core.atomic import check_result_dir

        check_result_dir(args.out)  # before the run, not after it
    settings = {
        "system": args.system,
        "model": args.model,
        "trace": args.trace,
        "format": args.format,
        "limit": args.limit,
        "batch": args.batch,
        "context": args.context,
        "steps": args.steps,
        "seed": args.seed,
        "rate_scale": args.rate_scale,
        "load": args.load,
        "rate": args.rate,
        "arrival_cv": args.arrival_cv,
        "set": sets,
    }
    spec, scheduler = build_run(settings)
    if spec.requests is not None and not isinstance(spec.requests, list):
        spec.requests = list(spec.requests)  # read (and checked) up front: the progress knows the total
    with RunProgress(spec, quiet=args.quiet) as bar:
        summary, drv, sim = execute(spec, scheduler=scheduler, progress=bar.update if bar.enabled else None)
    if "replicas" in summary:  # every replica's driver, in replica order
        from sim.driver.token_driver import TokenDriver

        drv = [root for root in sim.roots if isinstance(root, TokenDriver)]
    if args.out:
        if spec.disagg is not None:  # two pools and the KV link: sim.observe.disagg_files
            from sim.observe.disagg_files import write_disagg_run

            write_disagg_run(args.out, summary, sim)
        else:
            write_run(args.out, summary, drv, sim)
    if args.timeline:
        from sim.observe.timeline import write_timeline

        keep = args.timeline_keep or "first"
        if spec.disagg is not None:
            from sim.observe.disagg_files import write_disagg_timeline

            cuts = write_disagg_timeline(args.timeline, sim, args.timeline_ops, keep)
        else:
            outages = summary.get("failures", {}).get("events", ())
            cuts = write_timeline(args.timeline, drv, args.timeline_ops, keep, outages)
        for said in [] if args.quiet else cuts:
            print(f"memwall: timeline: {said}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    elif not args.quiet:
        _print_run(summary)
    if "error" in summary:  # the results up to the stall are printed and written above
        raise SimulationError(f"run stopped early: {summary['error']}")
    return 0


def _replicas(r: dict[str, Any]) -> str:
    """One line per replica: requests routed, tokens, tokens/s, compute-die utilisation."""
    lines = [f"{len(r['replicas'])} behind the {r['router']['policy']} router"]
    for x in r["replicas"]:
        die = ", ".join(
            f"{k} {100 * v:.1f}%" for k, v in x["utilization"].items() if k.endswith("compute_die")
        )
        lines.append(
            f"replica {x['replica']}: {x['requests']} requests, {x['tokens']} tokens, "
            f"{x['tokens_per_s']:,.1f} tokens/s, TTFT p99 {x['ttft_ms']['p99']:.3f} ms; {die}"
        )
    return "\n    ".join(lines)


def _disaggregation(r: dict[str, Any]) -> str:
    from sim.observe.disagg import describe

    return describe(r)


def _print_run(r: dict[str, Any]) -> None:
    def dist(d: dict[str, float]) -> str:
        return f"mean {d['mean']:.3f}  p50 {d['p50']:.3f}  p99 {d['p99']:.3f} ms"

    m = r["mapping"]
    rows = [
        (
            "system / model",
            f"{r['system']} / {r['model']} (tp {m['tp']}, pp {m['pp']}, ep {m['ep']}; "
            f"weights on {m['weights'] or 'first memory'}, KV on {m['kv'] or 'first memory'})",
        ),
        (
            "requests / tokens",
            f"{r['requests']} requests, {r['tokens']} output tokens in {r['iterations']} iterations",
        ),
        *([("offered load", _offered(r["offered_load"]))] if "offered_load" in r else []),
        ("TTFT", dist(r["ttft_ms"])),
        ("TPOT", dist(r["tpot_ms"])),
        ("step time", dist(r["step_time_ms"])),
        ("hardware / software", _split(r)),
        ("throughput", f"{r['tokens_per_s']:,.1f} tokens/s"),
        *([("replicas", _replicas(r))] if "replicas" in r else []),
        *([("failures", _failures(r["failures"]))] if "failures" in r else []),
        *([("collective timeout", _timeouts(r["collective_timeout"]))] if "collective_timeout" in r else []),
        *([("disaggregation", _disaggregation(r))] if "disaggregation" in r else []),
        *([("prefix cache", _prefix_cache(r["prefix_cache"]))] if "prefix_cache" in r else []),
        (
            "critical path",
            ", ".join(
                f"{k} {100 * v:.1f}%" for k, v in sorted(r["stall_breakdown"].items(), key=lambda kv: -kv[1])
            ),
        ),
        ("utilization", ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["utilization"].items())),
        (
            "capacity per chip",
            ", ".join(
                f"{k} {format_size(v['used_bytes'])} of {format_size(v['total_bytes'])}"
                for k, v in r["capacity"].items()
            ),
        ),
        (
            "physical bounds",
            "every op within its bytes / peak bandwidth and FLOPs / peak rate"
            if not r["bound_violations"]
            else f"{r['bound_violations']:,} ops beat their bound, e.g. {r['bound_violation_examples'][0]}",
        ),
        ("iteration reuse", _reuse(r)),
        (
            "simulator",
            f"{r['events']:,} events in {r['wall_s']:.2f} s = {r['events_per_s']:,.0f} events/s, "
            f"{r['sim_s_per_wall_s']:.3g} simulated s per wall s",
        ),
    ]
    _print_table("memwall run", rows)


def _failures(f: dict[str, Any]) -> str:
    """Failures, downtime and the requests they cost (sim.serving.failures)."""
    return (
        f"{f['failures']} with recovery {f['recovery']} ({f['downtime_per_failure_s']:.3g} s each), "
        f"{f['downtime_s']:.3g} s down; {f['lost_iterations']} iterations lost, "
        f"{f['requests_recomputed']} requests recomputed ({f['recomputed_tokens']:,} tokens), "
        f"{f['requests_migrated']} migrated"
    )


def _timeouts(c: dict[str, Any]) -> str:
    """How often a collective was abandoned at the timeout (stale data used)."""
    return (
        f"{c['timeouts']:,} of {c['collectives']:,} collectives timed out at {c['timeout_ms']:g} ms "
        f"(stale data used); {c['stragglers']:,} had a straggler of {c['straggler_delay_ms']:g} ms"
    )


def _prefix_cache(s: dict[str, Any]) -> str:
    from sim.serving.prefix_cache import summary_line

    return summary_line(s)


def _offered(load: dict[str, Any]) -> str:
    """The load a request run was offered (sim.requests.load)."""
    how = (
        f"profile {load['profile']} at {load['nominal_rate_per_s']:g}/s"
        if "profile" in load
        else f"rate scale {load.get('rate_scale', 1.0):g}"
    )
    return f"{load['rate_per_s']:.3g} requests/s measured over {load['span_s']:.3g} s ({how})"


def _reuse(r: dict[str, Any]) -> str:
    """How many iterations were replayed from an earlier one of their shape, and the error the
    sampled full simulations measured (sim.driver.reuse)."""
    u = r["reuse"]
    if "hits" not in u:
        return "off: every iteration simulated in full"
    replayed = u["hits"] - u["sampled"]
    return (
        f"{replayed:,} of {r['iterations']:,} iterations replayed ({u['shapes']:,} shapes); "
        f"{u['sampled']:,} checked in full: error max {100 * u['max_rel_error']:.4f}% "
        f"(--set driver.reuse=false: none replayed)"
    )


def _split(r: dict[str, Any]) -> str:
    """Mean step time split into the chips' time and the serving software's host time."""
    step = r["step_time_ms"]["mean"]
    software = r["software_s"] * 1e3 / max(1, r["iterations"])
    return f"{step - software:.3f} / {software:.3f} ms per iteration" + (
        " (--set software=none: hardware only)" if software else " (hardware only)"
    )


def cmd_trace_gen(args: argparse.Namespace) -> int:
    from sim.model.spec import load_model
    from sim.serving.mapping import mapping_from
    from sim.serving.tracegen import generate, synthetic_source
    from sim.system.spec import load_system

    sys_set, map_set, _, batch_set = _sets(args.set)
    system = load_system(args.system or "default", sys_set)
    model = load_model(args.model)
    mapping = mapping_from(system, map_set, where="--set mapping")
    if args.format == "synthetic" or (args.format is None and args.requests.endswith(".toml")):
        requests, source = synthetic_source(args.requests, args.limit)
    else:
        requests = _requests(args, args.requests)
        source = {"requests": args.requests, "format": args.format, "limit": args.limit}
    with Status("memwall trace gen", quiet=args.quiet or args.json, unit="iterations") as status:
        result = generate(
            model,
            system,
            mapping,
            requests,
            args.out,
            batching=batch_set,
            source=source,
            inputs=[args.requests, args.system, args.model],
            progress=lambda it, tokens: status.update(it, None, [f"{tokens:,} tokens"]),
            clock=args.clock,
        )
    if args.quiet and not args.json:
        return 0
    print(
        json.dumps(result, sort_keys=True)
        if args.json
        else f"wrote {result['out']}: {result['iterations']} iterations, {result['tokens']} tokens "
        f"({result['clock']} span {result['span_s']:.3f} s)"
    )
    return 0


def cmd_mappings(args: argparse.Namespace) -> int:
    from sim.experiments.run import DEFAULT_MODEL
    from sim.model.spec import load_model
    from sim.serving.mapping import enumerate_mappings, mapping_from
    from sim.system.spec import load_system

    sys_set, map_set, drv_set, batch_set = _sets(args.set)
    varied = [k for k in ("tp", "pp", "ep") if k in map_set]
    unused = [*(f"mapping.{k}" for k in varied), *drv_set, *batch_set]
    if unused:
        raise ConfigError(
            f"mappings tries every tp, pp and ep and runs nothing: {unused[0]} is not used here",
            where=f"--set {unused[0]}",
        )
    system = load_system(args.system or "default", sys_set)
    model = load_model(args.model or DEFAULT_MODEL)
    base = mapping_from(system, map_set, where="--set mapping")
    ranked = enumerate_mappings(model, system, args.batch, args.context, base)
    if not ranked:
        raise ConfigError(
            f"no mapping of {model.name} fits {system.name}; try a smaller weight_dtype "
            "(--set weight_dtype=fp8) or a larger system",
            where="mappings",
        )
    rows = [
        {
            "tp": p.mapping.tp,
            "pp": p.mapping.pp,
            "ep": p.mapping.ep,
            "chips": p.chips,
            "weights_per_chip_bytes": p.weight_bytes_per_chip,
            "kv_capacity_tokens": p.kv_capacity_tokens,
            "est_tokens_per_s_per_chip": tps,
        }
        for p, tps in ranked
    ]
    if args.json:
        print(json.dumps(rows, sort_keys=True))
    else:
        print(
            f"mappings of {model.name} on {system.name} that fit, best first "
            f"(roofline estimate at batch {args.batch}, context {args.context}):"
        )
        for r in rows:
            print(
                f"  tp {r['tp']:<3} pp {r['pp']:<3} ep {r['ep']:<3} chips {r['chips']:<3} weights/chip "
                f"{format_size(r['weights_per_chip_bytes']):>10}  KV tokens {r['kv_capacity_tokens']:>10,}  "
                f"~{r['est_tokens_per_s_per_chip']:,.0f} tokens/s/chip"
            )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sim.experiments.validate import default_data_dir, run_validation

    data = Path(args.data) if args.data else default_data_dir()
    result = run_validation(data, Path(args.out), decode=not args.no_decode)
    worst = max(max(e["median"] for e in dev["operators"].values()) for dev in result["kernels"].values())
    coll = max(max(e["median"] for e in c["allreduce"].values()) for c in result["collectives"].values())
    print(
        f"wrote {Path(args.out) / 'validation.md'}: worst per-operator median error {100 * worst:.1f}%, "
        f"worst all-reduce median error {100 * coll:.1f}%"
    )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Refit the calibrated presets from the measured data and print the values and their error."""
    from pathlib import Path

    from sim.calibration import compute as cc
    from sim.calibration.fabric import (
        fabric_parameters,
        fit_allreduce_groups,
        fit_transfer_launch,
        read_vidur_csv,
    )
    from sim.compute.die import ComputeDieParams
    from sim.experiments.validate import DEVICES, default_data_dir

    data = (Path(args.data) if args.data else default_data_dir()) / "vidur" / "profiling"
    out: dict[str, Any] = {}
    for device, (preset, bandwidth, system, table) in DEVICES.items():
        if args.what in ("compute", "all"):
            from sim.core.preset import get_preset

            base_values = get_preset(preset).raw_values()
            base = ComputeDieParams(peak_bf16=base_values["peak_bf16"], units=base_values["units"])
            _, fits = cc.fit_die(base, bandwidth, cc.read_profiles(data / "compute", device))
            out[f"{preset} kernels"] = {f.kernel_class: {"values": f.values, "error": f.error} for f in fits}
        if args.what in ("fabric", "all"):
            root = data / "network" / table
            groups = {
                p: read_vidur_csv(root / "all_reduce.csv", num_workers=p, devices_per_node=p)
                for p in (2, 4, 8)
            }
            fit = fit_allreduce_groups(groups)
            launch, p2p = fit_transfer_launch(
                read_vidur_csv(root / "send_recv.csv", num_workers=2, devices_per_node=2),
                fit.alpha_s,
                fit.bandwidth_Bps,
            )
            out[f"{system} fabric"] = {
                "fabric": fabric_parameters(fit.alpha_s, 1 / fit.bandwidth_Bps, 1e9),
                "collective_launch": {p: f"{v * 1e9:.0f}ns" for p, v in fit.launch_s.items()},
                "transfer_launch": f"{launch * 1e9:.0f}ns",
                "allreduce_error": fit.error,
                "send_recv_error": p2p,
            }
    print(json.dumps(out, indent=1, sort_keys=True, default=str))
    return 0


# -- entry point ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="memwall", description="Simulator of LLM-inference hardware.")
    parser.add_argument("--version", action="version", version=f"memwall {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    mb = sub.add_parser("membench", help="memory microbenchmark against a device preset or TOML file")
    mb.add_argument(
        "--device", default="hbf-gen1", help="preset name, memory kind or device TOML file (default hbf-gen1)"
    )
    mb.add_argument("--pattern", choices=("seq", "random"), default="seq")
    mb.add_argument(
        "--request-size",
        type=_size,
        default=parse_size("64KiB"),
        help="bytes per request, e.g. 4KiB (default 64KiB)",
    )
    mb.add_argument(
        "--concurrency", type=_up_to(MAX_REQUESTS), default=64, help="outstanding requests (default 64)"
    )
    mb.add_argument(
        "--bytes",
        type=_size,
        default=parse_size("256MiB"),
        help="bytes to move in total, e.g. 1GiB (default 256MiB)",
    )
    mb.add_argument("--write-ratio", type=float, default=0.0, help="fraction of writes (default 0)")
    mb.add_argument(
        "--fidelity",
        choices=("detailed", "transaction", "analytic"),
        default=None,
        help="model level (default: the device's, normally transaction)",
    )
    mb.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a device parameter, e.g. --set tR=15us (repeatable)",
    )
    mb.add_argument("--seed", type=int, default=0)
    mb.add_argument("--json", action="store_true", help="print one JSON object")
    mb.add_argument("--stats", action="store_true", help="with --json: include the stats tree")
    mb.add_argument(
        "--quiet", action="store_true", help="no progress display and no text result (errors and --json only)"
    )
    mb.set_defaults(func=cmd_membench)

    noc = sub.add_parser("noc", help="synthetic-traffic network-on-chip experiment")
    _add_fabric_flags(noc)
    noc.add_argument(
        "--traffic", default="uniform", help="uniform, transpose, bitcomp, bitrev, hotspot, neighbor"
    )
    noc.add_argument("--rate", type=float, default=0.1, help="offered flits/node/cycle (default 0.1)")
    noc.add_argument("--sweep", help="START:STOP:STEP offered loads; stops after saturation")
    noc.add_argument("--packet-flits", type=_positive_int, default=1)
    noc.add_argument("--warmup", type=_positive_int, default=1000)
    noc.add_argument("--measure", type=_positive_int, default=2000)
    noc.add_argument("--drain", type=_positive_int, default=10000)
    noc.add_argument("--fidelity", choices=("flit", "message"), default="flit")
    noc.add_argument(
        "--out",
        help="directory for noc.json (every load) and, at flit level on a 2-D mesh or torus, "
        "mesh_links.json (link utilisation at the last load) for memwall report",
    )
    noc.add_argument(
        "--quiet", action="store_true", help="no progress display and no text result (errors and --json only)"
    )
    noc.set_defaults(func=cmd_noc, k=None)

    co = sub.add_parser("collective", help="one collective on a topology, with its alpha-beta twin")
    _add_fabric_flags(co)
    co.add_argument(
        "--op",
        default="allreduce",
        choices=("allreduce", "reduce_scatter", "allgather", "broadcast", "alltoall"),
    )
    co.add_argument("--algorithm", choices=("ring", "tree", "2d", "in-network", "direct"))
    co.add_argument("--bytes", type=_size, default=parse_size("64KiB"))
    co.add_argument("--group", type=_positive_int, help="ranks (default: every terminal)")
    co.add_argument("--fidelity", choices=("flit", "message"), default="message")
    co.set_defaults(func=cmd_collective)

    rn = sub.add_parser("run", help="simulate LLM inference end to end (the main job)")
    rn.add_argument("system", nargs="?", help="system TOML or name in topologies/ (default: default)")
    rn.add_argument(
        "trace",
        nargs="?",
        help="decode trace (.jsonl[.gz]) or request trace "
        "(default: traces/azure_conv_200.csv, first 24 requests)",
    )
    rn.add_argument("--model", help="known model name or config.json (default llama-3.1-8b)")
    rn.add_argument("--format", help="request-trace format (azure, splitwise, mooncake; guessed if omitted)")
    rn.add_argument("--limit", type=_up_to(MAX_REQUESTS), help="read at most N requests")
    rn.add_argument(
        "--rate-scale",
        type=_positive_real,
        metavar="K",
        help="offer the trace K times as fast (every arrival time divided by K)",
    )
    rn.add_argument(
        "--load",
        metavar="PROFILE",
        help="synthetic load instead of a trace: chat, code, summarization, rag or reasoning "
        "(length distributions with their sources; --rate, --arrival-cv, --limit requests, default 200)",
    )
    rn.add_argument("--rate", type=_positive_real, help="--load: requests per second (default 1)")
    rn.add_argument(
        "--arrival-cv",
        type=_positive_real,
        metavar="CV",
        help="--load: CV of inter-arrival gaps (1: Poisson, the default; above 1: bursty gamma)",
    )
    rn.add_argument("--batch", type=_up_to(MAX_BATCH), help="fixed decode batch size (decode study)")
    rn.add_argument("--context", type=_up_to(MAX_TOKENS), help="context tokens per sequence (decode study)")
    rn.add_argument("--steps", type=_up_to(MAX_STEPS), help="decode iterations (decode study)")
    rn.add_argument("--out", help="directory for config.json, summary.json, requests.csv, iterations.csv")
    rn.add_argument(
        "--timeline",
        metavar="FILE",
        help="write a Chrome/Perfetto trace-event JSON of the run (open in ui.perfetto.dev); "
        "a name ending in .gz writes it gzipped (about 20x smaller)",
    )
    rn.add_argument(
        "--timeline-ops",
        type=_up_to(MAX_TIMELINE_OPS),
        metavar="N",
        help=f"--timeline: at most N ops, in whole iterations (default {MAX_OPS:,}); requests and "
        "iterations are always complete",
    )
    rn.add_argument(
        "--timeline-keep",
        choices=KEEP,
        help="--timeline over its op budget: the first iterations that fit (default) or every k-th "
        "iteration over the whole run (spread)",
    )
    rn.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="mapping (tp, pp, weights, kv, compute, weight_dtype...), driver or batching keys",
    )
    rn.add_argument("--seed", type=int, default=0)
    rn.add_argument("--json", action="store_true")
    rn.add_argument("--quiet", action="store_true", help="print nothing but errors (and --json output)")
    rn.set_defaults(func=cmd_run)

    tr = sub.add_parser("trace", help="decode traces: trace gen lowers a request trace")
    tsub = tr.add_subparsers(dest="trace_command", parser_class=_Parser, metavar="ACTION")
    tg = tsub.add_parser("gen", help="write a decode trace from a request trace or synthetic requests")
    tg.add_argument("--model", required=True)
    tg.add_argument(
        "--requests", required=True, help="request trace, or a TOML file with a [synthetic] table"
    )
    tg.add_argument(
        "--format", help="azure, splitwise, mooncake or synthetic (guessed if omitted; .toml is synthetic)"
    )
    tg.add_argument("--system", help="system TOML or name (default: default)")
    tg.add_argument("--limit", type=_up_to(MAX_REQUESTS), help="at most N requests (synthetic: N requests)")
    tg.add_argument("--out", required=True, help="output .jsonl or .jsonl.gz")
    tg.add_argument("--set", action="append", metavar="KEY=VALUE")
    tg.add_argument("--json", action="store_true")
    tg.add_argument(
        "--quiet", action="store_true", help="no progress display and no text result (errors and --json only)"
    )
    tg.add_argument(
        "--clock",
        default="estimated",
        help="the batching policy's clock: estimated (kernel estimates, no simulation, fast) or "
        "simulated (the system simulated as memwall run would: a replay on it reproduces the run)",
    )
    tg.set_defaults(func=cmd_trace_gen)

    mp = sub.add_parser("mappings", help="list the mappings of a model that fit a system, ranked")
    mp.add_argument("system", nargs="?")
    mp.add_argument("--model")
    mp.add_argument("--batch", type=_up_to(MAX_BATCH), default=1)
    mp.add_argument("--context", type=_up_to(MAX_TOKENS), default=2048)
    mp.add_argument("--set", action="append", metavar="KEY=VALUE")
    mp.add_argument("--json", action="store_true")
    mp.set_defaults(func=cmd_mappings)

    from sim.experiments.sweep import add_parser as add_sweep_parser
    from sim.observe.report import add_parser as add_report_parser

    add_report_parser(sub, _Parser)
    add_sweep_parser(sub, _Parser)

    va = sub.add_parser(
        "validate", help="calibrated kernels, collectives and decode steps against the measured data"
    )
    va.add_argument("--data", help="the validation data (default: ../shared/data/validation beside the repo)")
    va.add_argument("--out", default="benchmarks/results/validation", help="output directory")
    va.add_argument("--no-decode", action="store_true", help="skip the decode-step table (faster)")
    va.set_defaults(func=cmd_validate)

    ca = sub.add_parser(
        "calibrate", help="refit the calibrated presets (compute dies, fabrics) from the measured data"
    )
    ca.add_argument("what", nargs="?", choices=("compute", "fabric", "all"), default="all")
    ca.add_argument("--data", help="the validation data (default: ../shared/data/validation beside the repo)")
    ca.set_defaults(func=cmd_calibrate)

    ds = sub.add_parser("describe", help="list registered kinds, or describe one by name")
    ds.add_argument("name", nargs="?", help="a kind (memory, preset, ...) or a registered name")
    ds.set_defaults(func=cmd_describe)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``memwall`` command: 0 on success, 2 on any error a user can fix (one line on stderr),
    130 on Ctrl-C (outputs are atomic, so what finished is whole and nothing is half-written)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:
        if not _caused_by_interrupt(exc):
            raise
        return _interrupted()


def _interrupted() -> int:
    print("memwall: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Ctrl-C during a lazy import can surface wrapped (a class body's ``__set_name__`` turns it
    into a RuntimeError whose cause is the interrupt)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors (already printed, one line)
        return int(exc.code or 0)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except MemwallError as exc:
        print(f"memwall: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    from sim.program import run

    run()
