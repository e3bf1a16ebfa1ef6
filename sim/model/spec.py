"""Model specifications: every weight tensor of a decoder-only transformer, and the work of a token.

A :class:`ModelSpec` is built from a Hugging Face ``config.json`` (see :func:`load_model`). It covers
dense and GQA attention (Llama, Qwen3), mixture-of-experts FFNs with shared experts and leading
dense layers (DeepSeek-V3, Qwen3-MoE, Mixtral, gpt-oss), multi-head latent attention (MLA,
DeepSeek-V2/V3) and per-layer sliding-window attention (gpt-oss, Mistral). Every FFN is SwiGLU
(gate, up and down matrices).

From it come:

* :attr:`ModelSpec.tensors`: one :class:`TensorSpec` per weight tensor (each routed expert's
  matrices separately, ``expert`` = its index), named in the Llama/DeepSeek Hugging Face layout
  (other families' checkpoints use other names for the same tensors), shapes ``(out, in)``.
* parameter counts (:attr:`ModelSpec.n_params`, :meth:`ModelSpec.active_params_per_token`) and
  weight bytes in any :mod:`~sim.model.dtype` or a per-tensor-class mix of them;
* KV-cache bytes (MLA stores one compressed latent + the shared RoPE key per layer; sliding layers
  keep at most ``window`` tokens);
* FLOPs per token and a per-layer :class:`DecodeWork` (weights read, KV read and written, FLOPs) for
  a decode step of a batch, as input to the lowering step.

What is counted (and what is not)
---------------------------------
Parameters: embedding, per layer (two RMSNorms, attention projections with their biases when the
config has them, Qwen3 q/k norms, MLA's q/kv low-rank norms, gpt-oss attention sinks, dense FFN or
router (+bias) + routed experts (+biases) + shared experts), final norm and the LM head unless tied.
Rotary embeddings have no parameters. DeepSeek's multi-token-prediction module
(``num_nextn_predict_layers``) is **not** counted: it is not used for plain decoding, and the 671B
of the DeepSeek-V3 report excludes it.

FLOPs per token (one multiply-add = 2 FLOPs): ``2 x`` the active parameters of every matrix that
multiplies the token's activations (attention projections, dense FFN, router, the top-k routed
experts, shared experts, LM head; not the embedding, which is a row gather) plus attention over the
``span`` positions a layer attends to (``min(context, window)``):

* standard attention: ``4 x span x heads x head_dim`` (``Q Kᵀ`` and ``P V``, ``2 x span x heads x
  head_dim`` each);
* MLA, absorbed (the default; how DeepSeek decodes): scores against the cached latent and RoPE key,
  ``2 x span x heads x (kv_lora_rank + qk_rope_head_dim)``, and values in latent space,
  ``2 x span x heads x kv_lora_rank``; the absorbed up-projections cost the same as ``kv_b_proj``,
  which the ``2 x params`` term already counts;
* MLA, not absorbed: ``2 x span x heads x (qk_nope + qk_rope)`` + ``2 x span x heads x v_head_dim``
  plus re-expanding the ``span - 1`` cached latents through ``kv_b_proj``.

Not counted: norms, softmax, activations, residual adds, bias adds, RoPE, router top-k, sinks.

Context
-------
``context`` is the sequence length including the token being decoded: the step writes that token's
K/V (1 token per layer) and attends to, and reads from the cache, ``min(context, window)`` tokens
per layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from sim.core.errors import ConfigError
from sim.model.dtype import Dtype, DtypeLike, get_dtype

FULL_ATTENTION = "full_attention"
SLIDING_ATTENTION = "sliding_attention"
LAYER_TYPES = (FULL_ATTENTION, SLIDING_ATTENTION)

TENSOR_KINDS = (
    "embed",
    "lm_head",
    "norm",
    "attn_q",
    "attn_kv",
    "attn_o",
    "attn_sink",
    "ffn",
    "shared_expert",
    "expert",
    "router",
)
"""Tensor classes. Biases belong to the class of their matrix; MLA's low-rank norms are ``norm``."""

