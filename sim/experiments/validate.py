"""``memwall validate``: how far memwall's calibrated components are from measured hardware.

Three parts, each against data this project ships or points to (``../shared/data/validation``, see
its SOURCES.md), never against an end-to-end figure:

1. **Kernels.** Every row of the per-operator kernel profiles (H100 and A100; every model, tensor
   parallelism 1-8, 1-4096+ tokens) timed by the ``h100-sxm`` / ``a100-sxm`` presets' kernel model
   at the GPU's datasheet memory bandwidth: median and 90th-percentile |error| per operator, with
   kernels measured under 10 us counted within bounds when predicted within 1.5 us (the profiles'
   1 us timer resolution).
2. **Collectives.** Every all_reduce row of the NCCL tables (DGX-H100 and DGX-A100, 2, 4 and 8
   ranks on one node) against what the driver charges on the shipped ``gpu-hbm`` and
   ``gpu-hbm-a100`` fabrics (the collective's launch plus the ring's alpha-beta time); and the
   2-rank send_recv rows against one transfer on the same fabric after the fabric's
   ``transfer_launch`` (what a pipeline-stage transfer costs).
3. **Decode steps.** A fixed decode batch on every shipped system next to its roofline bound (the
   bytes the step moves over its memories' peak bandwidth, its FLOPs over the die's peak), split
   into hardware and software time.

Writes ``OUT/validation.md`` with PNG plots and ``OUT/validation.json`` with every figure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim.calibration import compute as cc
from sim.calibration.fabric import read_vidur_csv
from sim.core.errors import ConfigError
from sim.core.preset import get_preset
from sim.stats.percentiles import percentile

DEVICES = {
    # device profile dir: (die preset, datasheet memory bandwidth B/s, system file, NCCL table dir)
    "h100": ("h100-sxm", 3.35e12, "gpu-hbm", "h100_dgx"),
    "a100": ("a100-sxm", 2.039e12, "gpu-hbm-a100", "a100_dgx"),
}
GROUPS = (2, 4, 8)
DECODE_CASES = (
    # system, model, mapping overrides, batches
    ("gpu-hbm", "llama-3.1-70b", {}, (1, 16, 64)),
    ("gpu-hbm-a100", "llama-2-70b", {}, (1, 16, 64)),
    ("hbf-hybrid", "llama-3.1-70b", {}, (1, 16, 64)),
    ("pnm-3d", "llama-3.1-70b", {}, (1, 16, 64)),
    ("mobile", "llama-3.1-8b", {}, (1,)),
)


def default_data_dir() -> Path:
    """``../shared/data/validation`` beside the repository, when it is there."""
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "validation"


def _vidur(data: Path) -> Path:
    root = data / "vidur" / "profiling"
    if not root.is_dir():
        raise ConfigError(
            f"expected the Vidur profiles under {root} (see ../shared/data/validation/SOURCES.md)",
            where="--data",
        )
    return root


# -- 1. kernels ---------------------------------------------------------------------------------------
def kernel_errors(data: Path, device: str) -> dict[str, Any]:
    """Per-operator error of the device's preset over every profile row."""
    from sim.compute.die import ComputeDieParams

    preset, bandwidth, _, _ = DEVICES[device]
    params = ComputeDieParams.from_mapping(get_preset(preset).raw_values(), where=preset)
    rows = cc.read_profiles(_vidur(data) / "compute", device)
    measured = np.array([m.seconds for m in rows])
    predicted = cc.predict(params, bandwidth, rows)
    err = cc.errors(predicted, measured)
    ops: dict[str, Any] = {}
    for op in cc.OPERATORS:
        mask = np.array([m.operator == op for m in rows])
        if mask.any():
            ops[op] = cc.summary(err[mask])
    return {
        "preset": preset,
        "bandwidth_Bps": bandwidth,
        "kernels": len(rows),
        "operators": ops,
        "_points": (measured, predicted, [m.operator for m in rows]),
    }


# -- 2. collectives ----------------------------------------------------------------------------------------
def collective_errors(data: Path, device: str) -> dict[str, Any]:
    """All-reduce error per group size, and 2-rank send_recv error, on the shipped system's fabric."""
    from sim.fabric.collectives import CollectiveCase
    from sim.system.build import collective_ps, transfer_ps
    from sim.system.spec import load_system

    _, _, system_name, table = DEVICES[device]
    system = load_system(system_name)
    twin = _twin(system)
    root = _vidur(data) / "network" / table
    out: dict[str, Any] = {"system": system_name, "allreduce": {}, "points": {}}
    for p in GROUPS:
        rows = read_vidur_csv(root / "all_reduce.csv", num_workers=p, devices_per_node=p)
        pred = [
            collective_ps(system, twin, CollectiveCase("allreduce", "ring", r.nbytes, tuple(range(p)))) / 1e12
            for r in rows
        ]
        meas = [r.seconds for r in rows]
        err = [abs(a / b - 1) for a, b in zip(pred, meas, strict=True)]
        out["allreduce"][p] = {"n": len(rows), "median": percentile(err, 50), "p90": percentile(err, 90)}
        out["points"][p] = ([r.nbytes for r in rows], meas, pred)
    rows = read_vidur_csv(root / "send_recv.csv", num_workers=2, devices_per_node=2)
    # a pipeline-stage transfer: its launch and one message (what the driver charges)
    pred = [transfer_ps(system, twin, 0, 1, r.nbytes) / 1e12 for r in rows]
    err = [abs(a / b - 1) for a, b in zip(pred, [r.seconds for r in rows], strict=True)]
    out["send_recv"] = {"n": len(rows), "median": percentile(err, 50), "p90": percentile(err, 90)}
    return out


