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
import contextlib
import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.core.atomic import write_text_atomic
from sim.core.errors import ConfigError, MemwallError
from sim.core.limits import MAX_BATCH, MAX_REQUESTS, MAX_STEPS, MAX_SWEEP_CELLS, MAX_TOKENS
from sim.core.textfile import brief
from sim.core.tomlfile import read_toml
from sim.observe.progress import clock

# whole-number run settings and their accepted range (a sweep refuses 0 steps rather than run 16)
_INT_BOUNDS = {
    "limit": (1, MAX_REQUESTS),
    "batch": (1, MAX_BATCH),
    "context": (1, MAX_TOKENS),
    "steps": (1, MAX_STEPS),
    "seed": (0, 2**63 - 1),
}
_INT_KEYS = tuple(_INT_BOUNDS)
_STR_KEYS = ("system", "model", "trace", "format")
REQUIREMENT = "dask[distributed]>=2024.1"
SCHEDULER_TIMEOUT_S = 10.0
"""Seconds to wait for a --scheduler to answer (and to have a worker) before giving up."""
MAX_WORKERS = 256
"""Local worker processes of one sweep (--workers)."""
MAX_RETRIES = 100
"""Retries of a crashing cell (--retries)."""
_MAX_ERROR_CHARS = 300  # a cell's recorded error: its first line, at most this long


# -- the spec ---------------------------------------------------------------------------------
@dataclass
class SweepSpec:
    """A parsed sweep: its name and its cells (settings dicts), in spec order, without duplicates."""

    name: str
    cells: list[dict[str, Any]] = field(default_factory=list)

    def ids(self) -> list[str]:
        return [cell_id(c) for c in self.cells]


def _what(value: Any) -> str:
    """What a found value is, briefly (a table or a list is described, not copied)."""
    if isinstance(value, Mapping):
        return f"a table of {len(value)} keys"
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    if isinstance(value, (str, int, float, bool)):
        return brief(value)
    return f"a {type(value).__name__}"


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"expected a finite number, found {value!r}", where=where)
    if isinstance(value, (str, int, float, bool)):
        return value
    raise ConfigError(f"expected a string, number or boolean, found {_what(value)}", where=where)


def _table(value: Any, what: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected {what}, found {_what(value)}", where=where)
    return value


def normalize(raw: Mapping[str, Any], where: str = "cell") -> dict[str, Any]:
    """Settings in canonical form: run keys at the top level, every other key under ``set``."""
    from sim.experiments.run import RUN_SETTINGS as RUN_KEYS  # here: the CLI's start-up stays light

    out: dict[str, Any] = {}
    sets: dict[str, Any] = {}
    for key, value in _table(raw, "a table of run settings", where).items():
        if key == "set":
            for k, v in _table(value, "a table of --set keys", f"{where}.set").items():
                sets[str(k)] = _scalar(v, f"{where}.set.{k}")
        elif key in RUN_KEYS:
            value = _scalar(value, f"{where}.{key}")
            if key in _STR_KEYS and (not isinstance(value, str) or not value):
                raise ConfigError(f"expected a name or a path, found {_what(value)}", where=f"{where}.{key}")
            if key in _INT_BOUNDS:
                lo, hi = _INT_BOUNDS[key]
                if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                    raise ConfigError(
                        f"expected a whole number from {lo} to {hi:,}, found {_what(value)}",
                        where=f"{where}.{key}",
                    )
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
    data = _table(data, "a TOML document", where)
    known = {"sweep", "base", "grid", "cells"}
    extra = sorted(str(k) for k in set(data) - known)
    if extra:
        raise ConfigError(f"unknown table(s) {extra}; expected {sorted(known)}", where=where)
    head = _table(data.get("sweep", {}), "a [sweep] table", f"{where}: sweep")
    unknown = sorted(str(k) for k in set(head) - {"name"})
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}; expected 'name'", where=f"{where}: sweep")
    name = head.get("name", default_name)
    if not isinstance(name, str) or not _plain_name(name):
        raise ConfigError(
            "expected a plain name (a directory name: no '/', '\\' or control characters, not "
            f"starting with '.', at most 100 characters), found {_what(name)}",
            where=f"{where}: sweep.name",
        )
    if not any(k in data for k in ("base", "grid", "cells")):
        raise ConfigError("expected a [base], [grid] or [[cells]] table, found none", where=where)
    base = normalize(data.get("base", {}), f"{where}: base")
    grid = _table(data.get("grid", {}), "a [grid] table of setting = [values]", f"{where}: grid")
    axes: list[list[dict[str, Any]]] = []
    for key, values in grid.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ConfigError(
                "expected at least one value, found an empty list", where=f"{where}: grid.{key}"
            )
        if len(values) > MAX_SWEEP_CELLS:
            raise _too_many(len(values), f"{where}: grid.{key}")
        axes.append([normalize({key: v}, f"{where}: grid") for v in values])
    explicit = data.get("cells", [{}])
    if not isinstance(explicit, list) or not explicit:
        raise ConfigError(f"expected [[cells]] tables, found {_what(explicit)}", where=f"{where}: cells")
    product = len(explicit) * math.prod(len(axis) for axis in axes)
    if product > MAX_SWEEP_CELLS:  # refused before any is built
        raise _too_many(product, where)
    cells: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(explicit):
        one = normalize(raw, f"{where}: cells[{i}]")
        for combo in itertools.product(*axes):
            settings = _merge(base, one, *combo)
            cells.setdefault(cell_id(settings), settings)
    return SweepSpec(name, list(cells.values()))