Precision = DtypeLike | Mapping[str, DtypeLike]
"""A dtype for every tensor, or a mapping from tensor class to dtype with a ``"default"``; the key
``"vector"`` (if given) applies to every 1-D tensor (norms, biases, sinks), which checkpoints keep in
high precision when matrices are quantised. Example: ``{"default": "bf16", "expert": "mxfp4"}``."""


# -- tensors ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorSpec:
    """One weight tensor. ``layer`` is None for the embedding, final norm and LM head."""

    name: str
    layer: int | None
    kind: str
    params: int
    expert: int | None
    shape: tuple[int, ...]

    @property
    def is_matrix(self) -> bool:
        return len(self.shape) >= 2

    @property
    def is_matmul(self) -> bool:
        """Multiplies the token's activations (every matrix but the embedding, which is gathered)."""
        return self.is_matrix and self.kind != "embed"


def resolve_precision(precision: Precision) -> Callable[[TensorSpec], Dtype]:
    """A function giving each tensor its dtype under ``precision``; bad keys name themselves."""
    if not isinstance(precision, Mapping):
        dtype = get_dtype(precision)
        return lambda _t: dtype
    unknown = sorted(set(precision) - set(TENSOR_KINDS) - {"default", "vector"})
    if unknown:
        raise ConfigError(
            f"unknown tensor class {unknown[0]!r}; expected 'default', 'vector' or one of: "
            + ", ".join(TENSOR_KINDS),
            where=f"precision.{unknown[0]}",
        )
    if "default" not in precision:
        raise ConfigError("a per-class precision needs a 'default' dtype", where="precision")
    by_kind = {kind: get_dtype(d) for kind, d in precision.items()}
    default = by_kind["default"]
    vector = by_kind.get("vector")

    def of(t: TensorSpec) -> Dtype:
        if vector is not None and not t.is_matrix:
            return vector
        return by_kind.get(t.kind, default)

    return of


@dataclass(frozen=True)
class _LayerTensors:
    """One decoder layer: tensors every token uses, and the tensors of one routed expert."""

    always: tuple[TensorSpec, ...]
    one_expert: tuple[TensorSpec, ...]  # expert 0's tensors; every routed expert has the same shapes
    experts: int  # routed experts in this layer (0: dense FFN)


# -- decode work ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerWork:
    """The work of one part of a decode step for a whole batch.

    ``part`` is ``"embed"`` (row gather), ``"layer"`` (decoder layer ``layer``) or ``"head"`` (final
    norm + LM head). ``weight_bytes`` are read once for the batch (float: with expected-unique-
    expert routing it is an expectation); KV bytes and FLOPs are summed over the batch's sequences.
    """

    part: str
    layer: int | None
    weight_bytes: float
    weight_bytes_by_kind: Mapping[str, float]
    kv_read_bytes: int
    kv_write_bytes: int
    flops: int
    experts_touched: float = 0.0

    @property
    def bytes_moved(self) -> float:
        return self.weight_bytes + self.kv_read_bytes + self.kv_write_bytes


@dataclass(frozen=True)
class DecodeWork:
    """A decode step: one new token for each of ``len(contexts)`` sequences; parts in order."""

    contexts: tuple[int, ...]
    parts: tuple[LayerWork, ...]

    @property
    def tokens(self) -> int:
        return len(self.contexts)

    @property
    def layers(self) -> tuple[LayerWork, ...]:
        return tuple(p for p in self.parts if p.part == "layer")

    @property
    def weight_bytes(self) -> float:
        return sum(p.weight_bytes for p in self.parts)

    @property
    def kv_read_bytes(self) -> int:
        return sum(p.kv_read_bytes for p in self.parts)

    @property
    def kv_write_bytes(self) -> int:
        return sum(p.kv_write_bytes for p in self.parts)

    @property
    def flops(self) -> int:
        return sum(p.flops for p in self.parts)

    @property
    def bytes_moved(self) -> float:
        return sum(p.bytes_moved for p in self.parts)


