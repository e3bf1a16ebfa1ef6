"""A fixed set of memwall runs whose results must not move when a change should not move them.

Every run is a ``memwall`` command line with ``--json`` (memory, fabric and end-to-end, on every
shipped system file), plus the CSV files one ``--out`` run writes. Their outputs, with the wall-clock
fields removed, are compared byte for byte with the reference recorded in ``reference.json``::

    python tests/regression/fixed_runs.py check            # compare with the reference (exit 1 on a diff)
    python tests/regression/fixed_runs.py record           # rewrite the reference (after an intended change)
    python tests/regression/fixed_runs.py check -k hbf     # only the runs whose name contains "hbf"

A change that is meant to move results re-records the reference in the same commit and says why in
its message; ``tests/regression/test_fixed_runs.py`` runs ``check`` in the test suite.

``ADDED`` lists output keys that a change introduced on purpose: they are reported, not failed,
until the reference is re-recorded (so a refactor that adds a field can still prove that every old
field is unchanged).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REFERENCE = HERE / "reference.json"

# Fields that measure the simulator's own speed (wall clock), not the simulated system.
WALL_CLOCK = frozenset(
    {
        "wall_s",
        "events_per_s",
        "sim_s_per_wall_s",
        "simulated_bytes_per_wall_s",
        "flit_hops_per_s",
        "router_traversals_per_s",
    }
)

# Output keys (dotted paths, "*" matching one level) introduced on purpose since the reference was
# recorded; they are listed in the report instead of failing the comparison.
ADDED: tuple[str, ...] = ()


@dataclass(frozen=True)
class FixedRun:
    name: str
    argv: tuple[str, ...]
    files: tuple[str, ...] = ()  # files of --out DIR to compare too


def _run(name: str, command: str, files: tuple[str, ...] = ()) -> FixedRun:
    """A fixed run from its ``memwall`` arguments as one line (no quoting needed)."""
    return FixedRun(name, tuple(command.split()), files)


RUNS: tuple[FixedRun, ...] = (
    # -- memory ------------------------------------------------------------------------------------
    _run("membench-hbf-seq-transaction", "membench --device hbf-gen1 --bytes 64MiB"),
    _run(
        "membench-hbf-random-4k-detailed",
        "membench --device hbf-gen1 --pattern random --request-size 4KiB --bytes 4MiB --fidelity detailed",
    ),
    _run("membench-hbf-writes", "membench --device hbf-gen1 --write-ratio 0.5 --bytes 16MiB"),
    _run("membench-hbm3-seq-transaction", "membench --device hbm3 --bytes 64MiB"),
    _run(
        "membench-hbm3-random-64b-detailed",
        "membench --device hbm3 --pattern random --request-size 64B --bytes 256KiB --fidelity detailed",
    ),
    _run(
        "membench-hbm3-mixed-transaction",
        "membench --device hbm3 --write-ratio 0.3 --pattern random --request-size 4KiB --bytes 16MiB",
    ),
    _run(
        "membench-dram3d-logic-analytic", "membench --device dram3d-logic --fidelity analytic --bytes 64MiB"
    ),
    _run("membench-lpddr5x-seq-detailed", "membench --device lpddr5x --fidelity detailed --bytes 1MiB"),
    _run(
        "membench-nand-tlc-random",
        "membench --device nand-tlc --pattern random --request-size 16KiB --bytes 8MiB --write-ratio 0.2",
    ),
    # -- fabric ------------------------------------------------------------------------------------
    _run("noc-mesh4-uniform-flit", "noc --k 4 --rate 0.2 --warmup 300 --measure 1000"),
    _run(
        "noc-mesh4-transpose-message",
        "noc --k 4 --rate 0.15 --traffic transpose --fidelity message --warmup 300 --measure 1000",
    ),
    _run(
        "noc-torus4-dateline-4flit",
        "noc --topology torus --k 4 --rate 0.2 --packet-flits 4 --warmup 300 --measure 1000",
    ),
    _run(
        "noc-dragonfly-uniform",
        "noc --topology topologies/dragonfly-small.toml --rate 0.1 --warmup 200 --measure 500",
    ),
    _run(
        "noc-torus4-unsafe-deadlock",
        "noc --topology torus --k 4 --routing dor_unsafe --rate 0.9 --vcs 1 --vc-buffer 2 "
        "--packet-flits 4 --warmup 200 --measure 2000 --drain 2000",
    ),
    _run("collective-allreduce-ring-flit", "collective --topology mesh --k 4 --bytes 64KiB --fidelity flit"),
    _run(
        "collective-allreduce-innetwork-message",
        "collective --topology tree --radix 4 --levels 2 --algorithm in-network --bytes 1MiB",
    ),
    _run("collective-alltoall-fc8", "collective --topology topologies/fc8.toml --op alltoall"),
    # -- end to end: every shipped system ----------------------------------------------------------
    _run("run-default", "run"),
    # Iteration reuse off: every iteration through the memories, compute and fabric.
    _run("run-default-noreuse", "run --set driver.reuse=false"),
    _run(
        "run-gpu-hbm-70b-noreuse",
        "run gpu-hbm --model llama-3.1-70b --batch 8 --context 512 --steps 8 --set driver.reuse=false",
    ),
    _run("run-default-out", "run default --limit 6 --out {out}", files=("requests.csv", "iterations.csv")),
    _run("run-default-fixed", "run --batch 8 --context 512 --steps 4"),
    _run("run-default-decode-trace", "run default traces/llama-3.1-8b_azure_conv_24.jsonl.gz"),
    _run(
        "run-default-splitwise-static",
        "run default traces/splitwise_conv_200.csv --limit 8 "
        "--set batching.policy=static --set batching.max_batch=4",
    ),
    _run("run-default-mooncake", "run default traces/mooncake_conv_200.jsonl --limit 8"),
    _run(
        "run-default-simulated-collectives",
        "run default --batch 2 --context 256 --steps 2 --set driver.collectives=simulated",
    ),
    _run(
        "run-default-flit-collectives",
        "run default --batch 1 --context 128 --steps 1 --set driver.collectives=simulated "
        "--set fabric.fidelity=flit",
    ),
    _run(
        "run-default-mixtral-ep",
        "run default --model mixtral-8x7b --batch 4 --context 512 --steps 2 --set mapping.ep=8",
    ),
    _run("run-gpu-hbm-fixed", "run gpu-hbm --batch 4 --context 1024 --steps 2"),
    _run(
        "run-gpu-hbm-pp2",
        "run gpu-hbm --batch 4 --context 1024 --steps 2 --set mapping.tp=4 --set mapping.pp=2",
    ),
    _run(
        "run-gpu-hbm-a100-70b",
        "run gpu-hbm-a100 --model llama-2-70b --batch 16 --context 1024 --steps 2",
    ),
    _run("run-default-hardware-only", "run --batch 8 --context 512 --steps 2 --set software=none"),
    _run(
        "run-pnm-3d-pim",
        "run pnm-3d --batch 4 --context 512 --steps 2 --set mapping.tp=4 "
        "--set chip.memory.dram.near_memory.placement=in "
        "--set chip.memory.dram.near_memory.shard_limit=64MiB "
        "--set chip.memory.dram.near_memory.local_bandwidth=13107.2GB/s",
    ),
    _run("run-hbf-hybrid-70b", "run hbf-hybrid --model llama-3.1-70b --batch 32 --context 4096 --steps 4"),
    _run(
        "run-hbf-hybrid-70b-window8",
        "run hbf-hybrid --model llama-3.1-70b --batch 32 --context 4096 --steps 4 "
        "--set chip.memory.hbf.prefetch.window=8MiB",
    ),
    _run(
        "run-hbf-hybrid-transaction",
        "run hbf-hybrid --batch 2 --context 256 --steps 2 --set chip.memory.hbf.fidelity=transaction",
    ),
    _run("run-pnm-3d-70b-near", "run pnm-3d --model llama-3.1-70b --batch 8 --context 2048 --steps 2"),
    _run("run-mobile", "run mobile --batch 1 --context 512 --steps 2"),
    # -- lowering ----------------------------------------------------------------------------------
    _run("mappings-hbf-hybrid-70b", "mappings hbf-hybrid --model llama-3.1-70b"),
    _run(
        "trace-gen-synthetic",
        "trace gen --model llama-3.1-8b --requests traces/synthetic_poisson.toml "
        "--limit 8 --out {out}/t.jsonl",
        files=("t.jsonl",),
    ),
)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in WALL_CLOCK}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def execute(run: FixedRun) -> dict[str, Any]:
    """Run one fixed run in this process; its JSON output (wall clock removed) and its files."""
    from sim.cli import main

    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(REPO):
        argv = [a.replace("{out}", tmp) for a in run.argv] + ["--json"]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        text = out.getvalue().strip()
        result: dict[str, Any] = {"exit": code}
        try:
            result["json"] = _strip(json.loads(text)) if text else None
        except json.JSONDecodeError:
            result["stdout"] = text
        if code != 0:
            result["stderr"] = err.getvalue().strip().replace(tmp, "{out}")
        for name in run.files:
            path = Path(tmp) / name
            result[f"file:{name}"] = path.read_text() if path.is_file() else None
        return _paths_out(result, tmp)


def _paths_out(value: Any, tmp: str) -> Any:
    """Temporary paths inside outputs become ``{out}`` so runs compare across directories."""
    if isinstance(value, dict):
        return {k: _paths_out(v, tmp) for k, v in value.items()}
    if isinstance(value, list):
        return [_paths_out(v, tmp) for v in value]
    if isinstance(value, str):
        return value.replace(tmp, "{out}")
    return value


def _diff(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(kind, description) of every difference; kind is 'changed', 'removed' or 'added'."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            sub = f"{path}.{k}" if path else k
            if k not in new:
                yield "removed", sub
            elif k not in old:
                yield "added", sub
            else:
                yield from _diff(old[k], new[k], sub)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from _diff(a, b, f"{path}[{i}]")
        return
    if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
        yield "changed", f"{path}: {_short(old)} -> {_short(new)}"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _allowed(path: str) -> bool:
    from fnmatch import fnmatchcase

    return any(fnmatchcase(path, pattern) or fnmatchcase(path, pattern + ".*") for pattern in ADDED)


def select(pattern: str | None) -> list[FixedRun]:
    return [r for r in RUNS if pattern is None or pattern in r.name]


def record(runs: list[FixedRun], say: Callable[[str], None] = print) -> None:
    ref = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {}
    for run in runs:
        say(f"record {run.name}")
        ref[run.name] = {"argv": list(run.argv), "result": execute(run)}
    ref = {k: ref[k] for k in sorted(ref) if any(r.name == k for r in RUNS)}
    REFERENCE.write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")


def check(runs: list[FixedRun], say: Callable[[str], None] = print) -> list[str]:
    """Problems found (empty: every run matches its reference)."""
    ref = json.loads(REFERENCE.read_text())
    problems: list[str] = []
    for run in runs:
        if run.name not in ref:
            problems.append(f"{run.name}: no reference recorded (run 'record -k {run.name}')")
            continue
        new = execute(run)
        kinds = list(_diff(ref[run.name]["result"], new))
        added = [d for k, d in kinds if k == "added" and _allowed(d)]
        bad = [f"{k} {d}" for k, d in kinds if not (k == "added" and _allowed(d))]
        status = "ok" if not bad else "DIFFERS"
        say(f"{status:8} {run.name}" + (f" (new fields: {', '.join(added)})" if added else ""))
        problems += [f"{run.name}: {b}" for b in bad]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("check", "record", "list"))
    ap.add_argument("-k", help="only runs whose name contains this")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    runs = select(args.k)
    if args.action == "list":
        for r in runs:
            print(f"{r.name:40} memwall {' '.join(r.argv)}")
        return 0
    if args.action == "record":
        record(runs)
        return 0
    problems = check(runs)
    for p in problems:
        print(p)
    print(f"{len(runs)} runs, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