def _twin(system: Any) -> Any:
    from sim.core.simulation import Simulation
    from sim.fabric.message_network import MessageNetwork

    return MessageNetwork(Simulation(), "twin", system.topology, system.network, system.router)


# -- 3. decode steps next to their roofline ---------------------------------------------------------------
def decode_steps(
    cases: Sequence[tuple[str, str, dict[str, Any], Sequence[int]]] = DECODE_CASES, steps: int = 2
) -> list[dict[str, Any]]:
    """A fixed decode batch on each system: step time, its roofline bound, hardware and software."""
    from sim.experiments.run import build_run, execute
    from sim.serving.mapping import plan

    out = []
    for system_name, model, overrides, batches in cases:
        for batch in batches:
            settings = {
                "system": system_name,
                "model": model,
                "batch": batch,
                "context": 1024,
                "steps": steps,
                "set": overrides,
            }
            spec, _ = build_run(settings, where="validate")
            summary, driver, _ = execute(spec)
            p = plan(spec.model, spec.system, spec.mapping)
            bound_s = roofline_step_s(driver, p, summary)
            step_s = summary["step_time_ms"]["mean"] / 1e3
            software_s = summary["software_s"] / max(1, summary["iterations"])
            out.append(
                {
                    "system": system_name,
                    "model": model,
                    "batch": batch,
                    "step_ms": step_s * 1e3,
                    "roofline_ms": bound_s * 1e3,
                    "software_ms": software_s * 1e3,
                    "hardware_ms": (step_s - software_s) * 1e3,
                    "top_causes": sorted(summary["stall_breakdown"].items(), key=lambda kv: -kv[1])[:3],
                    "bound_violations": summary["bound_violations"],
                }
            )
    return out


def roofline_step_s(driver: Any, p: Any, summary: dict[str, Any]) -> float:
    """Per iteration: the largest of each memory's bytes over its peak and the FLOPs over the die's
    peak, summed over pipeline stages (one chip per stage simulated)."""
    iterations = max(1, summary["iterations"])
    total = 0.0
    for chip in driver.chips:
        mem_s = 0.0
        for mem in chip.memories.values():
            dev = mem.device
            external = dev.stat.bytes_read.value + dev.stat.bytes_written.value
            internal = dev.stat.internal_bytes_read.value
            if mem.near is not None and mem.near.internal:
                # near-memory units on their own path (PIM banks, near-flash channels): its bandwidth
                mem_s = max(mem_s, internal * mem.stacks / mem.near.bandwidth / iterations)
                internal = 0.0
            mem_s = max(mem_s, (external + internal) * mem.stacks / mem.peak / iterations)
        flops_s = chip.die.stat.flops.value / chip.die.params.peak("bf16") / iterations  # type: ignore[attr-defined]
        for mem in chip.memories.values():
            if mem.near is not None:
                flops_s = max(flops_s, mem.near.stat.flops.value / mem.near.peak_flops / iterations)
        total += max(mem_s, flops_s)
    return total


# -- the report ---------------------------------------------------------------------------------------------
def run_validation(data: Path | None = None, out: Path | None = None, decode: bool = True) -> dict[str, Any]:
    """Everything above; writes ``out/validation.md``, plots and ``validation.json`` when ``out``."""
    data = data or default_data_dir()
    result: dict[str, Any] = {"data": str(data), "kernels": {}, "collectives": {}}
    for device in DEVICES:
        result["kernels"][device] = kernel_errors(data, device)
        result["collectives"][device] = collective_errors(data, device)
    result["decode"] = decode_steps() if decode else []
    if out is not None:
        write_report(result, Path(out))
    return result


def _public(result: dict[str, Any]) -> dict[str, Any]:
    """The result without plot points (for JSON)."""
    out = json.loads(json.dumps(result, default=lambda o: None))
    for dev in out["kernels"].values():
        dev.pop("_points", None)
    for dev in out["collectives"].values():
        dev.pop("points", None)
    out["data"] = _shown(out["data"])
    return out


