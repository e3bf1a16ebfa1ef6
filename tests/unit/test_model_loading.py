"""Loading models by name, config.json path, directory and TOML table; bad input names file and key."""

import json
import shutil

import pytest

from sim.core.errors import ConfigError
from sim.model.catalog import data_dir, known_names
from sim.model.spec import load_model

KNOWN = [
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "llama-2-70b",
    "deepseek-v3",
    "mixtral-8x7b",
    "qwen3-30b-a3b",
    "qwen3-32b",
    "gpt-oss-120b",
]


def raises_at(where_suffix, match, fn, *args, **kwargs):
    """``fn`` raises a one-line ConfigError located at ``...where_suffix`` whose text matches."""
    with pytest.raises(ConfigError, match=match) as info:
        fn(*args, **kwargs)
    assert info.value.where is not None and info.value.where.endswith(where_suffix), info.value.where
    assert "\n" not in str(info.value)
    return info.value


@pytest.fixture
def qwen_config(tmp_path):
    """A writable copy of the shipped Qwen3-32B config.json, as a dict and a writer."""
    data = json.loads((data_dir() / "Qwen3-32B.json").read_text())

    def write(cfg, name="config.json"):
        path = tmp_path / name
        path.write_text(json.dumps(cfg))
        return path

    return data, write


def test_every_known_name_loads():
    assert sorted(known_names()) == sorted(KNOWN)
    for name in KNOWN:
        m = load_model(name)
        assert m.name == name and m.n_params > 0


def test_shipped_data_is_attributed():
    sources = (data_dir() / "SOURCES.md").read_text()
    for path in data_dir().iterdir():
        if path.name != "SOURCES.md":
            assert path.name in sources


def test_hugging_face_id_and_case_are_accepted():
    assert load_model("Qwen/Qwen3-32B") == load_model("qwen3-32b")
    assert load_model("Llama-3.1-8B").name == "llama-3.1-8b"


def test_path_to_config_json_and_directory(tmp_path):
    src = data_dir() / "Mixtral-8x7B-v0.1.json"
    by_file = load_model(src)
    assert by_file.name == "Mixtral-8x7B-v0.1" and by_file.family == "mixtral"
    assert by_file.n_params == load_model("mixtral-8x7b").n_params
    snapshot = tmp_path / "Mixtral-8x7B-v0.1"
    snapshot.mkdir()
    shutil.copy(src, snapshot / "config.json")
    by_dir = load_model(str(snapshot))
    assert by_dir.name == "Mixtral-8x7B-v0.1" and by_dir.n_params == by_file.n_params


def test_toml_table_by_key_and_by_fragment(tmp_path):
    toml = data_dir() / "architectures.toml"
    a = load_model(toml, key="llama-3.1-70b")
    b = load_model(f"{toml}#llama-3.1-70b")
    assert a == b and a.name == "llama-3.1-70b"
    assert a.n_params == load_model("llama-3.1-70b").n_params
    single = tmp_path / "mine.toml"
    single.write_text(
        '["my-model"]\nnum_hidden_layers = 2\nhidden_size = 64\nnum_attention_heads = 4\n'
        "intermediate_size = 128\nvocab_size = 100\n"
    )
    m = load_model(single)  # one table: no key needed
    assert m.name == "my-model" and m.family == "generic" and m.kv_heads == 4


def test_toml_errors_name_the_file_and_table(tmp_path):
    toml = data_dir() / "architectures.toml"
    raises_at("architectures.toml", r"choose one with path#key.*llama-2-70b", load_model, toml)
    raises_at("architectures.toml: llama-4", r"no table.*deepseek-v3", load_model, toml, key="llama-4")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '["m"]\nnum_hidden_layers = 2\nhidden_size = 64\nnum_attention_heads = 4\n'
        "intermediate_size = -128\nvocab_size = 100\n"
    )
    raises_at("bad.toml: m.intermediate_size", r"expected an integer >= 1, found -128", load_model, bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[m\n")
    raises_at("broken.toml", "malformed TOML", load_model, broken)


def test_unknown_name_lists_known_names():
    err = raises_at("model", r"unknown model 'llama-3.1-7b'", load_model, "llama-3.1-7b")
    for name in KNOWN:
        assert name in str(err)


def test_missing_file(tmp_path):
    raises_at("nope.json", "file not found", load_model, tmp_path / "nope.json")


def test_malformed_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"num_hidden_layers": 2,\n "hidden_size": }')
    raises_at("config.json", r"malformed JSON at line 2 column", load_model, path)
    path.write_text("[1, 2]")
    raises_at("config.json", "expected a JSON object", load_model, path)


def test_missing_num_hidden_layers(qwen_config):
    data, write = qwen_config
    del data["num_hidden_layers"]
    raises_at("config.json: num_hidden_layers", "missing key", load_model, write(data))


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("hidden_size", -5120, r"expected an integer >= 1, found -5120"),
        ("num_attention_heads", 0, r"found 0"),
        ("vocab_size", "151936", r"found '151936'"),
        ("intermediate_size", True, r"found True"),
        ("head_dim", 12.5, r"found 12.5"),
        ("num_key_value_heads", 7, r"expected a divisor of num_attention_heads \(64\), found 7"),
        ("tie_word_embeddings", "no", "expected true or false"),
        ("torch_dtype", "int3", "expected one of bfloat16"),
    ],
)
def test_bad_values_name_file_and_key(qwen_config, key, value, match):
    data, write = qwen_config
    data[key] = value
    raises_at(f"config.json: {key}", match, load_model, write(data))


