"""Kernels: the operations an op is made of, and how long each one takes on a compute die.

A transformer layer on a GPU-like die is a chain of kernels (``norm``, a fused QKV ``gemm``,
``rope``, attention, the output ``gemm``, ``norm``, the gate-and-up ``gemm``, the activation ``act``,
the down ``gemm``, the residual ``add``), and the die runs them one after another. A
:class:`Kernel` carries what one of them needs: its GEMM shape (``m`` tokens x ``k`` inputs x
``n`` outputs), its FLOPs and its bytes by where they live (weights, KV cache, activations). A
:class:`KernelModel` times it on a die whose parameters were calibrated on measured kernels::

    t = max(floor, fixed + soft(t_mem, t_cmp))
    t_mem = sum over sources of bytes / (bw_efficiency x bandwidth of the source)
    t_cmp = waves x 2 tile_m tile_n k / (peak[precision] / units x compute_efficiency)   (GEMM)
          = flops / (peak[precision] x compute_efficiency)                              (attention)
    soft(a, b) = (a^p + b^p)^(1/p)            (p = overlap; a large p is max(a, b))

``fixed`` is what a kernel costs whatever its size (launch, ramp-up, tail), ``floor`` the shortest
kernel of its class ever seen, ``bw_efficiency`` the fraction of its source's peak bandwidth the
kernel streams at, and the GEMM's compute leg counts whole waves of ``tile_m x tile_n`` output
tiles over the die's ``units`` (the tile and wave quantisation that makes small GEMMs inefficient;
NVIDIA, "GPU Performance Background User's Guide: wave quantization"). The parameters of each class
are fields of :class:`~sim.compute.die.ComputeDieParams`; the H100 and A100 presets are fitted by
:mod:`sim.calibration.compute` on measured per-operator kernel times.

:func:`dense_layer_kernels` lists the kernels of one dense decoder layer the way the measured
profiles split it; the lowering and the calibration both use it, so the simulator times exactly
the kernels that were measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.core.units import PS_PER_S

KERNEL_CLASSES = ("gemm", "norm", "rope", "act", "add", "emb", "attn_decode", "attn_prefill", "sample")
"""Kernel classes, each with its own calibrated parameters (``<class>_fixed``, ``<class>_floor``,
``<class>_bw_efficiency`` on the die). ``sample`` (LM-head softmax and sampling) is timed with the
``act`` class's parameters: both are one read-modify-write pass over a wide activation."""

PARAMETER_CLASS = {"sample": "act"}
"""Kernel classes that share another class's calibrated parameters."""

PRECISIONS = ("bf16", "fp8", "fp4")


def math_precision(*bits: float) -> str:
    """The die's math precision for operands of these widths: the widest decides (a bf16 activation
    times an fp8 weight is a bf16 GEMM after dequantisation)."""
    widest = max(bits)
    return "bf16" if widest > 8 else "fp8" if widest > 4 else "fp4"


@dataclass(frozen=True, slots=True)
class Kernel:
    """One kernel of an op on one chip (bytes and FLOPs are that chip's share)."""

    kind: str
    flops: float = 0.0
    m: int = 0  # GEMM rows (tokens)
    k: int = 0  # GEMM reduction dimension
    n: int = 0  # GEMM columns (outputs)
    weight_bytes: float = 0.0  # read from the weights (or their prefetch buffer)
    kv_bytes: float = 0.0  # KV cache read and written
    act_bytes: float = 0.0  # activations read and written
    precision: str = "bf16"
    groups: int = 1  # independent GEMMs of this shape in one launch (grouped GEMM: MoE experts)

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.kv_bytes + self.act_bytes


@dataclass(frozen=True, slots=True)
class Sources:
    """Bandwidth (bytes/s) of where each kind of a kernel's bytes comes from."""

    weights: float
    kv: float
    act: float


@dataclass(frozen=True, slots=True)
class KernelTime:
    """How long a kernel takes (ps) and what bounded it: fixed cost, memory leg or compute leg."""

    total_ps: int
    fixed_ps: int
    memory_ps: int
    compute_ps: int


def _soft(a: float, b: float, p: float) -> float:
    if a <= 0.0 or b <= 0.0:
        return a + b
    if p >= 64:
        return max(a, b)
    hi = max(a, b)
    return hi * ((a / hi) ** p + (b / hi) ** p) ** (1.0 / p)


