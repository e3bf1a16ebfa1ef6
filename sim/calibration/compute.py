"""Calibrating a compute die's kernel model on measured per-operator kernel times.

The reference data are Vidur's profiles of one transformer layer's non-attention operators
(microsoft/vidur @ 7d475133, ``data/profiling/compute/{h100,a100}/<org>/<model>/mlp.csv``, MIT;
the project's copy is ``../shared/data/validation/vidur/profiling/compute``, see its SOURCES.md):
per model shape, token count (1..4096+) and tensor-parallel degree (1, 2, 4, 8), the min / max /
mean / median / std of each CUDA kernel's time in milliseconds on one GPU of a DGX node.

Each profile row becomes the kernels :func:`~sim.compute.kernels.dense_layer_kernels` lists for that
shape, the same list the simulator's lowering times, and each kernel class's parameters are fitted
to the medians: ``fixed``, ``floor`` and ``bw_efficiency`` for the memory-bound classes; for GEMMs
also ``compute_efficiency``, the output tile and the memory/compute ``overlap``. Peak FLOP/s, the
unit (SM) count and the memory bandwidth are the datasheet's, never fitted.

The objective is the one the acceptance criteria use, per kernel class: the median plus the 90th
percentile of the relative error, where a kernel measured under 10 us whose prediction is within
1.5 us counts as exact (the profiles' timer resolution is 1 us). The search is a deterministic
pattern search from a fixed start, so a refit reproduces the preset's values.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sim.calibration.search import pattern_search
from sim.compute.kernels import (
    DenseLayerShape,
    Kernel,
    KernelBatch,
    KernelModel,
    dense_layer_kernels,
    embedding_kernel,
)
from sim.core.errors import ConfigError
from sim.core.units import PS_PER_S

OPERATORS = (
    "emb",
    "input_layernorm",
    "attn_pre_proj",
    "attn_rope",
    "attn_post_proj",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
)
"""The operator columns of a profile, in layer order."""

SMALL_S = 10e-6
SMALL_ABS_S = 1.5e-6
"""Kernels measured under 10 us count as exact when predicted within 1.5 us (timer resolution)."""


@dataclass(frozen=True)
class Measurement:
    """One operator of one profile row: its kernel and its measured median time (seconds)."""

    device: str
    model: str
    operator: str
    tokens: int
    tp: int
    kernel: Kernel
    seconds: float


def read_profiles(root: str | Path, device: str) -> list[Measurement]:
    """Every operator of every row of ``root/<device>/*/*/mlp.csv``."""
    base = Path(root) / device
    files = sorted(base.glob("*/*/mlp.csv"))
    if not files:
        raise ConfigError(f"no profiles (*/*/mlp.csv) under {base}", where=str(base))
    out: list[Measurement] = []
    for path in files:
        model = path.parent.name
        with path.open(newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    out.extend(_row(device, model, row))
                except (KeyError, ValueError) as exc:
                    raise ConfigError(f"unreadable profile row: {exc}", where=f"{path}: line {i}") from None
    return out


def _row(device: str, model: str, row: dict[str, str]) -> Iterable[Measurement]:
    heads, kv_heads, hidden = int(row["n_head"]), int(row["n_kv_head"]), int(row["n_embd"])
    shape = DenseLayerShape(
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate=int(row["n_expanded_embd"]),
        gated=row["use_gated_mlp"].strip().lower() == "true",
    )
    tokens, tp = int(row["num_tokens"]), int(row["num_tensor_parallel_workers"])
    kernels = dense_layer_kernels(shape, tokens, tp)
    kernels["emb"] = embedding_kernel(hidden, tokens)
    for op in OPERATORS:
        value = row.get(f"time_stats.{op}.median", "")
        if value.strip():
            yield Measurement(device, model, op, tokens, tp, kernels[op], float(value) * 1e-3)


# -- the objective ------------------------------------------------------------------------------------
def errors(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """|relative error| per kernel, 0 for small kernels predicted within the timer resolution."""
    rel = np.abs(predicted / measured - 1.0)
    exact = (measured < SMALL_S) & (np.abs(predicted - measured) <= SMALL_ABS_S)
    return np.where(exact, 0.0, rel)


def summary(err: np.ndarray) -> dict[str, float]:
    return {
        "n": int(err.size),
        "median": float(np.median(err)) if err.size else 0.0,
        "p90": float(np.percentile(err, 90)) if err.size else 0.0,
    }


def predict(params: Any, bandwidth: float, measurements: Sequence[Measurement] | KernelBatch) -> np.ndarray:
    """Predicted seconds for each measurement on a die with ``params`` and memory ``bandwidth``."""
    batch = (
        measurements
        if isinstance(measurements, KernelBatch)
        else KernelBatch.of([m.kernel for m in measurements])
    )
    return KernelModel(params).total_ps_many(batch, bandwidth) / PS_PER_S


# -- the search -----------------------------------------------------------------------------------------
FITTED = {
    "gemm": ("gemm_fixed", "gemm_bw_efficiency", "gemm_compute_efficiency", "gemm_overlap"),
    "norm": ("norm_fixed", "norm_floor", "norm_bw_efficiency"),
    "rope": ("rope_fixed", "rope_floor", "rope_bw_efficiency"),
    "act": ("act_fixed", "act_floor", "act_bw_efficiency"),
    "add": ("add_fixed", "add_floor", "add_bw_efficiency"),
    "emb": ("emb_fixed", "emb_floor", "emb_bw_efficiency"),
}
"""Parameters fitted per kernel class (the GEMM's output tile is chosen from TILES)."""

TILES = tuple((m, n) for m in (8, 16, 32, 64, 128) for n in (64, 128, 256))
"""Output tiles the GEMM search tries (rows are tokens: small tiles suit GEMVs, large ones big GEMMs)."""
STARTS = (
    {"fixed": 1e-6, "floor": 0.0, "bw_efficiency": 0.8, "compute_efficiency": 0.7, "overlap": 2.0},
    {"fixed": 1e-6, "floor": 3e-6, "bw_efficiency": 0.4, "compute_efficiency": 0.7, "overlap": 4.0},
    {"fixed": 1e-6, "floor": 6e-6, "bw_efficiency": 0.4, "compute_efficiency": 0.7, "overlap": 2.0},
    {"fixed": 1e-6, "floor": 9e-6, "bw_efficiency": 0.2, "compute_efficiency": 0.7, "overlap": 2.0},
)
"""Starting points of the search (the objective has several local minima; the best end wins)."""
BOUNDS = {
    "fixed": (0.0, 50e-6),
    "floor": (0.0, 50e-6),
    "bw_efficiency": (0.02, 1.0),
    "compute_efficiency": (0.05, 1.0),
    "overlap": (1.0, 8.0),
}
TIME_KEYS = ("fixed", "floor")


def _suffix(name: str) -> str:
    return next(k for k in BOUNDS if name.endswith(k))


def _bounds(names: Sequence[str]) -> dict[str, tuple[float, float]]:
    return {n: BOUNDS[_suffix(n)] for n in names}


def _steps(names: Sequence[str]) -> dict[str, tuple[str, float]]:
    """Per parameter: additive steps of 4 us for times, multiplicative steps of 50% otherwise."""
    return {n: ("add", 4e-6) if _suffix(n) in TIME_KEYS else ("scale", 0.5) for n in names}


def _as_params(base: Any, values: dict[str, float]) -> Any:
    """``base`` (a ComputeDieParams) with fitted values (times given in seconds)."""
    changes: dict[str, Any] = {}
    for key, value in values.items():
        changes[key] = round(value * PS_PER_S) if _suffix(key) in TIME_KEYS else value
    return replace(base, **changes)


@dataclass(frozen=True)
class Fit:
    """Fitted parameters of one kernel class and the error they leave."""

    kernel_class: str
    values: dict[str, Any]
    error: dict[str, float]


def fit_class(
    base: Any,
    bandwidth: float,
    kernel_class: str,
    measurements: Sequence[Measurement],
    tiles: Sequence[tuple[int, int]] = TILES,
) -> Fit:
    """Fit one class's parameters on the measurements of its kernels (others untouched); GEMMs try
    every output tile in ``tiles``."""
    rows = [m for m in measurements if m.kernel.kind == kernel_class]
    if not rows:
        raise ConfigError(f"no measured kernels of class {kernel_class!r}", where="calibration")
    measured = np.array([m.seconds for m in rows])
    batch = KernelBatch.of([m.kernel for m in rows])
    names = FITTED[kernel_class]

    def objective(params: Any) -> Callable[[dict[str, float]], float]:
        def f(x: dict[str, float]) -> float:
            s = summary(errors(predict(_as_params(params, x), bandwidth, batch), measured))
            return s["median"] + s["p90"]

        return f

    tiles = tiles if kernel_class == "gemm" else ((base.gemm_tile_m, base.gemm_tile_n),)
    best: tuple[float, dict[str, Any], Any] | None = None
    for tm, tn in tiles:
        params = replace(base, gemm_tile_m=tm, gemm_tile_n=tn)
        for start in STARTS:
            x0 = {n: start[_suffix(n)] for n in names}
            x, value = pattern_search(objective(params), x0, _bounds(names), _steps(names))
            if best is None or value < best[0] - 1e-12:
                tile = {"gemm_tile_m": tm, "gemm_tile_n": tn} if kernel_class == "gemm" else {}
                best = (value, {**x, **tile}, params)
    assert best is not None
    _, x, params = best
    fitted = _as_params(params, {k: v for k, v in x.items() if not k.startswith("gemm_tile")})
    err = summary(errors(predict(fitted, bandwidth, batch), measured))
    values = {
        k: getattr(fitted, k)
        for k in (*names, *(("gemm_tile_m", "gemm_tile_n") if kernel_class == "gemm" else ()))
    }
    return Fit(kernel_class, values, err)


def fit_die(
    base: Any, bandwidth: float, measurements: Sequence[Measurement], tiles: Sequence[tuple[int, int]] = TILES
) -> tuple[Any, list[Fit]]:
    """Fit every kernel class; the calibrated parameters and the per-class fits."""
    fits = [fit_class(base, bandwidth, cls, measurements, tiles) for cls in FITTED]
    params = base
    for f in fits:
        params = replace(params, **f.values)
    return params, fits


def operator_errors(
    params: Any, bandwidth: float, measurements: Sequence[Measurement]
) -> dict[str, dict[str, float]]:
    """Error summary per profile operator (the acceptance table)."""
    out = {}
    for op in OPERATORS:
        rows = [m for m in measurements if m.operator == op]
        if rows:
            measured = np.array([m.seconds for m in rows])
            out[op] = summary(errors(predict(params, bandwidth, rows), measured))
    return out


def format_values(values: dict[str, Any]) -> str:
    """Fitted values as TOML-ready lines (times in ns)."""
    lines = []
    for key, value in values.items():
        if _suffix(key) in TIME_KEYS if key[-5:] in ("fixed", "floor") else False:
            lines.append(f'{key} = "{value / 1000:.0f}ns"')
        elif isinstance(value, float):
            lines.append(f"{key} = {value:.4f}")
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines)


def _ceil_log(x: float) -> int:  # pragma: no cover - helper kept for reports
    return math.ceil(math.log2(x))
