"""Lowering: one iteration's batch -> the per-layer work of one chip of each pipeline stage.

Every chip of a tensor-parallel group does the same work on its own shard, so the driver simulates
one representative chip per stage and puts the group's collectives on the fabric. Per layer the
chip runs three operations in order:

* ``attn``: read the attention weights (``1/tp``) and the KV cache it attends to (``1/kv_split``),
  write the new tokens' KV, and compute the projections plus attention scores;
* ``ffn``: read the FFN / router / touched experts' weights (``1/tp``) and compute;
* collectives between them: ``allreduce`` after each (``tp > 1``), and in MoE layers an
  ``alltoall`` dispatch before the experts and a combine after (``ep > 1``).

Work of a prefill chunk of ``t`` tokens on top of ``p`` cached ones: the weights are read once, the
cached KV once (``span(p)`` tokens), ``t`` tokens' KV is written, and the attention FLOPs are those
of ``t`` queries over ``p + 1 .. p + t`` keys (computed at the midpoint, exact where attention is
linear in the span). Decode entries are the ``t = 1`` case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from sim.model.spec import ModelSpec
from sim.serving.mapping import Plan
from sim.serving.scheduler import BatchEntry


def is_attention(kind: str) -> bool:
    """Tensor classes the ``attn`` op reads (norms are negligible and go with it)."""
    return kind.startswith("attn") or kind == "norm"


@dataclass(frozen=True, slots=True)
class OpWork:
    """One operation of one layer on one chip: bytes to read/write per memory role, FLOPs."""

    name: str  # "attn" or "ffn"
    layer: int
    weight_bytes: float
    kv_read_bytes: float
    kv_write_bytes: float
    flops: float


class Lowering:
    """Turns batches into per-chip, per-layer :class:`OpWork` for a model under a plan."""

    def __init__(self, model: ModelSpec, plan: Plan) -> None:
        self.model = model
        self.plan = plan
        m = plan.mapping
        self.tp = m.tp
        self.kv_split = 1 if model.is_mla else min(m.tp, model.kv_heads)
        self.kv_per_layer = model.kv_bytes_per_token_layer(m.kv_dtype)
        self._weights = lru_cache(maxsize=64)(self._weights_for_tokens)
        one = model.decode_work([1], weight_dtype=plan.weight_dtype, kv_dtype=m.kv_dtype)
        # per-token matmul FLOPs of each layer (attention over the context is added per entry)
        self.matmul_flops = [part.flops - model.attention_flops(i, 1) for i, part in enumerate(one.layers)]
        self.head_bytes = one.parts[-1].weight_bytes

    def _weights_for_tokens(self, tokens: int) -> tuple[tuple[float, float], ...]:
        """(attention, ffn) weight bytes per layer for a batch of ``tokens`` (expert routing)."""
        work = self.model.decode_work(
            [1] * tokens, weight_dtype=self.plan.weight_dtype, kv_dtype=self.plan.mapping.kv_dtype
        )
        out = []
        for part in work.layers:
            attn = sum(v for k, v in part.weight_bytes_by_kind.items() if is_attention(k))
            out.append((attn, part.weight_bytes - attn))
        return tuple(out)

    def layer_weight_bytes(self, tokens: int) -> tuple[tuple[float, float], ...]:
        """(attention, ffn) weight bytes per layer (all chips) for a batch of ``tokens`` tokens."""
        return self._weights(max(1, min(tokens, 4096)))

    def head_weight_bytes(self) -> float:
        """LM head (+ final norm) weights read per step, per chip."""
        return self.head_bytes / self.tp

    def head_flops(self, tokens: int) -> float:
        return 2.0 * tokens * self.model.vocab * self.model.hidden / self.tp

    def layer_ops(self, layer: int, entries: Sequence[BatchEntry]) -> tuple[OpWork, OpWork]:
        """The ``attn`` and ``ffn`` work of ``layer`` for one chip."""
        model = self.model
        tokens = sum(e.tokens for e in entries)
        w_attn, w_ffn = self._weights(max(1, min(tokens, 4096)))[layer]
        kv_read = kv_write = 0.0
        attn_flops = 0.0
        for e in entries:
            past = e.context_tokens - e.tokens
            if past > 0:
                kv_read += model.attention_span(layer, past) * self.kv_per_layer
            kv_write += e.tokens * self.kv_per_layer
            mid = max(1, past + (e.tokens + 1) // 2)
            attn_flops += e.tokens * model.attention_flops(layer, mid)
        matmul = self.matmul_flops[layer]
        # split the per-token matmul FLOPs in proportion to the weights each op reads
        share = w_attn / (w_attn + w_ffn) if w_attn + w_ffn > 0 else 0.5
        attn = OpWork(
            "attn",
            layer,
            w_attn / self.tp,
            kv_read / self.kv_split,
            kv_write / self.kv_split,
            (tokens * matmul * share + attn_flops) / self.tp,
        )
        ffn = OpWork("ffn", layer, w_ffn / self.tp, 0.0, 0.0, tokens * matmul * (1 - share) / self.tp)
        return attn, ffn

    def activation_bytes(self, tokens: int) -> int:
        """Bytes of the hidden state for ``tokens`` tokens (what collectives and stages move)."""
        return tokens * self.model.hidden * 2  # bf16 activations