def _plain_name(name: str) -> bool:
    """A name usable as one directory name: no separator, control character or leading dot."""
    return 0 < len(name) <= 100 and not name.startswith(".") and not re.search(r"[/\\\x00-\x1f\x7f]", name)


def _too_many(count: int, where: str) -> ConfigError:
    return ConfigError(
        f"expected at most {MAX_SWEEP_CELLS:,} cells (MAX_SWEEP_CELLS), found {count:,}", where=where
    )


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
    """The error recorded for a failed cell: the first line of its message (a memwall error says
    where, never what a file holds), with the exception's type when it is not a memwall error;
    at most a few hundred characters."""
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    line = msg if isinstance(exc, MemwallError) else f"{type(exc).__name__}: {msg}".rstrip(": ")
    return line if len(line) <= _MAX_ERROR_CHARS else line[: _MAX_ERROR_CHARS - 3] + "..."


# -- output -----------------------------------------------------------------------------------
def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (:func:`sim.core.atomic.write_text_atomic`)."""
    write_text_atomic(path, text)


def read_cell(out: Path, cid: str) -> dict[str, Any] | None:
    try:
        rec = json.loads((out / "cells" / f"{cid}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing or unreadable: compute it (again)
    return rec if isinstance(rec, dict) else None


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
    """Rebuild ``results.csv`` atomically: one row per cell of ``spec`` that has a record."""
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for settings, cid in zip(spec.cells, spec.ids(), strict=True):
        rec = read_cell(out, cid)
        if rec is None:
            continue
        head = {"cell": cid, "status": rec.get("status", ""), "error": rec.get("error", "")}
        summary = rec.get("summary")
        rows.append(
            ({**head, **settings_columns(settings)}, _flatten(summary if isinstance(summary, dict) else {}))
        )
    setting_cols = ["cell", "status", "error"]
    for left, _ in rows:
        setting_cols += [k for k in left if k not in setting_cols]
    taken = set(setting_cols)
    metric_cols = sorted({k for _, right in rows for k in right})
    rename = {k: (f"result.{k}" if k in taken else k) for k in metric_cols}
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=setting_cols + [rename[k] for k in metric_cols], restval="")
    w.writeheader()
    for left, right in rows:
        w.writerow({**left, **{rename[k]: v for k, v in right.items()}})
    path = out / "results.csv"
    write_atomic(path, buf.getvalue())
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
    client: Any = None,
    *,
    retries: int = 2,
    on_cell: Callable[[str, dict[str, Any]], None] | None = None,
) -> SweepReport:
    """Run the unfinished cells of ``spec`` on a ``dask.distributed.Client`` (or, with ``client``
    None, one by one in this process), writing each as it ends.

    ``on_cell(id, record)`` is called after each cell's record is on disk. ``results.csv`` is
    rewritten at the end, also when the sweep is interrupted (Ctrl-C: every cell finished so far
    is on disk and listed; the interruption then propagates).
    """
    out_dir = Path(out)
    try:
        (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "invalid path"
        raise ConfigError(f"cannot create output directory {out_dir}: {reason}", where="--out") from None
    write_atomic(out_dir / "spec.json", json.dumps({"name": spec.name, "cells": spec.cells}, indent=1) + "\n")
    report = SweepReport(out_dir, len(spec.cells))
    todo: dict[str, dict[str, Any]] = {}
    for settings, cid in zip(spec.cells, spec.ids(), strict=True):
        rec = read_cell(out_dir, cid)
        if rec is not None and rec.get("status") == "ok":
            report.skipped += 1
        else:
            todo[cid] = settings

    def finish(cid: str, result: dict[str, Any]) -> None:
        record = {"cell": cid, "settings": todo[cid], **result}
        write_atomic(out_dir / "cells" / f"{cid}.json", json.dumps(record, indent=1, sort_keys=True) + "\n")
        report.computed.append(cid)
        if result["status"] != "ok":
            report.errors[cid] = result.get("error", "")
        if on_cell is not None:
            on_cell(cid, record)

    try:
        if client is None:
            for cid, settings in todo.items():
                finish(cid, _run_here(settings, retries))
        else:
            _run_on(client, todo, retries, finish)
    finally:  # also on Ctrl-C: the finished cells are on disk, list them
        report.results = write_results(out_dir, spec)
    return report


def _run_here(settings: Mapping[str, Any], retries: int) -> dict[str, Any]:
    """One cell in this process, retried like a dask task when it crashes."""
    t0 = time.perf_counter()
    for attempt in range(retries + 1):
        try:
            return run_cell(settings)
        except Exception as exc:  # a crash (not a configuration error, which run_cell records)
            if attempt == retries:
                return {"status": "error", "error": _one_line(exc), "wall_s": time.perf_counter() - t0}
    raise AssertionError("unreachable")


def _run_on(
    client: Any,
    todo: Mapping[str, dict[str, Any]],
    retries: int,
    finish: Callable[[str, dict[str, Any]], None],
) -> None:
    from dask.distributed import as_completed

    futures = {
        client.submit(run_cell, settings, key=f"memwall-cell-{cid}", pure=False, retries=retries): cid
        for cid, settings in todo.items()
    }
    for fut in as_completed(list(futures)):
        cid = futures[fut]
        try:
            result = fut.result()
        except Exception as exc:  # crashed after its retries, or lost with workers too often
            result = {"status": "error", "error": _one_line(exc)}
        finish(cid, result)
        fut.release()


_ADDRESS = re.compile(r"(?:(tcp|tls|ucx|ws|wss)://)?([A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})")


def scheduler_address(text: str) -> str:
    """``text`` checked as a dask scheduler address (``tcp://host:port`` or ``host:port``)."""
    m = _ADDRESS.fullmatch(text.strip())
    if m is None or not 1 <= int(m.group(3)) <= 65535:
        raise ConfigError(
            f"expected a scheduler address such as tcp://host:8786 or host:8786, found {brief(text)}",
            where="--scheduler",
        )
    return text.strip() if m.group(1) else f"tcp://{text.strip()}"


def make_client(workers: int | None = None, scheduler: str | None = None, processes: bool = True) -> Any:
    """A client of the scheduler at ``scheduler``, or of a new LocalCluster of ``workers`` processes.

    A scheduler that does not answer, or has no worker, within :data:`SCHEDULER_TIMEOUT_S` is a
    :class:`ConfigError` naming ``--scheduler`` (a sweep never waits forever for one).
    """
    address = scheduler_address(scheduler) if scheduler is not None else None
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            f"sweeps need dask.distributed: pip install 'memwall[sweep]' (or '{REQUIREMENT}')",
            where="sweep",
        ) from None
    if address is not None:
        wait = f"{SCHEDULER_TIMEOUT_S:g}s"
        try:
            client = Client(address, timeout=wait)
        except (OSError, TimeoutError, ValueError) as exc:
            reason = _one_line(exc) if str(exc) else type(exc).__name__
            raise ConfigError(
                f"cannot reach a dask scheduler at {address} within {wait}: {reason}", where="--scheduler"
            ) from None
        try:
            client.wait_for_workers(1, timeout=SCHEDULER_TIMEOUT_S)
        except (OSError, TimeoutError):
            client.close()
            raise ConfigError(
                f"the dask scheduler at {address} has no worker (waited {wait}); start one with "
                f"'dask worker {address}'",
                where="--scheduler",
            ) from None
        except BaseException:
            client.close()
            raise
        return client
    n = workers or max(1, min(os.cpu_count() or 1, 8))
    with _sigint_ignored():  # the workers inherit it: Ctrl-C stops the sweep here, not in each worker
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=":0", silence_logs=40
        )
    try:
        return Client(cluster)
    except BaseException:
        cluster.close()
        raise


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while worker processes start (they keep ignoring it; a terminal's Ctrl-C
    reaches the whole process group, and only this process should act on it: it writes what
    finished and closes the cluster)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _describe(settings: Mapping[str, Any], varying: Iterable[str]) -> str:
    cols = settings_columns(settings)
    return " ".join(f"{k}={cols[k]}" for k in varying if k in cols)


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.scheduler is not None and args.workers is not None:
        raise ConfigError(
            "--workers sizes a local cluster; with --scheduler the scheduler's workers run the cells",
            where="--workers",
        )
    spec = load_spec(args.spec)
    out = Path(args.out) if args.out else Path("sweeps") / spec.name
    columns = [settings_columns(c) for c in spec.cells]
    keys = sorted({k for c in columns for k in c})
    varying = [k for k in keys if len({json.dumps(c.get(k)) for c in columns}) > 1]
    done = [0]
    started = time.perf_counter()

    def report_cell(cid: str, record: dict[str, Any]) -> None:
        """One line per finished cell (stdout, also in a pipe): which, how, and when the rest ends."""
        done[0] += 1
        status = record["status"]
        extra = f"  {record.get('wall_s', 0.0):.1f} s" if status == "ok" else f"  {record.get('error', '')}"
        elapsed = time.perf_counter() - started
        eta = elapsed * (len(spec.cells) - done[0]) / done[0]
        head = f"[{done[0]}/{len(spec.cells)}, ETA {clock(eta)}]"
        print(f"{head} {status:5} {cid}  {_describe(record['settings'], varying)}{extra}", flush=True)

    here = args.workers == 0 and args.scheduler is None
    client = None if here else make_client(args.workers, args.scheduler)
    try:
        if client is None:
            where = "one process (--workers 0, no dask)"
        else:
            cluster = getattr(client, "cluster", None)
            where = args.scheduler or f"local cluster of {len(cluster.workers) if cluster else '?'} workers"
        print(f"sweep {spec.name}: {len(spec.cells)} cells on {where}, output {out}", flush=True)
        report = run_sweep(spec, out, client, retries=args.retries, on_cell=report_cell)
    except KeyboardInterrupt:
        print(
            f"interrupted after {done[0]} new cells: every finished cell is in {out / 'cells'} and "
            f"{out / 'results.csv'}; run the sweep again to finish the rest",
            flush=True,
        )
        raise
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and not args.scheduler:
                cluster.close()
    ok = report.total - report.skipped - len(report.errors)
    print(
        f"{report.total} cells: {report.skipped} already done, {ok} ok, {len(report.errors)} failed; "
        f"wrote {report.results}"
    )
    if report.errors:  # every finished cell is kept; each failed one is an error line, exit 2
        for cid, msg in report.errors.items():
            print(f"memwall: error: cell {cid}: {msg}", file=sys.stderr)
        return 2
    return 0


