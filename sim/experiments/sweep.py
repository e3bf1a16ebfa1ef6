"""Parameter sweeps of ``memwall run`` on dask.distributed (``memwall sweep SPEC.toml``).

A sweep spec is a TOML file::

    [sweep]
    name = "window"                 # output goes to sweeps/<name>/ unless --out is given
    [base]                          # settings shared by all cells
    system = "hbf-hybrid"
    model = "llama-3.1-8b"
    batch = 1
    [grid]                          # cartesian product over these values
    "chip.memory.hbf.prefetch.window" = ["2MiB", "8MiB"]
    "mapping.tp" = [1, 2]
    [[cells]]                       # and/or an explicit list (each crossed with [grid])
    context = 512

A key is a ``memwall run`` setting (``system``, ``model``, ``trace``, ``format``, ``limit``,
``batch``, ``context``, ``steps``, ``seed``) or else a ``--set`` key (``mapping.tp``,
``chip.memory.hbm.tsv_rate``, ``max_batch``...); a ``set`` table may also list ``--set`` keys.

Each cell runs exactly as ``memwall run`` would run it, on a dask worker. Its id is a stable hash
of its settings. Every finished cell is written at once, atomically, to ``cells/<id>.json``
(settings, status, summary, resolved configuration); a re-run skips cells whose file says ``ok``.
A bad configuration (a :class:`MemwallError`, deterministic) is recorded as ``error`` at once; any
other exception is retried ``retries`` times by dask before it is recorded; a task lost with a
killed worker is rescheduled by dask. No cell's failure stops another. ``results.csv`` (one row
per cell: ``cell``, ``status``, ``error``, the settings, then the summary's scalars flattened with
dots, e.g. ``tpot_ms.mean``) is rebuilt at the end.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.core.errors import ConfigError, MemwallError
from sim.core.tomlfile import read_toml
from sim.experiments.run import RUN_SETTINGS as RUN_KEYS

_INT_KEYS = ("limit", "batch", "context", "steps", "seed")
REQUIREMENT = "dask[distributed]>=2024.1"


# -- the spec ---------------------------------------------------------------------------------
@dataclass
class SweepSpec:
    """A parsed sweep: its name and its cells (settings dicts), in spec order, without duplicates."""

    name: str
    cells: list[dict[str, Any]] = field(default_factory=list)

    def ids(self) -> list[str]:
        return [cell_id(c) for c in self.cells]


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    raise ConfigError(f"expected a string, number or boolean, found {value!r}", where=where)


def normalize(raw: Mapping[str, Any], where: str = "cell") -> dict[str, Any]:
    """Settings in canonical form: run keys at the top level, every other key under ``set``."""
    out: dict[str, Any] = {}
    sets: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "set":
            if not isinstance(value, Mapping):
                raise ConfigError("expected a table of --set keys", where=f"{where}.set")
            for k, v in value.items():
                sets[str(k)] = _scalar(v, f"{where}.set.{k}")
        elif key in RUN_KEYS:
            value = _scalar(value, f"{where}.{key}")
            if key in _INT_KEYS and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"expected a whole number, found {value!r}", where=f"{where}.{key}")
            out[key] = value
        else:
            sets[key] = _scalar(value, f"{where}.{key}")
    if sets:
        out["set"] = dict(sorted(sets.items()))
    return out


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "set":
                out["set"] = {**out.get("set", {}), **value}
            else:
                out[key] = value
    if "set" in out:
        out["set"] = dict(sorted(out["set"].items()))
    return out


def cell_id(settings: Mapping[str, Any]) -> str:
    """A stable 12-hex-digit id of a cell's (normalized) settings."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def parse_spec(data: Mapping[str, Any], default_name: str = "sweep", where: str = "sweep") -> SweepSpec:
    """Build a :class:`SweepSpec` from a parsed TOML document."""
    known = {"sweep", "base", "grid", "cells"}
    extra = sorted(set(data) - known)
    if extra:
        raise ConfigError(f"unknown table(s) {extra}; expected {sorted(known)}", where=where)
    head = data.get("sweep", {})
    name = str(head.get("name", default_name))
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"expected a plain name, found {name!r}", where=f"{where}: sweep.name")
    base = normalize(data.get("base", {}), f"{where}: base")
    grid = data.get("grid", {})
    axes: list[list[dict[str, Any]]] = []
    for key, values in grid.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ConfigError("expected at least one value", where=f"{where}: grid.{key}")
        axes.append([normalize({key: v}, f"{where}: grid") for v in values])
    explicit = data.get("cells", [{}])
    if not isinstance(explicit, list) or not explicit:
        raise ConfigError("expected [[cells]] tables", where=f"{where}: cells")
    cells: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(explicit):
        one = normalize(raw, f"{where}: cells[{i}]")
        for combo in itertools.product(*axes):
            settings = _merge(base, one, *combo)
            cells.setdefault(cell_id(settings), settings)
    return SweepSpec(name, list(cells.values()))