def expected_unique_experts(experts: int, top_k: int, tokens: int) -> float:
    """Expected number of distinct experts a batch of ``tokens`` routes to, under uniform routing.

    Each token picks ``top_k`` distinct experts of ``experts`` uniformly, independently of the
    others, so a given expert is missed by one token with probability ``1 - k/E`` and by all with
    ``(1 - k/E)^B``: ``E x (1 - (1 - k/E)^B)``. Exact for that model; real routers are skewed, which
    touches fewer experts.
    """
    if experts <= 0 or not 0 < top_k <= experts or tokens < 0:
        raise ValueError(
            f"need experts > 0, 0 < top_k <= experts, tokens >= 0; got {experts}, {top_k}, {tokens}"
        )
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


# -- the model -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """Hyperparameters of a decoder-only transformer; everything else is derived.

    MoE: ``experts`` routed experts (0 = dense model) of FFN width ``moe_intermediate``, each token
    using ``experts_per_token``, plus ``shared_experts`` always-on experts of the same width; layers
    ``< first_k_dense`` and those in ``dense_layers`` have a dense FFN of width ``intermediate``.
    MLA: ``kv_lora_rank`` set (then ``head_dim`` = ``qk_nope_head_dim + qk_rope_head_dim``);
    ``q_lora_rank`` None means a full-rank query projection (DeepSeek-V2-Lite).
    """

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    intermediate: int
    family: str = "generic"
    # mixture of experts
    experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0
    moe_intermediate: int = 0
    first_k_dense: int = 0
    dense_layers: tuple[int, ...] = ()
    # multi-head latent attention
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    # sliding windows: per-layer attention type; () means all full attention
    sliding_window: int | None = None
    layer_types: tuple[str, ...] = ()
    # small architecture details
    tie_embeddings: bool = False
    attention_bias: bool = False
    qk_norm: bool = False
    attention_sinks: bool = False
    expert_bias: bool = False
    router_bias: bool = False
    # informational
    max_context: int | None = None
    mtp_layers: int = 0  # multi-token-prediction modules: described, never counted
    torch_dtype: str = "bf16"
    quant_method: str | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = f"model {self.name}"

        def bad(what: str, found: Any) -> ConfigError:
            return ConfigError(f"expected {what}, found {found!r}", where=where)

        for fname in ("layers", "hidden", "heads", "kv_heads", "head_dim", "vocab", "intermediate"):
            value = getattr(self, fname)
            if not _is_int(value) or value <= 0:
                raise bad(f"{fname} a positive integer", value)
        for fname in ("experts", "experts_per_token", "shared_experts", "moe_intermediate", "mtp_layers"):
            value = getattr(self, fname)
            if not _is_int(value) or value < 0:
                raise bad(f"{fname} an integer >= 0", value)
        if self.experts:
            if not 0 < self.experts_per_token <= self.experts:
                raise bad(f"experts_per_token in 1..{self.experts}", self.experts_per_token)
            if self.moe_intermediate <= 0:
                raise bad("moe_intermediate > 0 for an MoE model", self.moe_intermediate)
        if not 0 <= self.first_k_dense <= self.layers:
            raise bad(f"first_k_dense in 0..{self.layers}", self.first_k_dense)
        if any(not _is_int(i) or not 0 <= i < self.layers for i in self.dense_layers):
            raise bad(f"dense_layers indices in 0..{self.layers - 1}", self.dense_layers)
        if self.is_mla:
            for fname in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
                value = getattr(self, fname)
                if not _is_int(value) or value <= 0:
                    raise bad(f"{fname} a positive integer for MLA", value)
            if self.q_lora_rank is not None and (not _is_int(self.q_lora_rank) or self.q_lora_rank <= 0):
                raise bad("q_lora_rank a positive integer or None", self.q_lora_rank)
        elif self.heads % self.kv_heads:
            raise bad(f"heads ({self.heads}) a multiple of kv_heads", self.kv_heads)
        if not self.layer_types:
            object.__setattr__(self, "layer_types", (FULL_ATTENTION,) * self.layers)
        object.__setattr__(self, "layer_types", tuple(self.layer_types))
        object.__setattr__(self, "dense_layers", tuple(sorted(set(self.dense_layers))))
        if len(self.layer_types) != self.layers:
            raise bad(f"{self.layers} layer_types", len(self.layer_types))
        for t in self.layer_types:
            if t not in LAYER_TYPES:
                raise bad("layer types " + " or ".join(LAYER_TYPES), t)
        if SLIDING_ATTENTION in self.layer_types and (
            not _is_int(self.sliding_window) or self.sliding_window <= 0
        ):
            raise bad("a positive sliding_window for sliding layers", self.sliding_window)

    # -- structure ----------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    def moe_layer(self, layer: int) -> bool:
        """Whether decoder layer ``layer`` has routed experts (else a dense FFN)."""
        return self.is_moe and layer >= self.first_k_dense and layer not in self.dense_layers

    def window(self, layer: int) -> int | None:
        """The sliding window of ``layer`` in tokens, or None for full attention."""
        return self.sliding_window if self.layer_types[layer] == SLIDING_ATTENTION else None

    def attention_span(self, layer: int, context: int) -> int:
        """Tokens ``layer`` attends to (and holds in its KV cache) at sequence length ``context``."""
        w = self.window(layer)
        return context if w is None else min(context, w)

    @cached_property
    def tensors(self) -> tuple[TensorSpec, ...]:
        """Every weight tensor, in model order (embedding, layers 0.., final norm, LM head)."""
        return tuple(_build_tensors(self))

    @cached_property
    def _layer_tensors(self) -> tuple[_LayerTensors, ...]:
        always: list[list[TensorSpec]] = [[] for _ in range(self.layers)]
        one_expert: list[list[TensorSpec]] = [[] for _ in range(self.layers)]
        for t in self.tensors:
            if t.layer is None:
                continue
            if t.expert is None:
                always[t.layer].append(t)
            elif t.expert == 0:
                one_expert[t.layer].append(t)
        return tuple(
            _LayerTensors(tuple(always[i]), tuple(one_expert[i]), self.experts if self.moe_layer(i) else 0)
            for i in range(self.layers)
        )

    def layer_tensors(self, layer: int) -> tuple[TensorSpec, ...]:
        """All tensors of decoder layer ``layer`` (every routed expert included)."""
        return tuple(t for t in self.tensors if t.layer == layer)

    @cached_property
    def _outer_tensors(self) -> tuple[TensorSpec, ...]:
        return tuple(t for t in self.tensors if t.layer is None)

    # -- parameters ---------------------------------------------------------------------------
    @cached_property
    def n_params(self) -> int:
        """Total parameters (MTP modules excluded)."""
        return sum(t.params for t in self.tensors)

    def params_by_kind(self) -> dict[str, int]:
        """Parameters per tensor class (only classes present)."""
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.kind] = out.get(t.kind, 0) + t.params
        return out

    def active_params_per_token(self, *, embedding: Literal["table", "row"] = "table") -> int:
        """Parameters one token uses: all but the routed experts, plus its top-k experts per MoE layer.

        ``embedding="table"`` counts the whole input embedding table, as Mistral (12.9B for
        Mixtral) and Qwen (3.3B for Qwen3-30B-A3B) count; ``"row"`` counts only the ``hidden``
        values gathered, as OpenAI counts (5.13B for gpt-oss-120b), as DeepSeek's "37B activated"
        rounds (the table would give 37.6B) and as decode reads.
        A tied table is counted whole either way (it is the LM head).
        """
        if embedding not in ("table", "row"):
            raise ConfigError(f"expected 'table' or 'row', found {embedding!r}", where="embedding")
        total = 0
        for lt in self._layer_tensors:
            total += sum(t.params for t in lt.always)
            if lt.experts:
                total += self.experts_per_token * sum(t.params for t in lt.one_expert)
        for t in self._outer_tensors:
            if t.kind == "embed" and embedding == "row" and not self.tie_embeddings:
                total += self.hidden
            else:
                total += t.params
        return total

    def matmul_params_per_token(self) -> int:
        """Active parameters that multiply the token's activations (FLOPs = 2 x this + attention)."""
        total = 0
        for lt in self._layer_tensors:
            total += self._layer_matmul_params(lt)
        total += self.vocab * self.hidden  # the LM head (a tied embedding table serves as one)
        return total

    def _layer_matmul_params(self, lt: _LayerTensors) -> int:
        n = sum(t.params for t in lt.always if t.is_matmul)
        if lt.experts:
            n += self.experts_per_token * sum(t.params for t in lt.one_expert if t.is_matmul)
        return n

    # -- weight bytes -------------------------------------------------------------------------
    def weight_bytes(self, precision: Precision = "bf16") -> int:
        """Bytes of every weight tensor stored in ``precision`` (block scales included)."""
        return sum(self.weight_bytes_per_layer(precision)) + sum(
            self.weight_bytes_by_kind(precision, layer=None).values()
        )

    def weight_bytes_per_layer(self, precision: Precision = "bf16") -> list[int]:
        """Bytes of each decoder layer's tensors (embedding, final norm and LM head excluded)."""
        of = resolve_precision(precision)
        return [self._layer_bytes(lt, of) for lt in self._layer_tensors]

    def weight_bytes_by_kind(self, precision: Precision = "bf16", *, layer: Any = "all") -> dict[str, int]:
        """Bytes per tensor class, over the whole model (``layer="all"``), one decoder layer (an
        index) or the tensors outside the layers (``None``)."""
        of = resolve_precision(precision)
        if layer == "all":
            tensors: Iterable[TensorSpec] = self.tensors
        elif layer is None:
            tensors = self._outer_tensors
        else:
            tensors = self.layer_tensors(layer)
        out: dict[str, int] = {}
        for t in tensors:
            out[t.kind] = out.get(t.kind, 0) + of(t).nbytes(t.params)
        return out

    @staticmethod
    def _layer_bytes(lt: _LayerTensors, of: Callable[[TensorSpec], Dtype]) -> int:
        n = sum(of(t).nbytes(t.params) for t in lt.always)
        if lt.experts:
            n += lt.experts * sum(of(t).nbytes(t.params) for t in lt.one_expert)
        return n

    def native_precision(self) -> Precision:
        """The precision the checkpoint is released in (``torch_dtype`` + ``quantization_config``)."""
        base = self.torch_dtype
        if self.quant_method is None:
            return base
        if self.quant_method == "mxfp4":  # gpt-oss: MoE expert matrices only
            return {"default": base, "expert": "mxfp4", "vector": base}
        if self.quant_method == "fp8":  # DeepSeek-V3: linear layers, 128x128 block scales
            return {
                "default": "fp8_b128",
                "embed": base,
                "lm_head": base,
                "router": base,
                "vector": base,
            }
        raise ConfigError(
            f"unsupported quant_method {self.quant_method!r}; expected 'mxfp4' or 'fp8'",
            where=f"{self.source or self.name}: quantization_config.quant_method",
        )

    # -- KV cache -----------------------------------------------------------------------------
    @property
    def kv_elements_per_layer(self) -> int:
        """Cached elements per token per layer: ``2 x kv_heads x head_dim``, or for MLA
        ``kv_lora_rank + qk_rope_head_dim`` (one latent and the shared RoPE key, no separate V)."""
        if self.is_mla:
            assert self.kv_lora_rank is not None and self.qk_rope_head_dim is not None
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.kv_heads * self.head_dim

    def kv_bytes_per_token_layer(self, dtype: DtypeLike = "bf16") -> int:
        return get_dtype(dtype).nbytes(self.kv_elements_per_layer)

    def kv_bytes_per_token(self, dtype: DtypeLike = "bf16", context: int | None = None) -> float:
        """KV-cache bytes per token over all layers.

        Without ``context``: what one token adds to every layer's cache (no windows applied). With
        ``context``: :meth:`kv_cache_bytes` of a sequence of that length divided by ``context``
        (sliding layers hold at most ``window`` tokens, so this falls as context grows).
        """
        if context is None:
            return self.layers * self.kv_bytes_per_token_layer(dtype)
        return self.kv_cache_bytes(dtype, context) / context

    def kv_cache_bytes(self, dtype: DtypeLike = "bf16", context: int = 1) -> int:
        """KV-cache bytes of one sequence of ``context`` tokens (sliding layers capped at the window)."""
        _check_context(context)
        per = self.kv_bytes_per_token_layer(dtype)
        return sum(self.attention_span(i, context) for i in range(self.layers)) * per

    # -- FLOPs ----------------------------------------------------------------------------------
    def attention_flops(self, layer: int, context: int, *, mla_absorbed: bool = True) -> int:
        """Score and value FLOPs of one token in ``layer`` at sequence length ``context``."""
        _check_context(context)
        span = self.attention_span(layer, context)
        h = self.heads
        if not self.is_mla:
            return 4 * span * h * self.head_dim
        assert self.kv_lora_rank and self.qk_rope_head_dim and self.qk_nope_head_dim and self.v_head_dim
        if mla_absorbed:
            return (
                2 * span * h * (self.kv_lora_rank + self.qk_rope_head_dim) + 2 * span * h * self.kv_lora_rank
            )
        kv_b = self.kv_lora_rank * h * (self.qk_nope_head_dim + self.v_head_dim)
        return (
            2 * span * h * (self.qk_nope_head_dim + self.qk_rope_head_dim)
            + 2 * span * h * self.v_head_dim
            + 2 * (span - 1) * kv_b
        )

    def flops_per_token(self, context: int, *, mla_absorbed: bool = True) -> int:
        """FLOPs to decode one token at sequence length ``context`` (see the module doc for what
        is counted): ``2 x matmul_params_per_token() + sum of attention_flops over layers``."""
        attn = sum(self.attention_flops(i, context, mla_absorbed=mla_absorbed) for i in range(self.layers))
        return 2 * self.matmul_params_per_token() + attn

    # -- decode work ----------------------------------------------------------------------------
    def decode_work(
        self,
        contexts: int | Sequence[int],
        *,
        weight_dtype: Precision = "bf16",
        kv_dtype: DtypeLike = "bf16",
        experts: Mapping[int, Iterable[int]] | Sequence[Iterable[int]] | None = None,
        mla_absorbed: bool = True,
    ) -> DecodeWork:
        """The work of one decode step: one new token for each sequence in ``contexts``.

        ``contexts`` is one sequence length or one per sequence of the batch (each includes the
        token being decoded). Per layer: weights read once for the batch (routed experts: the
        expected number of distinct experts the batch touches under uniform routing, or, if
        ``experts`` maps each MoE layer to the expert ids the batch routed to, exactly those); KV
        read ``sum(min(C, window))`` tokens and written one token per sequence; FLOPs summed over
        the batch.
        """
        ctx = (contexts,) if isinstance(contexts, int) else tuple(contexts)
        if not ctx:
            raise ValueError("decode_work needs at least one sequence")
        for c in ctx:
            _check_context(c)
        batch = len(ctx)
        routed = self._routing(experts, batch)
        of = resolve_precision(weight_dtype)
        kv_per = self.kv_bytes_per_token_layer(kv_dtype)
        parts: list[LayerWork] = []

        embed = next(t for t in self._outer_tensors if t.kind == "embed")
        row = of(embed).nbytes(self.hidden)
        parts.append(LayerWork("embed", None, batch * row, {"embed": batch * row}, 0, 0, 0))

        for i, lt in enumerate(self._layer_tensors):
            by_kind: dict[str, float] = {}
            for t in lt.always:
                by_kind[t.kind] = by_kind.get(t.kind, 0) + of(t).nbytes(t.params)
            touched = 0.0
            if lt.experts:
                touched = routed[i]
                per_expert = sum(of(t).nbytes(t.params) for t in lt.one_expert)
                by_kind["expert"] = touched * per_expert
            attn = sum(self.attention_flops(i, c, mla_absorbed=mla_absorbed) for c in ctx)
            parts.append(
                LayerWork(
                    "layer",
                    i,
                    sum(by_kind.values()),
                    by_kind,
                    kv_read_bytes=sum(self.attention_span(i, c) for c in ctx) * kv_per,
                    kv_write_bytes=batch * kv_per,
                    flops=batch * 2 * self._layer_matmul_params(lt) + attn,
                    experts_touched=touched,
                )
            )

        head: dict[str, float] = {}
        for t in self._outer_tensors:
            if t.kind != "embed" or self.tie_embeddings:
                kind = "lm_head" if t.kind == "embed" else t.kind
                head[kind] = head.get(kind, 0) + of(t).nbytes(t.params)
        parts.append(
            LayerWork("head", None, sum(head.values()), head, 0, 0, batch * 2 * self.vocab * self.hidden)
        )
        return DecodeWork(ctx, tuple(parts))

    def _routing(
        self, experts: Mapping[int, Iterable[int]] | Sequence[Iterable[int]] | None, batch: int
    ) -> dict[int, float]:
        """Routed experts touched per MoE layer: expected (uniform routing) or counted from ids."""
        moe = [i for i in range(self.layers) if self.moe_layer(i)]
        if experts is None:
            u = expected_unique_experts(self.experts, self.experts_per_token, batch) if moe else 0.0
            return dict.fromkeys(moe, u)
        table = experts if isinstance(experts, Mapping) else dict(enumerate(experts))
        out: dict[int, float] = {}
        for i in moe:
            if i not in table:
                raise ValueError(f"routing gives no experts for MoE layer {i}")
            ids = set(table[i])
            if any(not _is_int(e) or not 0 <= e < self.experts for e in ids):
                raise ValueError(f"layer {i}: expert ids must be in 0..{self.experts - 1}, got {sorted(ids)}")
            if not 0 < len(ids) <= min(self.experts, batch * self.experts_per_token):
                raise ValueError(
                    f"layer {i}: {len(ids)} distinct experts is impossible for {batch} tokens "
                    f"with top-{self.experts_per_token}"
                )
            out[i] = float(len(ids))
        return out

    # -- reporting ----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Headline figures (parameters, bf16 bytes, KV bytes per token) for reports."""
        return {
            "name": self.name,
            "family": self.family,
            "layers": self.layers,
            "params": self.n_params,
            "active_params_per_token": self.active_params_per_token(),
            "weight_bytes_bf16": self.weight_bytes("bf16"),
            "kv_bytes_per_token_bf16": self.kv_bytes_per_token("bf16"),
            "moe": self.is_moe,
            "mla": self.is_mla,
            "sliding_layers": self.layer_types.count(SLIDING_ATTENTION),
        }


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_context(context: int) -> None:
    if not _is_int(context) or context < 1:
        raise ValueError(f"context must be an integer >= 1 (it includes the decoded token), got {context!r}")