def _bounded_int(text: str, lo: int, hi: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from {lo} to {hi}, found {brief(text)}"
        ) from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"expected a whole number from {lo} to {hi}, found {brief(text)}")
    return value


def _workers(text: str) -> int:
    return _bounded_int(text, 0, MAX_WORKERS)


def _retries(text: str) -> int:
    return _bounded_int(text, 0, MAX_RETRIES)


def add_parser(subparsers: Any, parser_class: Any = None) -> argparse.ArgumentParser:
    """Add ``memwall sweep`` to ``subparsers``.

    ``parser_class`` is accepted for symmetry with ``add_subparsers``; the new parser is of the class
    ``subparsers`` was made with.
    """
    sw = subparsers.add_parser("sweep", help="run a grid of 'memwall run' settings on dask.distributed")
    sw.add_argument("spec", help="sweep TOML ([sweep] name, [base], [grid] and/or [[cells]])")
    sw.add_argument(
        "--workers",
        type=_workers,
        help="local worker processes (default: CPU count, <= 8); 0 runs the cells one by one in this "
        "process, without dask",
    )
    sw.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler, e.g. tcp://host:8786")
    sw.add_argument("--out", help="output directory (default sweeps/NAME/)")
    sw.add_argument("--retries", type=_retries, default=2, help="retries of a crashed cell (default 2)")
    sw.set_defaults(func=cmd_sweep)
    return sw
