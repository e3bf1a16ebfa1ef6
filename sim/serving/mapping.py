"""Mapping a model onto a system: parallelism, placement of each tensor class, capacity accounting.

Chips are used as ``dp x pp x tp``: ``dp`` independent replicas, each a pipeline of ``pp`` stages
(contiguous layer ranges), each stage ``tp`` chips that split every matrix (Megatron-style: two
all-reduces per layer). In MoE layers the routed experts are spread over ``ep`` ranks, which must
divide ``tp`` (expert parallelism inside the tensor-parallel group; an all-to-all dispatches tokens
to their experts and another combines them). Per chip, a stage's weights take ``1/tp``; the KV
cache splits over ``min(tp, kv_heads)`` (MLA's single latent is replicated).

Placement names the chip memory that holds ``weights`` and the one that holds the ``kv`` cache
(the paper's recommendation for HBF: weights on flash, KV on HBM). ``compute`` says where GEMVs run:
on the compute ``die`` or on the ``near_memory`` units of the weights' memory. Activations live in
the die's SRAM. A mapping that does not fit raises :class:`CapacityError` naming the memory and by
how much it overflows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sim.core.errors import CapacityError, ConfigError, join_where
from sim.core.limits import MAX_TOKENS
from sim.core.params import ParamSet, one_of, param, positive
from sim.core.units import COUNT, RATIO, format_size
from sim.model.spec import ModelSpec
from sim.system.spec import SystemSpec


@dataclass(frozen=True)
class MappingParams(ParamSet):
    """How one model is laid onto one system."""

    tp: int = param(1, COUNT, "tensor-parallel chips per stage", check=positive)
    pp: int = param(1, COUNT, "pipeline stages", check=positive)
    ep: int = param(1, COUNT, "expert-parallel ranks (divides tp)", check=positive)
    dp: int = param(
        1,
        COUNT,
        "data-parallel replicas: each its own pp x tp chips and batching, behind the request router "
        "(sim.serving.router; --set router.policy=NAME)",
        check=positive,
    )
    weights: str = param("", str, "chip memory holding the weights ('' = the first memory)")
    kv: str = param("", str, "chip memory holding the KV cache ('' = the first memory)")
    compute: str = param(
        "die",
        str,
        "where GEMVs run: die or near_memory (units of the weights' memory)",
        check=one_of("die", "near_memory"),
    )
    weight_dtype: str = param("native", str, "weight precision: a dtype name or 'native' (as released)")
    kv_dtype: str = param("bf16", str, "KV-cache precision")
    activation_dtype: str = param(
        "bf16",
        str,
        "activation precision: with fp8 (or fp4) weights too, GEMMs run at the die's fp8 (fp4) rate",
    )
    context_limit: int = param(
        0,
        COUNT,
        "longest context (prompt + output tokens) a request may reach; 0 = the model's "
        "max_position_embeddings. Set it higher to study contexts beyond what the model was trained for",
        check=lambda v: None if 0 <= v <= MAX_TOKENS else f"between 0 and {MAX_TOKENS}",
    )
    kv_budget: float = param(
        0.9,
        RATIO,
        "fraction of the memory left after weights given to the KV cache "
        "(ASSUMPTION: 10% kept for activations spill and fragmentation)",
        check=lambda v: None if 0 < v <= 1 else "a fraction in (0, 1]",
    )

    def validate(self) -> None:
        if self.tp % self.ep:
            raise ConfigError(f"expected ep to divide tp ({self.tp}), found {self.ep}", where="ep")

    def max_context(self, model: ModelSpec) -> int:
        """The longest context a request may reach under this mapping (see ``context_limit``)."""
        return self.context_limit or model.max_context or MAX_TOKENS


@dataclass(frozen=True)
class Plan:
    """A mapping that fits: what each chip holds and how many KV tokens a replica can keep."""

    mapping: MappingParams
    weight_dtype: Any
    stage_layers: tuple[tuple[int, int], ...]  # [start, stop) per stage
    weights_memory: str
    kv_memory: str
    weight_bytes_per_chip: int
    kv_bytes_per_token_per_chip: float  # summed over the stage's layers, worst stage
    kv_capacity_tokens: int  # per replica (the binding stage)
    used: dict[str, int]  # memory -> bytes used per chip (weights + KV budget)
    total: dict[str, int]  # memory -> capacity per chip
    buffers: dict[str, tuple[int, int]] = field(default_factory=dict)  # SRAM -> (used, total) per chip

    @property
    def chips(self) -> int:
        m = self.mapping
        return m.dp * m.pp * m.tp

    def capacity_report(self) -> dict[str, dict[str, int]]:
        """Bytes used and available per chip: each memory, then the SRAM holding prefetch buffers."""
        out = {
            name: {"used_bytes": self.used.get(name, 0), "total_bytes": self.total[name]}
            for name in self.total
        }
        for name, (used, total) in self.buffers.items():
            out[name] = {"used_bytes": used, "total_bytes": total}
        return out


def mapping_from(
    system: SystemSpec, overrides: dict[str, Any] | None = None, where: str = "mapping"
) -> MappingParams:
    """The system's ``[mapping]`` defaults with ``overrides`` on top. A bad value is reported where it
    was written: the system file's ``mapping.KEY``, or ``where`` (e.g. ``--set mapping``) for an
    override."""
    base = MappingParams.from_mapping(system.mapping, where=join_where(system.source, "mapping"))
    if not overrides:
        return base
    return base.replace(overrides, where=where)


def split_layers(layers: int, pp: int) -> tuple[tuple[int, int], ...]:
    """Contiguous, as-equal-as-possible layer ranges for ``pp`` stages."""
    if pp > layers:
        raise ConfigError(f"expected pp <= {layers} layers, found {pp}", where="pp")
    base, extra = divmod(layers, pp)
    out, start = [], 0
    for s in range(pp):
        stop = start + base + (1 if s < extra else 0)
        out.append((start, stop))
        start = stop
    return tuple(out)


def plan(model: ModelSpec, system: SystemSpec, mapping: MappingParams) -> Plan:
    """Check ``mapping`` against the system and the model; the capacity plan, or CapacityError."""
    m = mapping
    chips = m.dp * m.pp * m.tp
    if chips > system.chips:
        raise CapacityError(
            f"mapping needs dp x pp x tp = {chips} chips, the system has {system.chips}", where="mapping"
        )
    _check_heads(model, m)
    if model.is_moe and model.experts % m.ep:
        raise ConfigError(
            f"expected ep to divide the {model.experts} experts, found {m.ep}", where="mapping.ep"
        )
    names = list(system.memories)
    weights_mem = m.weights or names[0]
    kv_mem = m.kv or names[0]
    for key, name in (("weights", weights_mem), ("kv", kv_mem)):
        if name not in system.memories:
            raise ConfigError(
                f"expected a chip memory ({', '.join(names)}), found {name!r}", where=f"mapping.{key}"
            )
    if m.compute == "near_memory" and system.memories[weights_mem].near_memory is None:
        raise ConfigError(
            f"compute = 'near_memory' needs [chip.memory.{weights_mem}.near_memory]", where="mapping.compute"
        )
    weight_dtype = model.native_precision() if m.weight_dtype == "native" else m.weight_dtype
    if m.compute == "near_memory":
        _check_pim_shards(model, system, weights_mem, m, weight_dtype)
    per_layer = model.weight_bytes_per_layer(weight_dtype)
    outer = model.weight_bytes(weight_dtype) - sum(per_layer)  # embedding, final norm, LM head
    stages = split_layers(model.layers, m.pp)
    kv_split = 1 if model.is_mla else min(m.tp, model.kv_heads)
    kv_layer = model.kv_bytes_per_token_layer(m.kv_dtype) / kv_split
    total = {n: mem.capacity_bytes() for n, mem in system.memories.items()}
    worst_w, worst_kv, kv_tokens = 0, 0.0, None
    for s, (a, b) in enumerate(stages):
        w = sum(per_layer[a:b]) + (outer if s in (0, len(stages) - 1) else 0) / (2 if len(stages) > 1 else 1)
        w_chip = math.ceil(w / m.tp)
        kv_tok = kv_layer * (b - a)
        free = total[kv_mem] - (w_chip if kv_mem == weights_mem else 0)
        if w_chip > total[weights_mem]:
            raise CapacityError(
                f"weights overflow memory {weights_mem!r}: {format_size(w_chip)} per chip for stage {s} "
                f"(layers {a}-{b - 1}) in {format_size(total[weights_mem])}, over by "
                f"{format_size(w_chip - total[weights_mem])}; raise tp or pp, or use a smaller dtype",
                where=f"mapping.{'weights'}",
            )
        tokens = int(free * m.kv_budget / kv_tok) if kv_tok > 0 else 1 << 40
        if tokens < 1:
            raise CapacityError(
                f"no room for the KV cache in {kv_mem!r}: stage {s} weights leave "
                f"{format_size(max(free, 0))} per chip",
                where="mapping.kv",
            )
        worst_w = max(worst_w, w_chip)
        worst_kv = max(worst_kv, kv_tok)
        kv_tokens = tokens if kv_tokens is None else min(kv_tokens, tokens)
    used = {n: 0 for n in total}
    used[weights_mem] += worst_w
    used[kv_mem] += int(kv_tokens * worst_kv)
    buffers = system.prefetch_buffers()
    return Plan(
        m, weight_dtype, stages, weights_mem, kv_mem, worst_w, worst_kv, int(kv_tokens), used, total, buffers
    )


def _check_heads(model: ModelSpec, m: MappingParams) -> None:
    """Tensor parallelism splits attention by heads: tp divides the query heads, and either divides
    the KV heads or is a multiple of them (each KV head then replicated on tp / kv_heads chips)."""
    if model.heads % m.tp:
        raise ConfigError(
            f"expected tp to divide {model.name}'s {model.heads} attention heads, found tp = {m.tp}",
            where="mapping.tp",
        )
    if not model.is_mla and model.kv_heads % m.tp and m.tp % model.kv_heads:
        raise ConfigError(
            f"expected tp to divide {model.name}'s {model.kv_heads} KV heads or be a multiple of them "
            f"(replicating each), found tp = {m.tp}",
            where="mapping.tp",
        )


def _check_pim_shards(
    model: ModelSpec, system: SystemSpec, memory: str, m: MappingParams, weight_dtype: Any
) -> None:
    """Processing-in-memory: every matrix's shard per bank unit must fit one bank (paper Table 4)."""
    spec = system.memories[memory]
    near = spec.near_memory
    if near is None or near.placement != "in" or not near.shard_limit:
        return
    from sim.model.spec import resolve_precision

    of = resolve_precision(weight_dtype)
    units = near.units * spec.stacks
    for t in model.tensors:
        if not t.is_matmul:  # GEMVs run on the units; the embedding is a row gather
            continue
        shard = of(t).nbytes(t.params) / m.tp
        if shard / units > near.shard_limit:
            raise CapacityError(
                f"processing-in-memory: {t.name} needs {format_size(int(shard))} per chip, i.e. "
                f"{format_size(int(shard / units))} per bank unit over {units} units, more than a bank's "
                f"{format_size(near.shard_limit)}; PIM forces bank-sized shards (raise tp or use PNM)",
                where=f"chip.memory.{memory}.near_memory",
            )


