"""Lowering: one iteration's batch -> the per-layer work of one chip of each pipeline stage.

Every chip of a tensor-parallel group does the same work on its own shard, so the driver simulates
one representative chip per stage and puts the group's collectives on the fabric. Per layer the
chip runs two operations with collectives between them:

* ``attn``: the input norm, the attention input projections (one fused GEMM over the matrices that
  read the hidden state, e.g. Q, K and V; MLA's second-stage projections each their own GEMM),
  rotary embedding, attention over the KV cache (``attn_decode`` for decode entries,
  ``attn_prefill`` with the causal-mask FLOPs for prefill chunks) and the output projection;
* ``ffn``: the post-attention norm, the FFN (fused gate-and-up GEMM, activation, down GEMM), or in
  MoE layers the router, the touched experts as grouped GEMMs and the shared experts, then the
  residual add;
* collectives: an ``allreduce`` after each (``tp > 1``), and in MoE layers an ``alltoall``
  dispatch before the experts and a combine after (``ep > 1``).

Each op is a list of :class:`~sim.compute.kernels.Kernel` (the same kernels, for a dense layer, as
:func:`~sim.compute.kernels.dense_layer_kernels` gives the calibration). Column-parallel GEMMs split
their outputs over ``tp``, row-parallel ones (output projection, FFN down) their inputs; weights
are ``1/tp`` per chip and the KV cache ``1/kv_split``. An op's weight bytes (its norms and biases
included) are shared among its GEMMs in proportion to their matrices.

Work of a prefill chunk of ``t`` tokens on top of ``p`` cached ones: the weights are read once, the
cached KV once (``span(p)`` tokens), ``t`` tokens' KV is written, and the attention FLOPs are those
of ``t`` queries over ``p + 1 .. p + t`` keys (computed at the midpoint, exact where attention is
linear in the span: the causal mask). Decode entries are the ``t = 1`` case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sim.compute.kernels import Kernel, math_precision
from sim.model.dtype import get_dtype
from sim.model.spec import ModelSpec, TensorSpec, resolve_precision
from sim.serving.mapping import Plan
from sim.serving.scheduler import BatchEntry


def is_attention(kind: str) -> bool:
    """Tensor classes the ``attn`` op reads (norms are negligible and go with it)."""
    return kind.startswith("attn") or kind == "norm"


@dataclass(frozen=True, slots=True)
class OpWork:
    """One operation of one layer on one chip: its kernels and their totals."""

    name: str  # "embed", "attn", "ffn" or "head"
    layer: int
    weight_bytes: float
    kv_read_bytes: float
    kv_write_bytes: float
    flops: float
    kernels: tuple[Kernel, ...] = ()

    @property
    def act_bytes(self) -> float:
        return sum(k.act_bytes for k in self.kernels)


def _at_layer(work: OpWork, layer: int) -> OpWork:
    """``work`` on another layer (``dataclasses.replace`` without its field introspection: the
    driver asks for every layer of every iteration)."""
    return OpWork(
        work.name,
        layer,
        work.weight_bytes,
        work.kv_read_bytes,
        work.kv_write_bytes,
        work.flops,
        work.kernels,
    )


@dataclass(frozen=True, slots=True)
class _Gemm:
    """A GEMM of a layer for the whole model (before the tensor-parallel split)."""

    k: int
    n: int
    params: float  # matrix parameters (experts: one expert's)
    column: bool  # column-parallel (outputs split over tp) or row-parallel (inputs split)
    expert: bool = False


@dataclass(frozen=True, slots=True)
class _OpTemplate:
    gemms: tuple[_Gemm, ...]
    norms: tuple[int, ...]  # widths of the norms (per token)
    weight_bytes: float  # always-read bytes (experts excluded)
    expert_bytes: float  # bytes of one routed expert


class Lowering:
    """Turns batches into per-chip, per-layer :class:`OpWork` for a model under a plan."""

    def __init__(self, model: ModelSpec, plan: Plan) -> None:
        self.model = model
        self.plan = plan
        m = plan.mapping
        self.tp = m.tp
        self.kv_split = 1 if model.is_mla else min(m.tp, model.kv_heads)
        self.kv_per_layer = model.kv_bytes_per_token_layer(m.kv_dtype)
        of = resolve_precision(plan.weight_dtype)
        self._of = of
        act_dtype = get_dtype(getattr(m, "activation_dtype", "bf16"))
        self.act_bytes_per_element = act_dtype.bytes_per_element
        self._act_bits = act_dtype.bits
        self._templates = [self._layer_templates(i) for i in range(model.layers)]
        # layers whose work is identical for any batch (same templates, expert routing and window)
        # share one lowering per batch: a dense model lowers one layer per iteration, not all of them
        classes: dict[Any, int] = {}
        self._layer_class = tuple(
            classes.setdefault((self._templates[i], model.moe_layer(i), model.window(i)), len(classes))
            for i in range(model.layers)
        )
        self._memo_entries: tuple[BatchEntry, ...] | None = None
        self._memo: dict[int, tuple[OpWork, OpWork]] = {}
        self._weights = lru_cache(maxsize=4096)(self._weights_for_tokens)
        self._head_bytes = sum(of(t).nbytes(t.params) for t in self._outer() if t.kind != "embed")
        if model.tie_embeddings:
            emb = next(t for t in self._outer() if t.kind == "embed")
            self._head_bytes += of(emb).nbytes(emb.params)
        head_bits = [of(t).bits for t in self._outer() if t.kind in ("lm_head", "embed")]
        self._head_precision = math_precision(min(head_bits), self._act_bits)

    # -- templates: the fixed structure of each layer ---------------------------------------------
    def _outer(self) -> tuple[TensorSpec, ...]:
        return tuple(t for t in self.model.tensors if t.layer is None)

    def _layer_templates(self, layer: int) -> tuple[_OpTemplate, _OpTemplate, str]:
        model = self.model
        d = model.hidden
        of = self._of
        attn_w = ffn_w = expert_w = 0.0
        attn_in: list[TensorSpec] = []
        attn_gemms: list[_Gemm] = []
        ffn_gemms: list[_Gemm] = []
        attn_norms: list[int] = []
        ffn_norms: list[int] = []
        bits: list[int] = []
        ffn_in: dict[str, list[TensorSpec]] = {}
        for t in model.layer_tensors(layer):
            nbytes = of(t).nbytes(t.params)
            if t.expert is not None:
                if t.expert == 0:
                    expert_w += nbytes
                    if t.is_matrix:
                        ffn_in.setdefault("expert", []).append(t)
                        bits.append(of(t).bits)
                continue
            if is_attention(t.kind):
                attn_w += nbytes
            else:
                ffn_w += nbytes
            if not t.is_matrix:
                if t.kind == "norm" and t.name.endswith("layernorm.weight"):
                    (
                        attn_norms if "input_layernorm" in t.name or "self_attn" in t.name else ffn_norms
                    ).append(t.shape[0])
                continue
            bits.append(of(t).bits)
            if t.kind in ("attn_q", "attn_kv"):
                if t.shape[1] == d:
                    attn_in.append(t)
                else:
                    attn_gemms.append(_Gemm(t.shape[1], t.shape[0], t.params, column=True))
            elif t.kind == "attn_o":
                attn_gemms.append(_Gemm(t.shape[1], t.shape[0], t.params, column=False))
            else:
                ffn_in.setdefault(t.kind, []).append(t)
        if attn_in:
            n = sum(t.shape[0] for t in attn_in)
            attn_gemms.insert(0, _Gemm(d, n, sum(t.params for t in attn_in), column=True))
        if model.qk_norm:
            attn_norms.append((model.heads + model.kv_heads) * model.head_dim)
        for kind in ("router", "ffn", "shared_expert", "expert"):
            ffn_gemms.extend(self._ffn_gemms(ffn_in.get(kind, []), expert=kind == "expert"))
        precision = math_precision(max(bits) if bits else 16, self._act_bits)
        return (
            _OpTemplate(tuple(attn_gemms), tuple(attn_norms), attn_w, 0.0),
            _OpTemplate(tuple(ffn_gemms), tuple(ffn_norms), ffn_w, expert_w),
            precision,
        )

    @staticmethod
    def _ffn_gemms(tensors: Sequence[TensorSpec], expert: bool) -> list[_Gemm]:
        """Gate and up (same input) fuse into one column-parallel GEMM; down is row-parallel."""
        if not tensors:
            return []
        d_in = {t.shape[1] for t in tensors if "down_proj" not in t.name}
        out: list[_Gemm] = []
        for k in sorted(d_in):
            group = [t for t in tensors if t.shape[1] == k and "down_proj" not in t.name]
            out.append(_Gemm(k, sum(t.shape[0] for t in group), sum(t.params for t in group), True, expert))
        for t in tensors:
            if "down_proj" in t.name:
                out.append(_Gemm(t.shape[1], t.shape[0], t.params, column=False, expert=expert))
        return out

    def _weights_for_tokens(self, tokens: int) -> tuple[tuple[float, float], ...]:
        """(attention, ffn) weight bytes per layer (all chips) for a batch of ``tokens``."""
        model = self.model
        touched = self._touched(tokens)
        return tuple(
            (
                a.weight_bytes,
                f.weight_bytes + touched * f.expert_bytes if model.moe_layer(i) else f.weight_bytes,
            )
            for i, (a, f, _) in enumerate(self._templates)
        )

    def _touched(self, tokens: int) -> float:
        from sim.model.spec import expected_unique_experts

        m = self.model
        return expected_unique_experts(m.experts, m.experts_per_token, tokens) if m.is_moe else 0.0

    # -- per batch -------------------------------------------------------------------------------
    def layer_weight_bytes(self, tokens: int) -> tuple[tuple[float, float], ...]:
        """(attention, ffn) weight bytes per layer (all chips) for a batch of ``tokens`` tokens."""
        return self._weights(max(1, min(tokens, 4096)))

    def layer_ops(self, layer: int, entries: Sequence[BatchEntry]) -> tuple[OpWork, OpWork]:
        """The ``attn`` and ``ffn`` work of ``layer`` for one chip.

        Within one batch (the same entries tuple) layers of one class share their kernels: the work
        of a layer is the class's with its own layer number, and shares its kernel tuples, which the
        driver uses to time each distinct op once per iteration.
        """
        if not isinstance(entries, tuple):
            return self._lower_layer(layer, entries)
        if entries is not self._memo_entries:
            self._memo_entries = entries  # held, so its identity is not reused while memoised
            self._memo = {}
        cls = self._layer_class[layer]
        got = self._memo.get(cls)
        if got is None:
            got = self._memo[cls] = self._lower_layer(layer, entries)
        attn, ffn = got
        if attn.layer == layer:
            return attn, ffn
        return _at_layer(attn, layer), _at_layer(ffn, layer)

    def _lower_layer(self, layer: int, entries: Sequence[BatchEntry]) -> tuple[OpWork, OpWork]:
        model = self.model
        tp = self.tp
        tokens = sum(e.tokens for e in entries)
        attn_t, ffn_t, precision = self._templates[layer]
        w_attn, w_ffn = self.layer_weight_bytes(tokens)[layer]
        a = self.act_bytes_per_element
        d = model.hidden
        kv_read = kv_write = 0.0
        decode_flops = prefill_flops = 0.0
        decode_kv = prefill_kv = 0.0
        for e in entries:
            past = e.context_tokens - e.tokens
            read = model.attention_span(layer, past) * self.kv_per_layer if past > 0 else 0.0
            write = e.tokens * self.kv_per_layer
            kv_read += read
            kv_write += write
            mid = max(1, past + (e.tokens + 1) // 2)
            flops = e.tokens * model.attention_flops(layer, mid)
            if e.phase == "decode":
                decode_flops += flops
                decode_kv += read + write
            else:
                prefill_flops += flops
                prefill_kv += read + write
        touched = self._touched(max(1, min(tokens, 4096))) if model.moe_layer(layer) else 0.0
        attn_gemms = self._gemm_kernels(attn_t, tokens, w_attn, precision, touched, layer)
        rope_width = self._rope_width()
        kernels: list[Kernel] = [Kernel("norm", act_bytes=2 * a * tokens * w + a * w) for w in attn_t.norms]
        kernels.append(attn_gemms[0]) if attn_gemms else None
        kernels.append(Kernel("rope", act_bytes=2 * a * tokens * rope_width / tp))
        for kind, flops, kv in (
            ("attn_decode", decode_flops, decode_kv),
            ("attn_prefill", prefill_flops, prefill_kv),
        ):
            if kv or flops:
                kernels.append(Kernel(kind, flops / tp, kv_bytes=kv / self.kv_split, precision="bf16"))
        kernels.extend(attn_gemms[1:])
        attn_flops = (decode_flops + prefill_flops) / tp
        attn = OpWork(
            "attn",
            layer,
            w_attn / tp,
            kv_read / self.kv_split,
            kv_write / self.kv_split,
            sum(k.flops for k in attn_gemms) + attn_flops,
            tuple(kernels),
        )
        ffn_gemms = self._gemm_kernels(ffn_t, tokens, w_ffn, precision, touched, layer)
        fk: list[Kernel] = [Kernel("norm", act_bytes=2 * a * tokens * w + a * w) for w in ffn_t.norms]
        for g, k in zip(ffn_t.gemms, ffn_gemms, strict=True):
            fk.append(k)
            if g.column and g.n != model.experts:  # after a gate-and-up GEMM: the activation
                width = g.n / 2 * (touched * model.experts_per_token / max(touched, 1) if g.expert else 1)
                fk.append(Kernel("act", act_bytes=a * tokens * 3 * width / tp))
        fk.append(Kernel("add", act_bytes=3 * a * tokens * d))
        ffn = OpWork("ffn", layer, w_ffn / tp, 0.0, 0.0, sum(k.flops for k in ffn_gemms), tuple(fk))
        return attn, ffn

    def _rope_width(self) -> int:
        m = self.model
        if m.is_mla:
            assert m.qk_rope_head_dim is not None
            return (m.heads + 1) * m.qk_rope_head_dim
        return (m.heads + m.kv_heads) * m.head_dim

    def _gemm_kernels(
        self, t: _OpTemplate, tokens: int, weight_bytes: float, precision: str, touched: float, layer: int
    ) -> list[Kernel]:
        """The op's GEMMs on one chip; its weight bytes shared in proportion to the matrices read."""
        tp, a, model = self.tp, self.act_bytes_per_element, self.model
        read = [g.params * (touched if g.expert else 1.0) for g in t.gemms]
        total = sum(read) or 1.0
        out = []
        for g, r in zip(t.gemms, read, strict=True):
            k, n = (g.k, math.ceil(g.n / tp)) if g.column else (math.ceil(g.k / tp), g.n)
            if g.expert:
                pairs = tokens * model.experts_per_token  # (token, expert) pairs
                groups = max(1, round(touched))
                m = max(1, math.ceil(pairs / groups))
                flops = 2.0 * pairs * g.params / tp
                act = a * pairs * (k + n)
            else:
                groups, m = 1, tokens
                flops = 2.0 * tokens * g.params / tp
                act = a * tokens * (k + n)
            out.append(
                Kernel(
                    "gemm",
                    flops,
                    m,
                    k,
                    n,
                    weight_bytes=weight_bytes / tp * r / total,
                    act_bytes=act,
                    precision=precision,
                    groups=groups,
                )
            )
        return out

    def embed_op(self, tokens: int) -> OpWork:
        """The embedding gather of an iteration's tokens (first stage)."""
        a = self.act_bytes_per_element
        k = Kernel("emb", act_bytes=2 * a * tokens * self.model.hidden)
        return OpWork("embed", -1, 0.0, 0.0, 0.0, 0.0, (k,))

    def head_op(self, emitting: int) -> OpWork:
        """Final norm, LM head GEMM and sampling for the ``emitting`` tokens (last stage)."""
        m, tp, a = self.model, self.tp, self.act_bytes_per_element
        rows = max(1, emitting)
        vocab = math.ceil(m.vocab / tp)
        flops = 2.0 * emitting * m.vocab * m.hidden / tp
        kernels = (
            Kernel("norm", act_bytes=2 * a * rows * m.hidden + a * m.hidden),
            Kernel(
                "gemm",
                flops,
                rows,
                m.hidden,
                vocab,
                weight_bytes=self._head_bytes / tp,
                act_bytes=a * rows * (m.hidden + vocab),
                precision=self._head_precision,
            ),
            Kernel("sample", act_bytes=2 * 4 * rows * vocab),  # fp32 logits, read and written
        )
        return OpWork("head", -1, self._head_bytes / tp, 0.0, 0.0, flops, kernels)

    def head_weight_bytes(self) -> float:
        """LM head (+ final norm) weights read per step, per chip."""
        return self._head_bytes / self.tp

    def head_flops(self, tokens: int) -> float:
        return 2.0 * tokens * self.model.vocab * self.model.hidden / self.tp

    def activation_bytes(self, tokens: int) -> int:
        """Bytes of the hidden state for ``tokens`` tokens (what collectives and stages move)."""
        return tokens * self.model.hidden * 2  # bf16 activations