# -- building the tensor list --------------------------------------------------------------------
def _build_tensors(s: ModelSpec) -> list[TensorSpec]:
    out: list[TensorSpec] = []

    def add(
        name: str, layer: int | None, kind: str, shape: tuple[int, ...], expert: int | None = None
    ) -> None:
        out.append(TensorSpec(name, layer, kind, math.prod(shape), expert, shape))

    def linear(
        name: str, layer: int, kind: str, n_out: int, n_in: int, bias: bool, expert: int | None = None
    ):
        add(f"{name}.weight", layer, kind, (n_out, n_in), expert)
        if bias:
            add(f"{name}.bias", layer, kind, (n_out,), expert)

    def swiglu(prefix: str, layer: int, kind: str, width: int, bias: bool, expert: int | None = None):
        linear(prefix + "gate_proj", layer, kind, width, d, bias, expert)
        linear(prefix + "up_proj", layer, kind, width, d, bias, expert)
        linear(prefix + "down_proj", layer, kind, d, width, bias, expert)

    d, h = s.hidden, s.heads
    add("model.embed_tokens.weight", None, "embed", (s.vocab, d))
    for i in range(s.layers):
        p = f"model.layers.{i}."
        add(p + "input_layernorm.weight", i, "norm", (d,))
        a = p + "self_attn."
        if s.is_mla:
            assert s.kv_lora_rank and s.qk_rope_head_dim and s.qk_nope_head_dim and s.v_head_dim
            qk = s.qk_nope_head_dim + s.qk_rope_head_dim
            if s.q_lora_rank:
                linear(a + "q_a_proj", i, "attn_q", s.q_lora_rank, d, s.attention_bias)
                add(a + "q_a_layernorm.weight", i, "norm", (s.q_lora_rank,))
                linear(a + "q_b_proj", i, "attn_q", h * qk, s.q_lora_rank, False)
            else:
                linear(a + "q_proj", i, "attn_q", h * qk, d, False)
            linear(
                a + "kv_a_proj_with_mqa",
                i,
                "attn_kv",
                s.kv_lora_rank + s.qk_rope_head_dim,
                d,
                s.attention_bias,
            )
            add(a + "kv_a_layernorm.weight", i, "norm", (s.kv_lora_rank,))
            linear(
                a + "kv_b_proj", i, "attn_kv", h * (s.qk_nope_head_dim + s.v_head_dim), s.kv_lora_rank, False
            )
            linear(a + "o_proj", i, "attn_o", d, h * s.v_head_dim, s.attention_bias)
        else:
            q_out, kv_out = h * s.head_dim, s.kv_heads * s.head_dim
            linear(a + "q_proj", i, "attn_q", q_out, d, s.attention_bias)
            linear(a + "k_proj", i, "attn_kv", kv_out, d, s.attention_bias)
            linear(a + "v_proj", i, "attn_kv", kv_out, d, s.attention_bias)
            linear(a + "o_proj", i, "attn_o", d, q_out, s.attention_bias)
            if s.qk_norm:
                add(a + "q_norm.weight", i, "norm", (s.head_dim,))
                add(a + "k_norm.weight", i, "norm", (s.head_dim,))
        if s.attention_sinks:
            add(a + "sinks", i, "attn_sink", (h,))
        add(p + "post_attention_layernorm.weight", i, "norm", (d,))
        m = p + "mlp."
        if s.moe_layer(i):
            linear(m + "gate", i, "router", s.experts, d, s.router_bias)
            for e in range(s.experts):
                swiglu(f"{m}experts.{e}.", i, "expert", s.moe_intermediate, s.expert_bias, e)
            if s.shared_experts:
                swiglu(
                    m + "shared_experts.", i, "shared_expert", s.shared_experts * s.moe_intermediate, False
                )
        else:
            swiglu(m, i, "ffn", s.intermediate, False)
    add("model.norm.weight", None, "norm", (d,))
    if not s.tie_embeddings:
        add("lm_head.weight", None, "lm_head", (s.vocab, d))
    return out


# -- loading -------------------------------------------------------------------------------------
def load_model(name_or_path: str | Path, *, key: str | None = None) -> ModelSpec:
    """A :class:`ModelSpec` from a known name, a ``config.json``, or a table of a TOML file.

    * a known name (``llama-3.1-70b``, ``deepseek-v3``, ... or the Hugging Face id) loads the config
      shipped in ``sim/data/models``;
    * a path to a Hugging Face ``config.json`` (or a directory holding one);
    * a path to a TOML file keyed like config.json: one table per model, chosen by ``key`` or by
      ``path.toml#key``; a file with a single table (or top-level keys) needs no key.

    An unknown name lists the known ones; a missing, mistyped or invalid key raises
    :class:`~sim.core.errors.ConfigError` naming the file and the key.
    """
    from sim.model.config import load_model_config

    return load_model_config(name_or_path, key=key)