def step_time_estimate_s(model: ModelSpec, system: SystemSpec, p: Plan, batch: int, context: int) -> float:
    """Roofline estimate of one decode step: per stage, max(bytes / bandwidth, flops / compute)."""
    m = p.mapping
    mem_w = system.memories[p.weights_memory]
    mem_kv = system.memories[p.kv_memory]
    work = model.decode_work([context] * batch, weight_dtype=p.weight_dtype, kv_dtype=m.kv_dtype)
    total = 0.0
    for a, b in p.stage_layers:
        layers = work.layers[a:b]
        w = sum(x.weight_bytes for x in layers) / m.tp
        kv = sum(x.kv_read_bytes + x.kv_write_bytes for x in layers) / max(1, min(m.tp, model.kv_heads))
        flops = sum(x.flops for x in layers) / m.tp
        t_mem = w / mem_w.peak_bandwidth_Bps() + kv / mem_kv.peak_bandwidth_Bps()
        t_cmp = flops / (system.compute.peak("bf16") * system.compute.gemm_compute_efficiency)
        total += max(t_mem, t_cmp)
    if m.tp > 1:  # two ring all-reduces per layer, latency-bound at decode sizes
        net = system.network
        hop = (
            net.inject_latency + 2 * system.router.pipeline + max(1, net.link_latency) + net.eject_latency
        ) / net.clock
        total += 2 * model.layers * 2 * (m.tp - 1) * hop
    return total