class KernelModel:
    """Times kernels on a die with parameters ``params`` (a :class:`ComputeDieParams`)."""

    def __init__(self, params: Any) -> None:
        self.params = params
        p = params
        self._cls: dict[str, tuple[float, float, float]] = {}
        for cls in KERNEL_CLASSES:
            src = PARAMETER_CLASS.get(cls, cls)
            self._cls[cls] = (
                getattr(p, f"{src}_fixed") / PS_PER_S,
                getattr(p, f"{src}_floor") / PS_PER_S,
                getattr(p, f"{src}_bw_efficiency"),
            )
        self._peak = {d: p.peak(d) for d in PRECISIONS}
        self._memo: dict[tuple[Kernel, Sources], KernelTime] = {}

    def time(self, k: Kernel, src: Sources) -> KernelTime:
        """The kernel's time on this die reading its bytes from ``src`` (memoised: an iteration
        repeats the same shapes layer after layer)."""
        key = (k, src)
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) > 200_000:
                self._memo.clear()
            hit = self._memo[key] = self._time(k, src)
        return hit

    def _time(self, k: Kernel, src: Sources) -> KernelTime:
        p = self.params
        fixed, floor, eff = self._cls[k.kind]
        t_mem = 0.0
        if k.weight_bytes:
            t_mem += k.weight_bytes / (eff * src.weights)
        if k.kv_bytes:
            t_mem += k.kv_bytes / (eff * src.kv)
        if k.act_bytes:
            t_mem += k.act_bytes / (eff * src.act)
        peak = self._peak[k.precision]
        if k.kind == "gemm" and k.m and k.n and k.k:
            tm, tn, units = p.gemm_tile_m, p.gemm_tile_n, p.units
            waves = math.ceil(k.groups * math.ceil(k.m / tm) * math.ceil(k.n / tn) / units)
            t_cmp = waves * 2.0 * tm * tn * k.k / (peak / units * p.gemm_compute_efficiency)
            overlap = p.gemm_overlap
        elif k.kind == "attn_prefill":
            t_cmp = k.flops / (peak * p.attn_prefill_compute_efficiency)
            overlap = p.gemm_overlap
        else:
            t_cmp = k.flops / peak if k.flops else 0.0
            overlap = 64.0
        work = _soft(t_mem, t_cmp, overlap)
        total = max(floor, fixed + work)
        total_ps = int(total * PS_PER_S + 0.5)
        work_ps = int(work * PS_PER_S + 0.5)
        fixed_ps = max(0, total_ps - work_ps)
        if t_mem >= t_cmp:
            return KernelTime(total_ps, fixed_ps, work_ps, 0)
        return KernelTime(total_ps, fixed_ps, 0, work_ps)

    def total_ps_many(self, batch: KernelBatch, bandwidth: float) -> np.ndarray:
        """Total times (ps) of many kernels whose bytes all come from one ``bandwidth`` (vectorised,
        for calibration; equal to :meth:`time` kernel by kernel, which a test checks)."""
        p = self.params
        cls = np.array([self._cls[c] for c in KERNEL_CLASSES])  # (fixed, floor, eff) per class
        fixed, floor, eff = cls[batch.cls, 0], cls[batch.cls, 1], cls[batch.cls, 2]
        peak = np.array([self._peak[d] for d in PRECISIONS])[batch.precision]
        t_mem = batch.bytes / (eff * bandwidth)
        tm, tn, units = p.gemm_tile_m, p.gemm_tile_n, p.units
        waves = np.ceil(batch.groups * np.ceil(batch.m / tm) * np.ceil(batch.n / tn) / units)
        t_gemm = waves * 2.0 * tm * tn * batch.k / (peak / units * p.gemm_compute_efficiency)
        t_attn = batch.flops / (peak * p.attn_prefill_compute_efficiency)
        t_other = np.where(batch.flops > 0, batch.flops / peak, 0.0)
        t_cmp = np.where(batch.gemm, t_gemm, np.where(batch.prefill, t_attn, t_other))
        q = np.where(batch.gemm | batch.prefill, p.gemm_overlap, 64.0)
        hi = np.maximum(t_mem, t_cmp)
        safe = np.where(hi > 0, hi, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            soft = np.where(q >= 64, hi, safe * ((t_mem / safe) ** q + (t_cmp / safe) ** q) ** (1.0 / q))
        work = np.where((t_mem <= 0) | (t_cmp <= 0), t_mem + t_cmp, soft)
        total = np.maximum(floor, fixed + work)
        return np.floor(total * PS_PER_S + 0.5)


@dataclass(frozen=True)
class KernelBatch:
    """Many kernels as arrays, for timing them all at once (:meth:`KernelModel.total_ps_many`)."""

    cls: np.ndarray  # index into KERNEL_CLASSES
    precision: np.ndarray  # index into PRECISIONS
    flops: np.ndarray
    bytes: np.ndarray
    m: np.ndarray
    k: np.ndarray
    n: np.ndarray
    groups: np.ndarray
    gemm: np.ndarray  # GEMMs with a shape (tile-quantised)
    prefill: np.ndarray  # prefill attention

    @classmethod
    def of(cls, kernels: Sequence[Kernel]) -> KernelBatch:
        index = {c: i for i, c in enumerate(KERNEL_CLASSES)}
        gemm = np.array([k.kind == "gemm" and bool(k.m and k.n and k.k) for k in kernels], dtype=bool)
        return cls(
            cls=np.array([index[k.kind] for k in kernels], dtype=int),
            precision=np.array([PRECISIONS.index(k.precision) for k in kernels], dtype=int),
            flops=np.array([k.flops for k in kernels], dtype=float),
            bytes=np.array([k.bytes for k in kernels], dtype=float),
            m=np.where(gemm, [k.m for k in kernels], 0).astype(float),
            k=np.where(gemm, [k.k for k in kernels], 0).astype(float),
            n=np.where(gemm, [k.n for k in kernels], 0).astype(float),
            groups=np.array([k.groups for k in kernels], dtype=float),
            gemm=gemm,
            prefill=np.array([k.kind == "attn_prefill" for k in kernels], dtype=bool),
        )


# -- the kernels of a dense decoder layer, as the measured profiles split it ---------------------------


@dataclass(frozen=True)
class DenseLayerShape:
    """What fixes the kernels of a dense decoder layer (the columns of the measured profiles)."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    gated: bool = True


def dense_layer_kernels(
    shape: DenseLayerShape,
    tokens: int,
    tp: int,
    *,
    precision: str = "bf16",
    weight_bytes_per_param: float = 2.0,
    act_bytes: float = 2.0,
    attention: Kernel | None = None,
) -> dict[str, Kernel]:
    """The kernels of one dense layer on one of ``tp`` chips for ``tokens`` tokens, by profile name.

    Names follow the measured profiles: ``input_layernorm``, ``attn_pre_proj`` (fused QKV GEMM),
    ``attn_rope``, ``attn`` (``attention``, when given), ``attn_post_proj``,
    ``post_attention_layernorm``, ``mlp_up_proj`` (fused gate and up GEMM when ``gated``),
    ``mlp_act``, ``mlp_down_proj`` and ``add`` (one residual add per layer, as profiled; the other is
    fused into a norm). Column-parallel GEMMs (QKV, gate/up) split their outputs over ``tp``,
    row-parallel ones (output, down) their inputs.
    """
    s, m, a = shape, tokens, act_bytes
    q_out = s.heads * s.head_dim
    kv_out = 2 * s.kv_heads * s.head_dim
    up = (2 if s.gated else 1) * s.intermediate

    def gemm(k: int, n: int) -> Kernel:
        return Kernel(
            "gemm",
            2.0 * m * k * n,
            m,
            k,
            n,
            weight_bytes=k * n * weight_bytes_per_param,
            act_bytes=a * m * (k + n),
            precision=precision,
        )

    out = {
        "input_layernorm": Kernel("norm", act_bytes=2 * a * m * s.hidden + a * s.hidden),
        "attn_pre_proj": gemm(s.hidden, (q_out + kv_out) // tp),
        "attn_rope": Kernel("rope", act_bytes=2 * a * m * (s.heads + s.kv_heads) * s.head_dim / tp),
    }
    if attention is not None:
        out["attn"] = attention
    out.update(
        {
            "attn_post_proj": gemm(q_out // tp, s.hidden),
            "post_attention_layernorm": Kernel("norm", act_bytes=2 * a * m * s.hidden + a * s.hidden),
            "mlp_up_proj": gemm(s.hidden, up // tp),
            "mlp_act": Kernel("act", act_bytes=a * m * (up + s.intermediate) / tp),
            "mlp_down_proj": gemm(s.intermediate // tp, s.hidden),
            "add": Kernel("add", act_bytes=3 * a * m * s.hidden),
        }
    )
    return out


def embedding_kernel(hidden: int, tokens: int, act_bytes: float = 2.0) -> Kernel:
    """The embedding lookup: gather ``tokens`` rows of the table and write them out."""
    return Kernel("emb", act_bytes=2 * act_bytes * tokens * hidden)


def kernel_classes_of(kernels: Mapping[str, Kernel]) -> dict[str, str]:
    """Profile name -> kernel class, for reports."""
    return {name: k.kind for name, k in kernels.items()}