def load_spec(path: str | Path) -> SweepSpec:
    p = Path(path)
    return parse_spec(read_toml(p), default_name=p.stem, where=str(p))


# -- one cell, built exactly as ``memwall run`` builds it --------------------------------------
def simulate(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one cell exactly as ``memwall run`` would; returns (summary, resolved configuration)."""
    from sim.experiments.run import build_run, execute

    spec, scheduler = build_run(settings, where="set")
    summary, _, sim = execute(spec, scheduler=scheduler)
    config = json.loads(json.dumps(sim.config, sort_keys=True, default=str))
    return summary, config


def run_cell(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The dask task. A configuration error is a result (status error, not retried); any other
    exception propagates so that dask retries the cell."""
    t0 = time.perf_counter()
    try:
        summary, config = simulate(settings)
    except MemwallError as exc:
        return {"status": "error", "error": _one_line(exc), "wall_s": time.perf_counter() - t0}
    return {"status": "ok", "summary": summary, "config": config, "wall_s": time.perf_counter() - t0}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    return f"{type(exc).__name__}: {msg}" if not isinstance(exc, MemwallError) else msg


# -- output -----------------------------------------------------------------------------------
def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename (never a half-written file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_cell(out: Path, cid: str) -> dict[str, Any] | None:
    try:
        return json.loads((out / "cells" / f"{cid}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing or unreadable: compute it (again)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, (str, int, float, bool)) or value is None:
            out[name] = value
    return out


def settings_columns(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in settings.items() if k != "set"}, **settings.get("set", {})}


def write_results(out: Path, spec: SweepSpec) -> Path:
    """Rebuild ``results.csv``: one row per cell of ``spec`` that has a record."""
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for settings, cid in zip(spec.cells, spec.ids(), strict=True):
        rec = read_cell(out, cid)
        if rec is None:
            continue
        head = {"cell": cid, "status": rec.get("status", ""), "error": rec.get("error", "")}
        rows.append(({**head, **settings_columns(settings)}, _flatten(rec.get("summary") or {})))
    setting_cols = ["cell", "status", "error"]
    for left, _ in rows:
        setting_cols += [k for k in left if k not in setting_cols]
    taken = set(setting_cols)
    metric_cols = sorted({k for _, right in rows for k in right})
    rename = {k: (f"result.{k}" if k in taken else k) for k in metric_cols}
    path = out / "results.csv"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".results.csv.", suffix=".tmp")
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=setting_cols + [rename[k] for k in metric_cols], restval="")
        w.writeheader()
        for left, right in rows:
            w.writerow({**left, **{rename[k]: v for k, v in right.items()}})
    os.replace(tmp, path)
    return path


# -- the sweep --------------------------------------------------------------------------------
@dataclass
class SweepReport:
    out: Path
    total: int
    skipped: int = 0
    computed: list[str] = field(default_factory=list)  # ids computed this time, in completion order
    errors: dict[str, str] = field(default_factory=dict)  # id -> one-line message
    results: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    client: Any,
    *,
    retries: int = 2,
    on_cell: Callable[[str, dict[str, Any]], None] | None = None,
) -> SweepReport:
    """Run the unfinished cells of ``spec`` on a ``dask.distributed.Client``, writing each as it ends.

    ``on_cell(id, record)`` is called after each cell's record is on disk.
    """
    from dask.distributed import as_completed

    out_dir = Path(out)
    try:
        (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory: {exc.strerror}", where=str(out_dir)) from None
    write_atomic(out_dir / "spec.json", json.dumps({"name": spec.name, "cells": spec.cells}, indent=1) + "\n")
    report = SweepReport(out_dir, len(spec.cells))
    todo: dict[str, dict[str, Any]] = {}
    for settings, cid in zip(spec.cells, spec.ids(), strict=True):
        rec = read_cell(out_dir, cid)
        if rec is not None and rec.get("status") == "ok":
            report.skipped += 1
        else:
            todo[cid] = settings
    futures = {
        client.submit(run_cell, settings, key=f"memwall-cell-{cid}", pure=False, retries=retries): cid
        for cid, settings in todo.items()
    }
    for fut in as_completed(list(futures)):
        cid = futures[fut]
        settings = todo[cid]
        try:
            result = fut.result()
        except Exception as exc:  # crashed after its retries, or lost with workers too often
            result = {"status": "error", "error": _one_line(exc)}
        record = {"cell": cid, "settings": settings, **result}
        write_atomic(out_dir / "cells" / f"{cid}.json", json.dumps(record, indent=1, sort_keys=True) + "\n")
        report.computed.append(cid)
        if result["status"] != "ok":
            report.errors[cid] = result.get("error", "")
        if on_cell is not None:
            on_cell(cid, record)
        fut.release()
    report.results = write_results(out_dir, spec)
    return report


def make_client(workers: int | None = None, scheduler: str | None = None, processes: bool = True) -> Any:
    """A client of the scheduler at ``scheduler``, or of a new LocalCluster of ``workers`` processes."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            f"sweeps need dask.distributed: pip install 'memwall[sweep]' (or '{REQUIREMENT}')",
            where="sweep",
        ) from None
    if scheduler:
        try:
            return Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the scheduler: {exc}", where="--scheduler") from None
    n = workers or max(1, min(os.cpu_count() or 1, 8))
    cluster = LocalCluster(
        n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=":0", silence_logs=40
    )
    return Client(cluster)


def _describe(settings: Mapping[str, Any], varying: Iterable[str]) -> str:
    cols = settings_columns(settings)
    return " ".join(f"{k}={cols[k]}" for k in varying if k in cols)


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    out = Path(args.out) if args.out else Path("sweeps") / spec.name
    columns = [settings_columns(c) for c in spec.cells]
    keys = sorted({k for c in columns for k in c})
    varying = [k for k in keys if len({json.dumps(c.get(k)) for c in columns}) > 1]
    done = [0]

    def report_cell(cid: str, record: dict[str, Any]) -> None:
        done[0] += 1
        status = record["status"]
        extra = f"  {record.get('wall_s', 0.0):.1f} s" if status == "ok" else f"  {record.get('error', '')}"
        print(f"[{done[0]}] {status:5} {cid}  {_describe(record['settings'], varying)}{extra}", flush=True)

    client = make_client(args.workers, args.scheduler)
    try:
        cluster = getattr(client, "cluster", None)
        where = args.scheduler or f"local cluster of {len(cluster.workers) if cluster else '?'} workers"
        print(f"sweep {spec.name}: {len(spec.cells)} cells on {where}, output {out}", flush=True)
        report = run_sweep(spec, out, client, retries=args.retries, on_cell=report_cell)
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and not args.scheduler:
            cluster.close()
    ok = report.total - report.skipped - len(report.errors)
    print(
        f"{report.total} cells: {report.skipped} already done, {ok} ok, {len(report.errors)} failed; "
        f"wrote {report.results}"
    )
    if report.errors:
        for cid, msg in report.errors.items():
            print(f"memwall: error: cell {cid}: {msg}", file=sys.stderr)
        return 1
    return 0


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, found {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, found {text!r}")
    return value


def _positive(text: str) -> int:
    value = _nonneg_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, found {text!r}")
    return value


def add_parser(subparsers: Any, parser_class: Any = None) -> argparse.ArgumentParser:
    """Add ``memwall sweep`` to ``subparsers``.

    ``parser_class`` is accepted for symmetry with ``add_subparsers``; the new parser is of the class
    ``subparsers`` was made with.
    """
    sw = subparsers.add_parser("sweep", help="run a grid of 'memwall run' settings on dask.distributed")
    sw.add_argument("spec", help="sweep TOML ([sweep] name, [base], [grid] and/or [[cells]])")
    sw.add_argument("--workers", type=_positive, help="local worker processes (default: CPU count, <= 8)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler, e.g. tcp://host:8786")
    sw.add_argument("--out", help="output directory (default sweeps/NAME/)")
    sw.add_argument("--retries", type=_nonneg_int, default=2, help="retries of a crashed cell (default 2)")
    sw.set_defaults(func=cmd_sweep)
    return sw