def enumerate_mappings(
    model: ModelSpec,
    system: SystemSpec,
    batch: int = 1,
    context: int = 2048,
    base: MappingParams | None = None,
) -> list[tuple[Plan, float]]:
    """Every (tp, pp, ep) with dp = 1 that fits, ranked by estimated decode tokens/s per chip.

    The estimate is a roofline per stage plus the latency of two ring all-reduces per layer; ties go
    to fewer chips. It ranks candidates for a full simulation, it does not replace one.
    """
    base = base or mapping_from(system)
    out = []
    n = system.chips
    for tp in [d for d in range(1, n + 1) if n % d == 0]:
        for pp in [d for d in range(1, n // tp + 1) if (n // tp) % d == 0]:
            eps = [
                e for e in range(1, tp + 1) if tp % e == 0 and (not model.is_moe or model.experts % e == 0)
            ]
            for ep in eps if model.is_moe else [1]:
                cand = base.replace({"tp": tp, "pp": pp, "ep": ep, "dp": 1})
                try:
                    p = plan(model, system, cand)
                except (CapacityError, ConfigError):
                    continue
                step = step_time_estimate_s(model, system, p, batch, context)
                out.append((p, batch / step / p.chips if step > 0 else 0.0))
    out.sort(key=lambda item: (-item[1], item[0].chips, item[0].mapping.tp))
    return out