def _shown(path: str) -> str:
    """The data directory as a reader of the report can find it: relative to the working directory
    when it is beside the repository, so committed reports do not carry one machine's paths. Symbolic
    links are kept, not resolved: ``../shared`` linked to a data store elsewhere still reads so."""
    p = Path(os.path.abspath(path))
    try:
        return os.path.relpath(p, Path.cwd())
    except ValueError:  # another drive
        return str(p)


def write_report(result: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "validation.json").write_text(json.dumps(_public(result), indent=1, sort_keys=True) + "\n")
    lines = ["# memwall validation", "", f"Data: `{_shown(result['data'])}` (see its SOURCES.md).", ""]
    lines += ["## Kernels: per-operator error of the calibrated dies", ""]
    lines += [
        "Every row of the Vidur kernel profiles, timed by the preset's kernel model at the GPU's "
        "datasheet memory bandwidth. Kernels measured under 10 us count as exact when predicted "
        "within 1.5 us (1 us timer resolution). Acceptance: median <= 10%, p90 <= 25% per operator.",
        "",
        "| operator | "
        + " | ".join(f"{d.upper()} median | {d.upper()} p90" for d in result["kernels"])
        + " |",
        "|---|" + "---|---|" * len(result["kernels"]),
    ]
    for op in cc.OPERATORS:
        cells = []
        for dev in result["kernels"].values():
            e = dev["operators"].get(op)
            cells += [f"{100 * e['median']:.1f}%", f"{100 * e['p90']:.1f}%"] if e else ["", ""]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines += ["", "## All-reduce and send/recv against the NCCL tables", ""]
    lines += [
        "What the driver charges for a ring all-reduce on the shipped fabric (the collective's "
        "launch for its group size, then 2(p-1) transfers), against every measured size. "
        "Acceptance: median <= 15% at every group size.",
        "",
        "| node | system | "
        + " | ".join(f"{p} ranks median / p90" for p in GROUPS)
        + " | send_recv (2 ranks) median / p90 |",
        "|---|---|" + "---|" * (len(GROUPS) + 1),
    ]
    for dev, c in result["collectives"].items():
        cells = [
            f"{100 * c['allreduce'][p]['median']:.1f}% / {100 * c['allreduce'][p]['p90']:.1f}%"
            for p in GROUPS
        ]
        sr = c["send_recv"]
        cells.append(f"{100 * sr['median']:.1f}% / {100 * sr['p90']:.1f}%")
        lines.append(f"| DGX-{dev.upper()} | `{c['system']}` | " + " | ".join(cells) + " |")
    if result["decode"]:
        lines += ["", "## Decode steps of the shipped systems next to their roofline bound", ""]
        lines += [
            "Fixed decode batch, context 1024. Roofline = max(bytes moved / peak bandwidth of each "
            "memory, FLOPs / peak) per stage; software = the serving engine's host time.",
            "",
            "| system | model | batch | step (ms) | roofline (ms) | hardware (ms) | software (ms) "
            "| top causes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for d in result["decode"]:
            causes = ", ".join(f"{k} {100 * v:.0f}%" for k, v in d["top_causes"])
            lines.append(
                f"| `{d['system']}` | {d['model']} | {d['batch']} | {d['step_ms']:.2f} | "
                f"{d['roofline_ms']:.2f} | {d['hardware_ms']:.2f} | {d['software_ms']:.2f} | {causes} |"
            )
    plots = _plots(result, out)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in plots]
    path = out / "validation.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _plots(result: dict[str, Any], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = []
    for dev, k in result["kernels"].items():
        measured, predicted, ops = k["_points"]
        fig, ax = plt.subplots(figsize=(6.5, 5))
        for op in cc.OPERATORS:
            mask = np.array([o == op for o in ops])
            ax.scatter(measured[mask] * 1e6, predicted[mask] * 1e6, s=2, alpha=0.4, label=op)
        lo, hi = 1, max(measured.max(), predicted.max()) * 1e6
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured kernel time (us, one GPU)")
        ax.set_ylabel("memwall kernel time (us, one GPU)")
        ax.set_title(f"{dev.upper()} kernels: {k['preset']} against {k['kernels']:,} measured")
        ax.legend(fontsize="x-small", markerscale=4)
        fig.tight_layout()
        name = f"kernels_{dev}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
    for dev, c in result["collectives"].items():
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for p, (sizes, meas, pred) in c["points"].items():
            line = ax.plot(np.array(sizes) / 2**20, np.array(meas) * 1e6, ".", ms=2, alpha=0.5)[0]
            ax.plot(
                np.array(sizes) / 2**20, np.array(pred) * 1e6, "-", color=line.get_color(), label=f"{p} ranks"
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("all-reduce size (MiB)")
        ax.set_ylabel("time (us): dots measured (NCCL), lines memwall")
        ax.set_title(f"DGX-{dev.upper()} all-reduce, `{c['system']}` fabric")
        ax.legend(fontsize="small")
        fig.tight_layout()
        name = f"allreduce_{dev}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names
