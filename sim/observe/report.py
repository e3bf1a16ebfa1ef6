"""``memwall report DIR``: PNG plots and a Markdown page from a run's output directory.

Reads what ``memwall run ... --out DIR`` writes (``summary.json``, ``iterations.csv``,
``requests.csv``, ``ops.csv`` with ``blame.csv``, ``config.json``) and, when present, a NoC sweep
(``noc.json``: the list printed by ``memwall noc --sweep ... --json``) and mesh link utilisation
(``mesh_links.json``: ``{"k": 8, "links": {"a-b": utilisation}}``). Every plot is drawn only when
its input is there; a missing input becomes a note on the page, never an error. Writes
``DIR/*.png`` and ``DIR/report.md``.

matplotlib is an optional extra (``memwall[plots]``); it is imported only when the command runs, with
the non-interactive Agg backend.

A malformed input is refused as one line naming the file (and key), never a traceback: a JSON
file that is not UTF-8 JSON of the expected shape (``summary.json`` and ``config.json`` objects,
``noc.json`` an object or a list of them, ``mesh_links.json`` an object with a ``links`` object), a
CSV that cannot be parsed, or a column or value of the wrong kind. A directory holding none of the
inputs is refused too. Every PNG and ``report.md`` is written through a temporary file and a rename.

The roofline is approximate, and says so on the page: ops.csv records when each operation ran and what
it waited on, not its bytes or FLOPs. Each iteration's work is rebuilt from the model summary in
config.json: FLOPs = 2 x active parameters x tokens (attention score FLOPs left out) and bytes = the
bf16 weights read once (KV-cache and activation traffic left out), both split evenly over the tp x pp
chips; the time is the sum of the iteration's on-chip (non-fabric) operations of the recorded stage.
So the intensity is an upper bound, and the points show where the run sits, not an exact per-op
measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sim.core.atomic import atomic_path
from sim.core.errors import ConfigError, MemwallError
from sim.core.limits import MAX_FILE_BYTES, MAX_ROUTERS
from sim.core.textfile import read_text, text_lines

MATPLOTLIB_MISSING = "memwall report needs matplotlib: pip install 'memwall[plots]'"

_MAX_AREA_POINTS = 400  # the stall area plot bins iterations beyond this many
INPUTS = (
    "summary.json",
    "config.json",
    "iterations.csv",
    "requests.csv",
    "ops.csv",
    "blame.csv",
    "noc.json",
    "mesh_links.json",
)


def add_parser(subparsers: Any, parser_class: type[argparse.ArgumentParser] | None = None) -> Any:
    """Add ``report`` to ``subparsers`` (whose own parser class is used; ``parser_class`` is accepted
    for symmetry with the other sub-commands and needs no nested parsers here)."""
    del parser_class
    rp = subparsers.add_parser(
        "report", help="render PNG plots and a Markdown page (report.md) from a run's --out directory"
    )
    rp.add_argument("dir", help="a directory written by 'memwall run --out' (or holding noc.json)")
    rp.set_defaults(func=cmd_report)
    return rp


def cmd_report(args: argparse.Namespace) -> int:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot
    except ImportError:
        print(MATPLOTLIB_MISSING, file=sys.stderr)
        return 2
    d = Path(args.dir)
    try:
        if not d.is_dir():
            found = "a file" if d.exists() else "nothing"
            raise ConfigError(
                f"expected a directory written by 'memwall run --out' (or holding noc.json), found {found}",
                where=f"report directory {str(d)!r}",
            )
        page, plots = build_report(d)
    except MemwallError as exc:  # unreadable or malformed inputs: one line naming the file
        print(f"memwall: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the plots or the page cannot be written
        print(
            f"memwall: error: cannot write the report in {str(d)!r}: {exc.strerror or 'write error'}",
            file=sys.stderr,
        )
        return 2
    print(f"wrote {page} with {len(plots)} plots")
    return 0


# -- inputs -----------------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _json(path: Path, shape: str = "object") -> Any:
    """The parsed JSON of ``path`` (None when absent), checked to be an object, or (``shape`` "rows")
    an object or a list of objects; anything else is a :class:`ConfigError` naming the file."""
    if not path.exists() and not path.is_symlink():
        return None
    where = str(path)
    text = read_text(path, "a UTF-8 JSON file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"expected JSON, found malformed JSON ({exc.msg}) at line {exc.lineno} column {exc.colno}",
            where=where,
        ) from None
    except RecursionError:
        raise ConfigError("expected JSON, found arrays or objects nested too deeply", where=where) from None
    if isinstance(data, dict):
        return data
    if shape == "rows" and isinstance(data, list):
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                raise ConfigError(f"expected an object, found {_kind(row)}", where=f"{where}: [{i}]")
        return data
    expected = "an object or a list of objects" if shape == "rows" else "a JSON object"
    raise ConfigError(f"expected {expected}, found {_kind(data)}", where=where)


def _csv(path: Path) -> list[dict[str, str]] | None:
    if not path.exists() and not path.is_symlink():
        return None
    where = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or 'read error'}", where=where) from None
    if size > MAX_FILE_BYTES:
        raise ConfigError(
            f"expected a CSV file of at most {MAX_FILE_BYTES:,} bytes (MAX_FILE_BYTES), found a larger file",
            where=where,
        )
    reader = csv.DictReader(line for _, line in text_lines(path, "a UTF-8 CSV file"))
    try:
        return list(reader)
    except csv.Error as exc:
        raise ConfigError(
            f"expected CSV, found a malformed row ({exc})", where=f"{where}: line {reader.line_num}"
        ) from None


@contextlib.contextmanager
def _reading(d: Path, *names: str) -> Iterator[None]:
    """Turn a missing column or key, or a value of the wrong kind, met while drawing from the
    inputs ``names`` into a :class:`ConfigError` naming them (never echoing their content)."""
    try:
        yield
    except KeyError as exc:
        key = exc.args[0] if exc.args and isinstance(exc.args[0], str) and len(exc.args[0]) <= 40 else None
        found = f"no {key!r} column or key" if key else "a missing column or key"
        raise ConfigError(
            f"expected the columns and keys 'memwall run --out' writes, found {found}",
            where=" / ".join(str(d / n) for n in names),
        ) from None
    except (ValueError, TypeError, AttributeError, IndexError, OverflowError, ZeroDivisionError):
        raise ConfigError(
            "expected the values 'memwall run --out' writes, found a value of the wrong kind or range "
            "(text where a number is expected, a list where an object is, or a non-finite number)",
            where=" / ".join(str(d / n) for n in names),
        ) from None


def _numbers(table: Any, where: str) -> dict[str, float]:
    """An object of finite numbers (utilisation, energy), or {} when absent."""
    if not table:
        return {}
    if not isinstance(table, dict):
        raise ConfigError(f"expected an object of numbers, found {_kind(table)}", where=where)
    out = {}
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(
                f"expected a finite number, found {_kind(value)}", where=f"{where}.{str(key)[:40]}"
            )
        out[str(key)] = float(value)
    return out


def _write_atomic(path: Path, write: Any) -> None:
    """``write(tmp_path)`` then rename the temporary file over ``path`` (never a partial file)."""
    with atomic_path(path) as tmp:
        write(tmp)


def _floats(rows: list[dict[str, str]] | None, key: str) -> list[float]:
    out = []
    for r in rows or ():
        try:
            v = float(r[key])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(v):
            out.append(v)
    return out


def blame_by_op(rows: list[dict[str, str]] | None) -> dict[str, dict[str, float]]:
    """``blame.csv`` rows as {op_id: {cause label: microseconds}}."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows or ():
        try:
            us = float(r["us"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(us):
            label = r.get("label", "")
            out[r.get("op_id", "")][label] = out[r.get("op_id", "")].get(label, 0.0) + us
    return dict(out)


# -- the report -------------------------------------------------------------------------------------
def build_report(d: Path) -> tuple[Path, list[str]]:
    """Write every plot the inputs in ``d`` support, then ``d/report.md``; returns that path and the
    names of the PNGs written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any((d / name).exists() for name in INPUTS):
        raise ConfigError(
            f"expected a directory written by 'memwall run --out' or holding noc.json, found none of "
            f"{', '.join(INPUTS)}",
            where=f"report directory {str(d)!r}",
        )
    summary = _json(d / "summary.json")
    config = _json(d / "config.json")
    iterations = _csv(d / "iterations.csv")
    requests = _csv(d / "requests.csv")
    ops_rows = _csv(d / "ops.csv")
    with _reading(d, "blame.csv"):
        op_blame = blame_by_op(_csv(d / "blame.csv"))
    noc = _json(d / "noc.json", "rows")
    mesh = _json(d / "mesh_links.json")
    util = _numbers((summary or {}).get("utilization"), f"{d / 'summary.json'}: utilization")
    energy = _numbers(
        (summary or {}).get("energy_by_component_j"), f"{d / 'summary.json'}: energy_by_component_j"
    )
    if mesh is not None:
        _check_mesh(mesh, str(d / "mesh_links.json"))

    figures: list[tuple[str, str]] = []  # (png name, caption)
    notes: list[str] = []

    def save(fig: Any, name: str, caption: str, *inputs: str) -> None:
        """Lay out and write ``fig`` (drawn from ``inputs``, which a drawing error names)."""
        try:
            with _reading(d, *inputs):
                fig.tight_layout()
                _write_atomic(d / name, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
        finally:
            plt.close(fig)
        figures.append((name, caption))

    steps = _floats(iterations, "step_ms")
    if steps:
        save(
            _distribution(plt, steps, "step time (ms)", "Step time"),
            "step_time.png",
            f"Step time per iteration: histogram and CDF ({len(steps)} iterations).",
            "iterations.csv",
        )
    else:
        notes.append("Step-time distribution skipped: no iterations.csv (or no iterations in it).")

    tpots = [v for v in _floats(requests, "tpot_ms") if v > 0]
    if tpots:
        save(
            _distribution(plt, tpots, "TPOT (ms)", "Time per output token"),
            "tpot.png",
            f"Time per output token per request: histogram and CDF ({len(tpots)} requests).",
            "requests.csv",
        )
    else:
        notes.append("TPOT distribution skipped: no requests.csv with a TPOT (a fixed-batch study has none).")

    with _reading(d, "ops.csv", "blame.csv"):
        per_iter = _blame_per_iteration(ops_rows, op_blame) if ops_rows else {}
    if per_iter:
        with _reading(d, "ops.csv", "blame.csv"):
            area = _stall_area(plt, per_iter)
        save(
            area,
            "stalls.png",
            "Stall breakdown over time: share of each iteration's blamed time per cause (from ops.csv).",
            "ops.csv",
            "blame.csv",
        )
    elif iterations and any(r.get("top_cause") for r in iterations):
        with _reading(d, "iterations.csv"):
            top = _top_cause(plt, iterations)
        save(
            top,
            "stalls.png",
            "Top stall cause per iteration and its share of the step (from iterations.csv; no ops.csv).",
            "iterations.csv",
        )
    else:
        notes.append("Stall breakdown skipped: neither ops.csv blame nor iterations.csv top causes.")

    if util:
        save(
            _bars(plt, util, "utilisation", "Utilisation per component", pct=True),
            "utilization.png",
            "Busy fraction of each component over the simulated time (summary.json).",
            "summary.json",
        )
    else:
        notes.append("Utilisation skipped: summary.json has no utilization.")

    if energy:
        scope = _energy_scope(summary or {})
        per_token = (summary or {}).get("energy_j_per_token")
        each = (
            f"; {per_token:.4g} J per output token"
            if isinstance(per_token, int | float) and per_token
            else ""
        )
        save(
            _bars(
                plt,
                energy,
                "energy (J)",
                f"Energy by component, {scope}\ntotal {_plain(sum(energy.values()))} J{each}",
            ),
            "energy.png",
            f"Energy by component, {scope} (static power included): total {_plain(sum(energy.values()))} J"
            f"{each} (summary.json).",
            "summary.json",
        )
    else:
        notes.append("Energy by component skipped: summary.json has no energy_by_component_j.")

    with _reading(d, "config.json", "iterations.csv", "ops.csv"):
        roof, roof_note = _roofline(plt, config, iterations, ops_rows)
    if roof is not None:
        save(
            roof,
            "roofline.png",
            "Approximate per-chip roofline, one point per iteration (see notes).",
            "config.json",
            "iterations.csv",
            "ops.csv",
        )
    if roof_note:
        notes.append(roof_note)
    if ops_rows:
        with _reading(d, "ops.csv"):
            op_fig = _op_times(plt, ops_rows, op_blame)
        save(
            op_fig,
            "op_times.png",
            "Per-operation duration by operation type, coloured by the cause that blamed most of it.",
            "ops.csv",
        )

    if isinstance(noc, dict):
        noc = [noc]
    if isinstance(noc, list) and noc:
        with _reading(d, "noc.json"):
            noc_fig = _noc_plot(plt, noc)
        save(
            noc_fig,
            "noc_latency.png",
            "NoC packet latency (mean and p99) against offered load, with accepted throughput (noc.json).",
            "noc.json",
        )
    if isinstance(mesh, dict) and mesh.get("links"):
        with _reading(d, "mesh_links.json"):
            fig = _mesh_heatmap(plt, mesh)
        if fig is not None:
            save(
                fig,
                "mesh_links.png",
                f"Mesh link utilisation, k={mesh.get('k')} (mesh_links.json).",
                "mesh_links.json",
            )
        else:
            notes.append("Mesh heatmap skipped: mesh_links.json link names are not 'a-b' router ids.")

    page = d / "report.md"
    with _reading(d, "summary.json", "config.json", "noc.json"):
        text = _markdown(d, summary, config, figures, notes, noc if isinstance(noc, list) else None)
    _write_atomic(page, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return page, [name for name, _ in figures]


def _check_mesh(mesh: dict[str, Any], where: str) -> None:
    """``{"k": K, "links": {"a-b": utilisation}}`` with K at most sqrt(MAX_ROUTERS) (the heatmap
    draws K x K routers)."""
    k = mesh.get("k")
    side = math.isqrt(MAX_ROUTERS)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= side):
        raise ConfigError(
            f"expected a mesh radix k of 0..{side}, found {_kind(k)} out of range", where=f"{where}: k"
        )
    links = mesh.get("links")
    if links is not None and not isinstance(links, dict):
        raise ConfigError(
            f"expected an object of link utilisations, found {_kind(links)}", where=f"{where}: links"
        )
    for name, value in (links or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(
                f"expected a finite number, found {_kind(value)}", where=f"{where}: links.{name[:40]}"
            )
        ids = re.findall(r"\d+", str(name))[:2]
        if any(len(i) > 6 or int(i) >= MAX_ROUTERS for i in ids):
            raise ConfigError(
                f"expected router ids below {MAX_ROUTERS:,} (MAX_ROUTERS), found a larger one",
                where=f"{where}: links",
            )


# -- plots ------------------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


SKEW = 20.0
"""A spread (max / min value, or tallest / median non-empty bin) past which an axis goes logarithmic."""


def _distribution(plt: Any, values: list[float], xlabel: str, title: str) -> Any:
    """Histogram and CDF. A skewed distribution (one bar swamping the rest, or values spread over
    decades) gets log-spaced bins and a log axis, so its tail stays visible; the labels say so."""
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    bins_n = min(50, max(5, int(math.sqrt(len(values))) * 2))
    low, high = min(values), max(values)
    log_x = low > 0 and high / low > SKEW
    bins = np.geomspace(low, high, bins_n + 1) if log_x else bins_n
    counts, _, _ = ax1.hist(values, bins=bins, color="tab:blue")
    nonzero = sorted(c for c in counts if c > 0)
    log_y = bool(nonzero) and nonzero[-1] > SKEW * nonzero[len(nonzero) // 2]
    for ax, log in ((ax1, log_x), (ax2, log_x)):
        if log:
            ax.set_xscale("log")
    if log_y:
        ax1.set_yscale("log")
    ax1.set_xlabel(xlabel + (" (log scale)" if log_x else ""))
    ax1.set_ylabel("count" + (" (log scale)" if log_y else ""))
    ax1.set_title(f"{title}: histogram")
    s = sorted(values)
    ax2.step(s, [(i + 1) / len(s) for i in range(len(s))], where="post", color="tab:blue")
    for q, style in ((0.5, "--"), (0.99, ":")):
        v = _pct(values, q)
        ax2.axvline(v, color="grey", linestyle=style, label=f"p{round(q * 100)} = {v:.4g}")
    ax2.set_xlabel(xlabel + (" (log scale)" if log_x else ""))
    ax2.set_ylabel("fraction ≤ x")
    ax2.set_ylim(0, 1.02)
    ax2.set_title(f"{title}: CDF")
    ax2.legend(loc="lower right")
    return fig


def _blame_per_iteration(
    rows: list[dict[str, str]], op_blame: dict[str, dict[str, float]]
) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        try:
            it = int(r["iteration"])
        except (KeyError, ValueError):
            continue
        for cause, us in op_blame.get(r.get("op_id", ""), {}).items():
            out[it][cause] += us
    return {k: dict(v) for k, v in out.items() if sum(v.values()) > 0}


def _stall_area(plt: Any, per_iter: dict[int, dict[str, float]]) -> Any:
    its = sorted(per_iter)
    totals: dict[str, float] = defaultdict(float)
    for v in per_iter.values():
        for c, us in v.items():
            totals[c] += us
    causes = sorted(totals, key=totals.get, reverse=True)  # type: ignore[arg-type]
    if len(causes) > 8:  # keep the legend readable: the rest become "other"
        keep = set(causes[:7])
        per_iter = {
            i: {
                **{c: u for c, u in v.items() if c in keep},
                "other": sum(u for c, u in v.items() if c not in keep),
            }
            for i, v in per_iter.items()
        }
        causes = [*causes[:7], "other"]
    bin_size = max(1, math.ceil(len(its) / _MAX_AREA_POINTS))
    xs: list[float] = []
    shares: dict[str, list[float]] = {c: [] for c in causes}
    for b in range(0, len(its), bin_size):
        chunk = its[b : b + bin_size]
        sums = {c: sum(per_iter[i].get(c, 0.0) for i in chunk) for c in causes}
        total = sum(sums.values()) or 1.0
        xs.append(sum(chunk) / len(chunk))
        for c in causes:
            shares[c].append(sums[c] / total)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    if len(xs) == 1:  # a single iteration: an area needs two x values
        xs = [xs[0] - 0.5, xs[0] + 0.5]
        shares = {c: v * 2 for c, v in shares.items()}
    ax.stackplot(xs, [shares[c] for c in causes], labels=causes)
    ax.set_xlabel("iteration" + (f" (bins of {bin_size})" if bin_size > 1 else ""))
    ax.set_ylabel("share of blamed time")
    ax.set_ylim(0, 1)
    ax.set_title("Stall breakdown over time")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    return fig


def _top_cause(plt: Any, rows: list[dict[str, str]]) -> Any:
    causes = sorted({r.get("top_cause", "") for r in rows if r.get("top_cause")})
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for c in causes:
        pts = [
            (float(r["index"]), float(r.get("top_cause_share") or 0)) for r in rows if r.get("top_cause") == c
        ]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=8, label=c)
    ax.set_xlabel("iteration")
    ax.set_ylabel("share of step blamed on the top cause")
    ax.set_ylim(0, 1.05)
    ax.set_title("Top stall cause over time")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    return fig


def _bars(plt: Any, data: dict[str, float], ylabel: str, title: str, pct: bool = False) -> Any:
    """One bar per component with its value written on it in plain digits (never an offset or
    1e3 multiplier); values spread over more than SKEW x go on a log axis, which the label says."""
    from matplotlib.ticker import FuncFormatter

    names = list(data)
    vals = [float(data[n]) * (100 if pct else 1) for n in names]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.2 * len(names) + 2), 4))
    bars = ax.bar(range(len(names)), vals, color="tab:green" if pct else "tab:orange")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    positive = [v for v in vals if v > 0]
    log = not pct and len(positive) > 1 and max(positive) / min(positive) > SKEW
    if log:
        ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _plain(v)))
    ax.set_ylabel(ylabel + (" (%)" if pct else "") + (" (log scale)" if log else ""))
    ax.set_title(title)
    for b, v in zip(bars, vals, strict=True):
        ax.annotate(
            f"{_plain(v)}{'%' if pct else ''}",
            (b.get_x() + b.get_width() / 2, b.get_height()),
            ha="center",
            va="bottom",
            fontsize="small",
        )
    return fig


def _plain(v: float) -> str:
    """A number as people write it: 8,230 / 838 / 1.15 / 0.0123 (3 significant digits below 1,000)."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _energy_scope(summary: dict[str, Any]) -> str:
    """Which hardware the energy figures cover, from the summary: every chip of every replica."""
    m = summary.get("mapping") or {}
    chips = int(m.get("tp", 1) or 1) * int(m.get("pp", 1) or 1)
    replicas = len(summary.get("replicas") or []) or 1
    whole = f"{chips * replicas} chips" + (f" ({replicas} replicas of {chips})" if replicas > 1 else "")
    pools = summary.get("disaggregation")  # two pools: every chip of both (the link has no chips)
    each = [
        (p, pool.get("replicas"), pool.get("chips_per_replica"))
        for p in ("prefill", "decode")
        if isinstance(pools, dict) and isinstance(pool := pools.get(p), dict)
    ]
    if len(each) == 2 and all(isinstance(v, int) and v > 0 for _, n, c in each for v in (n, c)):
        whole = (
            f"{sum(n * c for _, n, c in each)} chips ("
            + ", ".join(f"{p} {n} x {c}" for p, n, c in each)
            + ") and the KV link"
        )
    seconds = summary.get("sim_time_s")
    over = f" over {seconds:.4g} simulated s" if isinstance(seconds, int | float) else " over the run"
    return f"all {whole}{over}"


def _peak_bandwidth(config: dict[str, Any]) -> float | None:
    """Sum over the chip's memories of their peak bandwidth (each memory records its own, from its
    kind's analytic twin); None when a memory does not record one."""
    total = 0.0
    for mem in (config.get("system", {}).get("memories") or {}).values():
        try:
            total += float(mem["peak_bandwidth_Bps"])
        except (KeyError, TypeError, ValueError):
            return None
    return total or None


def _roofline(
    plt: Any, config: Any, iterations: list[dict[str, str]] | None, ops_rows: list[dict[str, str]] | None
) -> tuple[Any, str | None]:
    if not config or not iterations:
        return None, "Roofline skipped: needs config.json and iterations.csv."
    model = config.get("model") or {}
    compute = (config.get("system") or {}).get("compute") or {}
    mapping = config.get("mapping") or {}
    params = model.get("active_params_per_token")
    wbytes = model.get("weight_bytes_bf16")
    peak = compute.get("peak_bf16")
    if not (params and wbytes and peak):
        return (
            None,
            "Roofline skipped: config.json lacks the model's active parameters, weight bytes or peak FLOP/s.",
        )
    chips = max(1, int(mapping.get("tp", 1)) * int(mapping.get("pp", 1)))
    bw = _peak_bandwidth(config)
    chip_time: dict[int, float] = defaultdict(float)  # seconds of on-chip ops of the recorded stage
    source = "iterations.csv step time (includes communication)"
    if ops_rows:
        first_stage = min(
            (r["where"] for r in ops_rows if r.get("where", "fabric") != "fabric"), default=None
        )
        for r in ops_rows:
            if r.get("where") == first_stage:
                chip_time[int(r["iteration"])] += (float(r["end_us"]) - float(r["start_us"])) * 1e-6
        source = f"summed {first_stage} operation times from ops.csv"
    xs, ys, prefill = [], [], []
    for r in iterations:
        tokens = int(float(r.get("tokens") or 0))
        t = chip_time.get(int(r["index"])) if ops_rows else float(r["step_ms"]) * 1e-3
        if not tokens or not t:
            continue
        flops = 2.0 * params * tokens / chips
        xs.append(flops / (wbytes / chips))
        ys.append(flops / t)
        prefill.append(int(float(r.get("prefill_tokens") or 0)) > 0)
    if not xs:
        return None, "Roofline skipped: no iteration with tokens and a time."
    fig, ax = plt.subplots(figsize=(7.5, 5))
    lo, hi = min(xs) / 4, max(max(xs) * 4, 4 * peak / bw if bw else max(xs) * 4)
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    eff = float(compute.get("gemm_compute_efficiency", 1.0) or 1.0)
    if bw:
        ax.plot(grid, [min(peak, bw * x) for x in grid], "k-", label=f"roof: {peak:.3g} FLOP/s, {bw:.3g} B/s")
        if eff < 1:
            ax.plot(
                grid, [min(peak * eff, bw * x) for x in grid], "k--", lw=0.8, label=f"{eff:g} x peak compute"
            )
    else:
        ax.axhline(peak, color="k", label=f"compute peak {peak:.3g} FLOP/s (memory peak unknown)")
    dec = [(x, y) for x, y, p in zip(xs, ys, prefill, strict=True) if not p]
    pre = [(x, y) for x, y, p in zip(xs, ys, prefill, strict=True) if p]
    if dec:
        ax.scatter([p[0] for p in dec], [p[1] for p in dec], s=10, c="tab:blue", label="decode iterations")
    if pre:
        ax.scatter(
            [p[0] for p in pre], [p[1] for p in pre], s=16, c="tab:red", marker="^", label="with prefill"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte, weights only: an upper bound)")
    ax.set_ylabel("achieved FLOP/s per chip")
    ax.set_title(f"Approximate roofline ({model.get('name', 'model')}, per chip of {chips})")
    ax.legend(fontsize="small")
    note = (
        "Roofline is approximate: per iteration, FLOPs = 2 x active parameters x tokens and bytes = bf16 "
        f"weights (KV cache, activations and attention-score FLOPs left out), split over {chips} chip(s); "
        f"time = {source}. Memory roof = "
        + (
            "the sum of the memories' peak bandwidths in config.json."
            if bw
            else "not recorded in config.json."
        )
    )
    return fig, note


def _op_times(plt: Any, rows: list[dict[str, str]], op_blame: dict[str, dict[str, float]]) -> Any:
    kinds: dict[str, int] = {}
    by_cause: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r in rows:
        key = f"{r.get('where', '?')}:{r.get('op', '?')}"
        x = kinds.setdefault(key, len(kinds))
        blame = op_blame.get(r.get("op_id", ""), {})
        cause = max(blame, key=blame.get) if blame else "unblamed"  # type: ignore[arg-type]
        xs, ys = by_cause[cause]
        jitter = ((len(xs) * 0.618034) % 1.0 - 0.5) * 0.6  # deterministic spread
        xs.append(x + jitter)
        ys.append(max(1e-6, float(r["end_us"]) - float(r["start_us"])))
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(kinds) + 3), 4.5))
    for cause, (xs, ys) in sorted(by_cause.items()):
        ax.scatter(xs, ys, s=4, alpha=0.5, label=cause)
    ax.set_xticks(range(len(kinds)), list(kinds), rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("duration (us)")
    ax.set_title("Operation durations by bound class (dominant blame)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", markerscale=3)
    return fig


def _noc_plot(plt: Any, rows: list[dict[str, Any]]) -> Any:
    rows = sorted(rows, key=lambda r: r.get("offered_flits_per_node_cycle", 0))
    off = [r.get("offered_flits_per_node_cycle", float("nan")) for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(off, [r.get("mean_packet_latency_cycles", float("nan")) for r in rows], "o-", label="mean")
    ax1.plot(off, [r.get("p99_packet_latency_cycles", float("nan")) for r in rows], "s--", label="p99")
    sat = [
        (o, r.get("mean_packet_latency_cycles")) for o, r in zip(off, rows, strict=True) if r.get("saturated")
    ]
    if sat:
        ax1.scatter([s[0] for s in sat], [s[1] for s in sat], marker="x", s=80, c="red", label="saturated")
    ax1.set_xlabel("offered load (flits/node/cycle)")
    ax1.set_ylabel("packet latency (cycles)")
    r0 = rows[0]
    ax1.set_title(f"{r0.get('topology', '?')} k={r0.get('k', '?')} {r0.get('traffic', '?')}: latency")
    ax1.legend()
    ax2.plot(
        off, [r.get("accepted_flits_per_node_cycle", float("nan")) for r in rows], "o-", label="accepted"
    )
    ax2.plot(off, off, "k:", label="offered = accepted")
    ax2.set_xlabel("offered load (flits/node/cycle)")
    ax2.set_ylabel("accepted (flits/node/cycle)")
    ax2.set_title("Throughput")
    ax2.legend()
    return fig


def _mesh_heatmap(plt: Any, mesh: dict[str, Any]) -> Any:
    """Each router of a k x k mesh as a cell; each link drawn as a coloured segment between cells."""
    k = int(mesh.get("k") or 0)
    links: dict[tuple[int, int], float] = {}
    for name, u in mesh["links"].items():
        parts = re.findall(r"\d+", str(name))
        if len(parts) != 2:
            return None
        links[(int(parts[0]), int(parts[1]))] = float(u)
    if not k:
        k = math.isqrt(max(max(a, b) for a, b in links) + 1) or 1
    from matplotlib import cm, colors

    norm = colors.Normalize(vmin=0, vmax=max(1e-12, max(links.values())))
    cmap = cm.get_cmap("viridis") if hasattr(cm, "get_cmap") else plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(6.5, 6))
    pos = {i: (i % k, i // k) for i in range(k * k)}
    # a directed link a->b drawn offset to one side so both directions stay visible
    for (a, b), u in sorted(links.items(), key=lambda kv: kv[1]):
        if a not in pos or b not in pos:
            continue
        (x0, y0), (x1, y1) = pos[a], pos[b]
        dx, dy = x1 - x0, y1 - y0
        off = 0.08
        ox, oy = -dy * off, dx * off
        ax.plot([x0 + ox, x1 + ox], [y0 + oy, y1 + oy], color=cmap(norm(u)), lw=4, solid_capstyle="butt")
    ax.scatter([p[0] for p in pos.values()], [p[1] for p in pos.values()], s=30, c="k", zorder=3)
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_title(f"Mesh link utilisation ({k}x{k})")
    fig.colorbar(
        cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="utilisation (flits per link per cycle)"
    )
    return fig


# -- Markdown ---------------------------------------------------------------------------------------
def _fmt(v: Any, unit: str = "") -> str:
    if isinstance(v, int | float) and math.isfinite(v):
        return f"{v:.4g}{unit}"
    return "n/a"


def _markdown(
    d: Path,
    summary: dict[str, Any] | None,
    config: dict[str, Any] | None,
    figures: list[tuple[str, str]],
    notes: list[str],
    noc: list[dict[str, Any]] | None,
) -> str:
    s = summary or {}
    title = (
        f"memwall report: {s.get('model', '?')} on {s.get('system', '?')}"
        if s
        else f"memwall report: {d.name}"
    )
    lines = [f"# {title}", ""]
    workload = ((config or {}).get("workload") or {}).get("trace")
    if workload:
        lines += [f"Workload: `{workload}`", ""]
    if s:
        lines += ["## Key figures", "", "| metric | p50 | p99 |", "|---|---|---|"]
        for key, label in (
            ("ttft_ms", "TTFT (ms)"),
            ("tpot_ms", "TPOT (ms)"),
            ("step_time_ms", "step time (ms)"),
        ):
            v = s.get(key) or {}
            lines.append(f"| {label} | {_fmt(v.get('p50'))} | {_fmt(v.get('p99'))} |")
        lines += ["", "| metric | value |", "|---|---|"]
        for key, label in (
            ("requests", "requests"),
            ("tokens", "tokens"),
            ("tokens_per_s", "tokens/s"),
            ("energy_j_per_token", "energy/token (J)"),
            ("avg_power_w", "average power (W)"),
            ("tco_usd_per_million_tokens", "TCO (USD per million tokens)"),
            ("sim_time_s", "simulated time (s)"),
        ):
            if key in s:
                lines.append(f"| {label} | {_fmt(s[key])} |")
        lines.append("")
    if noc:
        best = max(noc, key=lambda r: r.get("accepted_flits_per_node_cycle", 0))
        lines += [
            f"NoC sweep: {len(noc)} loads, peak accepted {_fmt(best.get('accepted_flits_per_node_cycle'))} "
            f"flits/node/cycle" + (", saturated" if any(r.get("saturated") for r in noc) else ""),
            "",
        ]
    if figures:
        lines += ["## Plots", ""]
        for name, caption in figures:
            lines += [f"![{caption}]({name})", "", f"[{name}]({name}): {caption}", ""]
    else:
        lines += ["No plots: the directory holds none of the inputs.", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
