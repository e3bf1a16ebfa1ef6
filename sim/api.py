"""memwall from Python: what the ``memwall`` commands do, as functions that return data.

::

    import sim.api as memwall

    result = memwall.run("hbf-hybrid", "llama-3.1-70b", batch=32, context=4096, steps=4,
                         set={"chip.memory.hbf.prefetch.window": "8MiB"})
    result.summary["tpot_ms"]["mean"]           # the figures `memwall run --json` prints, as a dict
    result.summary["stall_breakdown"]           # where the critical path waited
    result.write("out/hbf")                     # the files of `memwall run --out` (ops.csv and
                                                # blame.csv need run(..., record_ops=True))

    system = memwall.load_system("gpu-hbm", {"chip.memory.hbm.stacks": 6})
    model = memwall.load_model("llama-3.1-8b")
    memwall.run(system, model, trace="traces/azure_conv_200.csv", limit=50)

    bench = memwall.membench("hbf-gen1", pattern="seq", request_size="64KiB", total_bytes="256MiB")

Lower-level pieces stay importable where they live: :func:`build_system` turns a system spec into
simulated hardware inside a :class:`~sim.core.simulation.Simulation`, :func:`register` adds a memory
kind, batching policy, routing function or any other extension point (see ``examples/``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.core.registry import lookup, names, register
from sim.core.simulation import Simulation
from sim.driver.token_driver import TokenDriver
from sim.model.spec import ModelSpec, load_model
from sim.requests.record import Request
from sim.requests.synthetic import SyntheticParams, synthetic_requests
from sim.system.build import System, build_system
from sim.system.spec import SystemSpec, load_system, system_from_mapping

__all__ = [
    "ModelSpec",
    "Request",
    "RunResult",
    "Simulation",
    "SyntheticParams",
    "System",
    "SystemSpec",
    "build_system",
    "load_model",
    "load_system",
    "lookup",
    "membench",
    "names",
    "register",
    "run",
    "shipped_trace",
    "synthetic_requests",
    "system_from_mapping",
]


@dataclass
class RunResult:
    """A finished run: its ``summary`` (a dict, as ``memwall run --json``), the driver with every
    iteration and request record, and the simulation with its stats tree."""

    summary: dict[str, Any]
    driver: TokenDriver
    sim: Simulation

    def write(self, out: str | Path) -> Path:
        """Write the run's files (``summary.json``, ``requests.csv``, ...) into ``out``; the op log
        (``ops.csv``, ``blame.csv``) only when the run had ``record_ops=True``, as ``--out`` does."""
        from sim.observe.writers import write_run

        return write_run(out, self.summary, self.driver, self.sim)


def run(
    system: str | SystemSpec = "default",
    model: str | ModelSpec | None = None,
    *,
    trace: str | Path | None = None,
    requests: Iterable[Request] | None = None,
    format: str | None = None,
    limit: int | None = None,
    batch: int | None = None,
    context: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    set: Mapping[str, Any] | None = None,
    record_ops: bool = False,
) -> RunResult:
    """Simulate inference end to end, exactly as ``memwall run`` would with the same settings.

    ``system`` and ``model`` are names, files or resolved specs. The workload is a decode trace or a
    request trace (``trace``; the built-in 24-request sample when none is given), request records
    in arrival order (``requests``, e.g. from :func:`synthetic_requests`) or, when ``batch``,
    ``context`` or ``steps`` is given, a fixed decode batch. ``set`` holds ``--set`` keys
    (``mapping.tp``, ``chip.memory.hbm.stacks``, ``batching.max_batch``...). A run that stalls keeps
    what it computed and names the stall in ``summary["error"]``.
    """
    from sim.experiments.run import build_run, execute

    overrides = dict(set or {})
    if record_ops:
        overrides["driver.record_ops"] = "true"
    settings = {
        "system": system,
        "model": model,
        "trace": None if trace is None else str(trace),
        "requests": requests,
        "format": format,
        "limit": limit,
        "batch": batch,
        "context": context,
        "steps": steps,
        "seed": seed,
        "set": overrides,
    }
    spec, scheduler = build_run(settings, where="set")
    summary, driver, sim = execute(spec, scheduler=scheduler)
    return RunResult(summary, driver, sim)


def shipped_trace(name: str) -> Path:
    """The path of a sample trace shipped with memwall (``traces/`` in the repository)."""
    from sim.shipped import shipped_dir

    path = shipped_dir("traces") / name
    if not path.is_file():
        known = ", ".join(
            sorted(p.name for p in shipped_dir("traces").iterdir() if not p.name.startswith("_"))
        )
        raise FileNotFoundError(f"no shipped trace {name!r}; expected one of: {known}")
    return path


def membench(
    device: str = "hbf-gen1",
    *,
    pattern: str = "seq",
    request_size: int | str = "64KiB",
    concurrency: int = 64,
    total_bytes: int | str = "256MiB",
    write_ratio: float = 0.0,
    fidelity: str | None = None,
    set: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A memory microbenchmark, as ``memwall membench --json`` (device: preset, kind or TOML file)."""
    from sim.experiments.membench import MembenchParams, run_membench
    from sim.memory.factory import resolve_device

    spec = resolve_device(device, dict(set or {}), fidelity)
    params = MembenchParams.from_mapping(
        {
            "pattern": pattern,
            "request_size": request_size,
            "concurrency": concurrency,
            "total_bytes": total_bytes,
            "write_ratio": write_ratio,
        },
        where="membench",
    )
    return run_membench(spec, params, seed=seed)