def test_moe_and_window_errors(tmp_path):
    gpt = json.loads((data_dir() / "gpt-oss-120b.json").read_text())
    path = tmp_path / "config.json"

    def load(cfg):
        path.write_text(json.dumps(cfg))
        return load_model(path)

    raises_at(
        "config.json: experts_per_token",
        r"4 contradicts num_experts_per_tok = 2",
        load,
        gpt | {"num_experts_per_tok": 2},
    )
    raises_at(
        "config.json: num_experts_per_tok",
        r"at most 128",
        load,
        gpt | {"num_experts_per_tok": 129, "experts_per_token": 129},
    )
    raises_at(
        "config.json: layer_types",
        r"expected 36 entries \(num_hidden_layers\), found 35",
        load,
        gpt | {"layer_types": gpt["layer_types"][:-1]},
    )
    raises_at(
        "config.json: layer_types[3]",
        r"found 'chunked_attention'",
        load,
        gpt | {"layer_types": [*gpt["layer_types"][:3], "chunked_attention", *gpt["layer_types"][4:]]},
    )
    raises_at("config.json: sliding_window", "missing key", load, gpt | {"sliding_window": None})
    raises_at(
        "config.json: model_type",
        r"unsupported model_type 'gpt_neox'.*llama",
        load,
        gpt | {"model_type": "gpt_neox"},
    )
    ds = {
        "model_type": "deepseek_v3",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 100,
    }
    raises_at("config.json: kv_lora_rank", "multi-head latent attention", load, ds)
    raises_at("config.json: qk_rope_head_dim", "missing key", load, ds | {"kv_lora_rank": 16})


def test_sliding_window_conventions():
    from sim.model.config import spec_from_config

    base = {
        "num_hidden_layers": 4,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 100,
    }
    mistral = spec_from_config(
        base | {"model_type": "mistral", "sliding_window": 4096}, name="m", where="m.json"
    )
    assert mistral.layer_types == ("sliding_attention",) * 4 and mistral.window(3) == 4096
    mixtral_like = spec_from_config(
        base | {"model_type": "mistral", "sliding_window": None}, name="m", where="m.json"
    )
    assert mixtral_like.window(0) is None
    qwen_off = spec_from_config(
        base | {"model_type": "qwen3", "sliding_window": 4096, "use_sliding_window": False},
        name="q",
        where="q.json",
    )
    assert qwen_off.window(3) is None
    qwen_on = spec_from_config(
        base
        | {"model_type": "qwen3", "sliding_window": 4096, "use_sliding_window": True, "max_window_layers": 2},
        name="q",
        where="q.json",
    )
    assert [qwen_on.window(i) for i in range(4)] == [None, None, 4096, 4096]
    gpt_default = spec_from_config(
        base
        | {"model_type": "gpt_oss", "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": 128},
        name="g",
        where="g.json",
    )
    assert gpt_default.layer_types == ("sliding_attention", "full_attention") * 2


def test_qwen_sparse_step_and_dense_layers():
    from sim.model.config import spec_from_config

    cfg = {
        "model_type": "qwen3_moe",
        "num_hidden_layers": 6,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "moe_intermediate_size": 32,
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "vocab_size": 100,
        "decoder_sparse_step": 2,
        "mlp_only_layers": [3],
    }
    m = spec_from_config(cfg, name="q", where="q.json")
    # sparse when (i + 1) % 2 == 0 and not in mlp_only_layers
    assert [m.moe_layer(i) for i in range(6)] == [False, True, False, False, False, True]
    ffn = [t for t in m.layer_tensors(0) if t.kind == "ffn"]
    assert [t.shape for t in ffn] == [(256, 64), (256, 64), (64, 256)]


def test_direct_construction_is_checked():
    from sim.model.spec import ModelSpec

    with pytest.raises(ConfigError, match=r"model x: expected layers a positive integer, found -1"):
        ModelSpec("x", layers=-1, hidden=8, heads=2, kv_heads=2, head_dim=4, vocab=10, intermediate=16)
    with pytest.raises(ConfigError, match="sliding_window"):
        ModelSpec("x", 2, 8, 2, 2, 4, 10, 16, layer_types=("sliding_attention", "full_attention"))
    m = ModelSpec("x", 2, 8, 2, 1, 4, 10, 16)
    assert m.layer_types == ("full_attention", "full_attention")
