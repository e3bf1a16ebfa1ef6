"""Reading Hugging Face ``config.json`` files (and TOML tables keyed like them) into ModelSpecs.

The architecture family is the config's ``model_type``; each family is a reader registered under
kind ``model_family`` that turns the config keys into :class:`~sim.model.spec.ModelSpec`
fields. A new family is one decorated function::

    @register("model_family", "phi3")
    def read_phi3(r: ConfigReader) -> dict[str, Any]:
        return read_common(r)             # plus whatever differs

A config without ``model_type`` (a hand-written table) is read as Llama-style with whatever MoE,
MLA and sliding-window keys it has. An unknown ``model_type`` is an error rather than a guess: its
layers may not be what memwall would count (say so by setting ``model_type = "llama"``).

Keys memwall does not need are ignored (config.json files carry dozens); keys it reads are checked
(type, sign, consistency) and every error names the file and key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sim.core.errors import ConfigError, RegistryError, join_where
from sim.core.limits import MAX_LAYERS
from sim.core.registry import REGISTRY, lookup, register
from sim.core.textfile import brief, read_text
from sim.core.tomlfile import read_toml
from sim.model.catalog import find_entry, known_names
from sim.model.spec import FULL_ATTENTION, LAYER_TYPES, SLIDING_ATTENTION, ModelSpec

_MISSING: Any = object()

TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}

MAX_WIDTH = 1 << 20
"""Largest hidden, intermediate, head or rank size (and head count) read from a config: far above any
released model (hidden sizes reach ~2^14), far below sizes whose weights could not be counted."""

MAX_VOCAB = 1 << 24
"""Largest vocabulary read from a config (released models: up to ~2^18 tokens)."""

MAX_EXPERTS = 1 << 16
"""Most routed (or shared) experts per MoE layer read from a config (released models: up to 384)."""

MAX_ANY = 1 << 40
"""Bound on any other integer a config gives (positions, windows, steps): keeps int64 arithmetic exact."""

_LIMIT_NAMES = {
    MAX_LAYERS: "MAX_LAYERS",
    MAX_WIDTH: "MAX_WIDTH",
    MAX_VOCAB: "MAX_VOCAB",
    MAX_EXPERTS: "MAX_EXPERTS",
    MAX_ANY: "MAX_ANY",
}


class ConfigReader:
    """Typed access to a config mapping; errors say ``file: key``, what was expected and found."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, where=join_where(self.where, key))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _get(self, keys: tuple[str, ...]) -> tuple[str, Any]:
        """The first of ``keys`` present and not null, checking aliases agree."""
        found = [(k, self.data[k]) for k in keys if self.data.get(k) is not None]
        if not found:
            return keys[0], _MISSING
        for k, v in found[1:]:
            if v != found[0][1]:
                raise self.error(k, f"{brief(v)} contradicts {found[0][0]} = {brief(found[0][1])}")
        return found[0]

    def int(self, *keys: str, default: Any = _MISSING, minimum: int = 1, maximum: int = MAX_ANY) -> Any:
        """An integer in ``[minimum, maximum]`` under the first present key of ``keys`` (aliases).

        Whole-valued floats (``4096.0``) are accepted; fractions, booleans, strings, NaN and
        infinities are not.
        """
        key, value = self._get(keys)
        if value is _MISSING:
            if default is _MISSING:
                also = f" (or {', '.join(keys[1:])})" if len(keys) > 1 else ""
                raise self.error(key, f"missing key{also}; expected an integer >= {minimum}")
            return default
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.error(key, f"expected an integer >= {minimum}, found {brief(value)}")
        if value > maximum:
            name = _LIMIT_NAMES.get(maximum)
            bound = f"{maximum:,} ({name})" if name else f"{maximum:,}"
            raise self.error(key, f"expected an integer <= {bound}, found {brief(value)}")
        return value

    def opt_int(self, *keys: str, minimum: int = 1, maximum: int = MAX_ANY) -> int | None:
        return self.int(*keys, default=None, minimum=minimum, maximum=maximum)

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, found {brief(value)}")
        return value

    def str(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, found {brief(value)}")
        return value

    def list(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, found {brief(value)}")
        return value


# -- the common reading -------------------------------------------------------------------------
def read_common(r: ConfigReader) -> dict[str, Any]:
    """ModelSpec fields from the keys most Hugging Face decoder configs share.

    Dense: ``num_hidden_layers``, ``hidden_size``, ``num_attention_heads``, ``num_key_value_heads``
    (default: heads), ``head_dim`` (default: hidden / heads), ``vocab_size``, ``intermediate_size``.
    MoE: ``num_local_experts`` | ``num_experts`` | ``n_routed_experts``, ``num_experts_per_tok`` |
    ``experts_per_token``, ``n_shared_experts``, ``moe_intermediate_size`` (default: intermediate),
    ``first_k_dense_replace``, ``moe_layer_freq``, ``mlp_only_layers``, ``decoder_sparse_step``.
    MLA: ``kv_lora_rank`` (its presence selects MLA), ``q_lora_rank``, ``qk_rope_head_dim``,
    ``qk_nope_head_dim``, ``v_head_dim``. Windows: ``layer_types`` and ``sliding_window``.
    """
    layers = r.int("num_hidden_layers", maximum=MAX_LAYERS)
    hidden = r.int("hidden_size", maximum=MAX_WIDTH)
    heads = r.int("num_attention_heads", maximum=MAX_WIDTH)
    kv_heads = r.int("num_key_value_heads", default=heads, maximum=MAX_WIDTH)
    spec: dict[str, Any] = {
        "layers": layers,
        "hidden": hidden,
        "heads": heads,
        "kv_heads": kv_heads,
        "vocab": r.int("vocab_size", maximum=MAX_VOCAB),
        "intermediate": r.int("intermediate_size", maximum=MAX_WIDTH),
        "tie_embeddings": r.bool("tie_word_embeddings", False),
        "attention_bias": r.bool("attention_bias", False),
        "max_context": r.opt_int("max_position_embeddings"),
        "torch_dtype": _torch_dtype(r),
        "quant_method": _quant_method(r),
    }

    kv_lora = r.opt_int("kv_lora_rank", maximum=MAX_WIDTH)
    if kv_lora is not None:  # multi-head latent attention
        rope, nope = (
            r.int("qk_rope_head_dim", maximum=MAX_WIDTH),
            r.int("qk_nope_head_dim", maximum=MAX_WIDTH),
        )
        spec |= {
            "kv_lora_rank": kv_lora,
            "q_lora_rank": r.opt_int("q_lora_rank", maximum=MAX_WIDTH),
            "qk_rope_head_dim": rope,
            "qk_nope_head_dim": nope,
            "v_head_dim": r.int("v_head_dim", maximum=MAX_WIDTH),
            "head_dim": nope + rope,
        }
    else:
        if heads % kv_heads:
            raise r.error(
                "num_key_value_heads",
                f"expected a divisor of num_attention_heads ({heads}), found {kv_heads}",
            )
        head_dim = r.opt_int("head_dim", maximum=MAX_WIDTH)
        if head_dim is None:
            if hidden % heads:
                raise r.error(
                    "head_dim",
                    f"missing key, and hidden_size ({hidden}) is not a multiple of "
                    f"num_attention_heads ({heads})",
                )
            head_dim = hidden // heads
        spec["head_dim"] = head_dim

    experts = r.int(
        "num_local_experts", "num_experts", "n_routed_experts", default=0, minimum=0, maximum=MAX_EXPERTS
    )
    if experts:
        k = r.int("num_experts_per_tok", "experts_per_token", maximum=MAX_EXPERTS)
        if k > experts:
            raise r.error("num_experts_per_tok", f"expected at most {experts} (the experts), found {k}")
        first_k = r.int("first_k_dense_replace", default=0, minimum=0, maximum=MAX_LAYERS)
        if first_k > layers:
            raise r.error("first_k_dense_replace", f"expected at most {layers} (the layers), found {first_k}")
        spec |= {
            "experts": experts,
            "experts_per_token": k,
            "shared_experts": r.int("n_shared_experts", default=0, minimum=0, maximum=MAX_EXPERTS),
            "moe_intermediate": r.int(
                "moe_intermediate_size", default=spec["intermediate"], maximum=MAX_WIDTH
            ),
            "first_k_dense": first_k,
            "dense_layers": _dense_layers(r, layers),
        }

    window = r.opt_int("sliding_window")
    types = r.list("layer_types")
    if types is not None:
        spec["layer_types"] = _layer_types(r, types, layers, window)
        if SLIDING_ATTENTION in spec["layer_types"]:
            spec["sliding_window"] = window
    elif window is not None and r.bool("use_sliding_window", True):
        spec["sliding_window"] = window
        spec["layer_types"] = (SLIDING_ATTENTION,) * layers
    return spec


def _dense_layers(r: ConfigReader, layers: int) -> tuple[int, ...]:
    """MoE-model layers with a dense FFN beyond the first k (Qwen: mlp_only_layers and
    decoder_sparse_step; DeepSeek: moe_layer_freq)."""
    dense: set[int] = set()
    only = r.list("mlp_only_layers") or []
    for j, i in enumerate(only):
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < layers:
            raise r.error(
                f"mlp_only_layers[{j}]", f"expected a layer index in 0..{layers - 1}, found {brief(i)}"
            )
        dense.add(i)
    step = r.int("decoder_sparse_step", default=1)
    dense |= {i for i in range(layers) if (i + 1) % step}
    freq = r.int("moe_layer_freq", default=1)
    dense |= {i for i in range(layers) if i % freq}
    return tuple(sorted(dense))


def _layer_types(r: ConfigReader, types: list[Any], layers: int, window: int | None) -> tuple[str, ...]:
    if len(types) != layers:
        raise r.error("layer_types", f"expected {layers} entries (num_hidden_layers), found {len(types)}")
    for j, t in enumerate(types):
        if t not in LAYER_TYPES:
            raise r.error(f"layer_types[{j}]", f"expected {' or '.join(LAYER_TYPES)}, found {brief(t)}")
    if SLIDING_ATTENTION in types and window is None:
        raise r.error("sliding_window", "missing key; layer_types has sliding_attention layers")
    return tuple(types)


def _torch_dtype(r: ConfigReader) -> str:
    value = r.str("torch_dtype", "bfloat16") or "bfloat16"
    if value not in TORCH_DTYPES:
        raise r.error("torch_dtype", f"expected one of {', '.join(TORCH_DTYPES)}, found {brief(value)}")
    return TORCH_DTYPES[value]


def _quant_method(r: ConfigReader) -> str | None:
    q = r.data.get("quantization_config")
    if q is None:
        return None
    if not isinstance(q, Mapping):
        raise r.error("quantization_config", f"expected a table, found {brief(q)}")
    method = q.get("quant_method")
    if not isinstance(method, str):
        raise r.error("quantization_config.quant_method", f"expected a string, found {brief(method)}")
    return method


# -- families -----------------------------------------------------------------------------------
FamilyReader = Callable[[ConfigReader], dict[str, Any]]


@register("model_family", "llama")
def read_llama(r: ConfigReader) -> dict[str, Any]:
    """Llama 2/3: dense SwiGLU, GQA, no sliding windows."""
    return read_common(r)


@register("model_family", "mistral")
def read_mistral(r: ConfigReader) -> dict[str, Any]:
    """Mistral: Llama-style; a non-null sliding_window applies to every layer."""
    return read_common(r)


@register("model_family", "mixtral")
def read_mixtral(r: ConfigReader) -> dict[str, Any]:
    """Mixtral: Mistral with num_local_experts experts of width intermediate_size, top-k routing."""
    spec = read_common(r)
    if not spec.get("experts"):
        raise r.error("num_local_experts", "missing key; expected the number of experts (> 0)")
    return spec


def _qwen_windows(r: ConfigReader, spec: dict[str, Any]) -> dict[str, Any]:
    """Qwen: sliding windows only if use_sliding_window, on layers >= max_window_layers."""
    spec.pop("sliding_window", None)
    spec.pop("layer_types", None)
    types = r.list("layer_types")
    window = r.opt_int("sliding_window")
    if types is not None:
        spec["layer_types"] = _layer_types(r, types, spec["layers"], window)
        if SLIDING_ATTENTION in spec["layer_types"]:
            spec["sliding_window"] = window
    elif r.bool("use_sliding_window", False) and window is not None:
        first = r.int("max_window_layers", default=0, minimum=0)
        spec["sliding_window"] = window
        spec["layer_types"] = tuple(
            SLIDING_ATTENTION if i >= first else FULL_ATTENTION for i in range(spec["layers"])
        )
    return spec


@register("model_family", "qwen3")
def read_qwen3(r: ConfigReader) -> dict[str, Any]:
    """Qwen3 dense: Llama-style with an explicit head_dim and RMSNorms on q and k per head."""
    return _qwen_windows(r, read_common(r)) | {"qk_norm": True}


@register("model_family", "qwen3_moe")
def read_qwen3_moe(r: ConfigReader) -> dict[str, Any]:
    """Qwen3 MoE: Qwen3 attention, num_experts experts of moe_intermediate_size, no shared expert."""
    spec = _qwen_windows(r, read_common(r)) | {"qk_norm": True}
    if not spec.get("experts"):
        raise r.error("num_experts", "missing key; expected the number of experts (> 0)")
    return spec


def _deepseek(r: ConfigReader) -> dict[str, Any]:
    if not r.has("kv_lora_rank"):
        raise r.error("kv_lora_rank", "missing key; DeepSeek models use multi-head latent attention")
    spec = read_common(r)
    spec["mtp_layers"] = r.int("num_nextn_predict_layers", default=0, minimum=0, maximum=MAX_LAYERS)
    return spec


@register("model_family", "deepseek_v2")
def read_deepseek_v2(r: ConfigReader) -> dict[str, Any]:
    """DeepSeek-V2: MLA; first_k_dense_replace dense layers, then routed + shared experts."""
    return _deepseek(r)


@register("model_family", "deepseek_v3")
def read_deepseek_v3(r: ConfigReader) -> dict[str, Any]:
    """DeepSeek-V3: DeepSeek-V2 plus a router score-correction bias; the MTP module is not counted."""
    return _deepseek(r) | {"router_bias": True}


@register("model_family", "gpt_oss")
def read_gpt_oss(r: ConfigReader) -> dict[str, Any]:
    """gpt-oss: MoE with biased experts and router, attention biases and sinks, and layers that
    alternate sliding-window (even) and full attention unless layer_types says otherwise."""
    spec = read_common(r)
    if not spec.get("experts"):
        raise r.error("num_local_experts", "missing key; expected the number of experts (> 0)")
    if r.list("layer_types") is None:  # the Hugging Face default: even layers slide
        spec["sliding_window"] = r.int("sliding_window")
        spec["layer_types"] = tuple(
            SLIDING_ATTENTION if i % 2 == 0 else FULL_ATTENTION for i in range(spec["layers"])
        )
    return spec | {"attention_sinks": True, "expert_bias": True, "router_bias": True}


def family_reader(r: ConfigReader) -> tuple[str, FamilyReader]:
    """The family name and reader for the config's ``model_type`` (absent: generic)."""
    model_type = r.str("model_type")
    if model_type is None:
        return "generic", read_common
    found = REGISTRY.entries.get("model_family", {}).get(model_type)
    if found is None:  # not built in: ask the registry, which loads plugins
        try:
            found = lookup("model_family", model_type)
        except RegistryError:
            families = ", ".join(sorted(REGISTRY.entries.get("model_family", {})))
            raise r.error(
                "model_type",
                f"unsupported model_type {brief(model_type)}; expected one of: {families} "
                f"(or set model_type = 'llama' to read it as a Llama-style decoder)",
            ) from None
    return model_type, found


def spec_from_config(data: Mapping[str, Any], *, name: str, where: str) -> ModelSpec:
    """A ModelSpec from a config mapping; ``where`` (``"file.json"``) prefixes every error."""
    r = ConfigReader(data, where)
    family, reader = family_reader(r)
    fields = reader(r)
    try:
        return ModelSpec(name=name, family=family, source=where, **fields)
    except ConfigError as exc:  # a cross-field check the reader did not catch
        raise ConfigError(exc.message, where=where) from None


# -- files ----------------------------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; syntax errors name the file, line and column.

    The file must be UTF-8 text (not compressed, not binary) of at most ``MAX_FILE_BYTES``. Values
    are checked where they are read (:class:`ConfigReader`), so keys memwall ignores may hold anything.
    """
    text = read_text(Path(path), "a UTF-8 JSON file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", where=str(path)
        ) from None
    except RecursionError:
        raise ConfigError(
            "expected JSON, found arrays or objects nested too deeply", where=str(path)
        ) from None
    except ValueError:  # an integer literal beyond Python's digit limit
        raise ConfigError(
            "expected JSON numbers of at most 4300 digits, found a longer one", where=str(path)
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a JSON object at the top level, found {_json_kind(data)}", where=str(path)
        )
    return data


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _toml_table(path: Path, key: str | None) -> tuple[dict[str, Any], str, str]:
    """The config table of a TOML file: (table, model name, where)."""
    data = read_toml(path)
    tables = [k for k, v in data.items() if isinstance(v, dict) and k != "quantization_config"]
    if key is not None:
        table = data.get(key)
        if not isinstance(table, dict):
            raise ConfigError(
                f"no table [{key!r}]; expected one of: {', '.join(tables) or '(none)'}",
                where=join_where(str(path), key),
            )
        return table, key, join_where(str(path), key) or str(path)
    if "num_hidden_layers" in data:
        return data, path.stem, str(path)
    if len(tables) == 1:
        return data[tables[0]], tables[0], join_where(str(path), tables[0]) or str(path)
    raise ConfigError(
        f"holds {len(tables)} model tables; choose one with path#key, one of: {', '.join(tables)}",
        where=str(path),
    )


def load_model_config(name_or_path: str | Path, *, key: str | None = None) -> ModelSpec:
    """See :func:`sim.model.spec.load_model`."""
    if isinstance(name_or_path, str):
        entry = find_entry(name_or_path)
        if entry is not None:
            if key is not None:
                raise ConfigError(
                    f"{entry.name!r} is a known model; a key selects a table of a .toml file", where="model"
                )
            path = entry.path()
            if entry.key is not None:
                table, _, where = _toml_table(path, entry.key)
            else:
                table, where = read_json(path), str(path)
            return spec_from_config(table, name=entry.name, where=where)
        text = name_or_path
        if key is None and "#" in text:
            text, key = text.rsplit("#", 1)
        path = Path(text).expanduser()
    else:
        path = name_or_path
    if path.is_dir():
        path = path / "config.json"
    looks_like_path = path.suffix in (".json", ".toml") or len(path.parts) > 1 or path.exists()
    if not looks_like_path:
        raise ConfigError(
            f"unknown model {str(name_or_path)!r}; expected one of: {', '.join(known_names())}, "
            f"or a path to a config.json or a .toml table",
            where="model",
        )
    if path.suffix == ".toml":
        table, name, where = _toml_table(path, key)
        return spec_from_config(table, name=name, where=where)
    if key is not None:
        raise ConfigError(
            f"a key ({key!r}) selects a table of a .toml file, not of {path.name}", where=str(path)
        )
    data = read_json(path)
    name = path.parent.name if path.name == "config.json" and path.parent.name else path.stem
    return spec_from_config(data, name=name, where=str(path))
