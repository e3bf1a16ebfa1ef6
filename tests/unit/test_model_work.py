"""KV-cache bytes, FLOPs per token, decode-step work and expected unique experts, against closed forms."""

import numpy as np
import pytest

from sim.model.dtype import get_dtype
from sim.model.spec import expected_unique_experts, load_model


# -- KV cache ------------------------------------------------------------------------------------
def test_kv_bytes_llama_3_1_70b():
    m = load_model("llama-3.1-70b")
    assert m.kv_bytes_per_token("bf16") == 2 * 80 * 8 * 128 * 2 == 327_680  # K and V, layers, heads, dim
    assert m.kv_bytes_per_token("fp8") == 163_840
    assert m.kv_bytes_per_token("fp4") == 81_920
    assert m.kv_bytes_per_token("mxfp4") == 80 * (2048 // 2 + 2048 // 32)  # + a scale byte per 32
    # no sliding windows: per-token bytes do not depend on the context
    assert m.kv_bytes_per_token("bf16", context=100_000) == 327_680
    assert m.kv_cache_bytes("bf16", 4096) == 4096 * 327_680


def test_kv_bytes_deepseek_v3_mla():
    m = load_model("deepseek-v3")
    # one compressed latent (kv_lora_rank) + the shared RoPE key (qk_rope_head_dim) per layer
    assert m.kv_elements_per_layer == 512 + 64
    assert m.kv_bytes_per_token("bf16") == 61 * (512 + 64) * 2 == 70_272
    assert m.kv_bytes_per_token("fp8") == 35_136


def test_kv_bytes_gpt_oss_sliding_layers_cap_at_the_window():
    m = load_model("gpt-oss-120b")
    per_layer = 2 * 8 * 64 * 2  # bf16 K and V of 8 KV heads of 64
    assert m.layer_types.count("sliding_attention") == 18 and m.sliding_window == 128
    assert [m.window(i) for i in range(4)] == [128, None, 128, None]
    assert m.kv_bytes_per_token("bf16") == 36 * per_layer  # what a token adds, no window applied
    for c in (1, 100, 128, 129, 8192, 131072):
        expected = (18 * c + 18 * min(c, 128)) * per_layer
        assert m.kv_cache_bytes("bf16", c) == expected
        assert m.kv_bytes_per_token("bf16", context=c) == pytest.approx(expected / c)
    # at long context the sliding half costs almost nothing
    assert m.kv_bytes_per_token("bf16", context=131072) == pytest.approx(18 * per_layer, rel=0.001)


# -- FLOPs -----------------------------------------------------------------------------------------
def test_flops_llama_3_1_70b():
    m = load_model("llama-3.1-70b")
    V, d, L, h, hd = 128256, 8192, 80, 64, 128
    matmul = m.n_params - V * d - (2 * L * d + d)  # everything but the gathered embedding and norms
    for c in (1, 4096):
        assert m.flops_per_token(c) == 2 * matmul + 4 * L * c * h * hd


def test_flops_deepseek_v3_absorbed_and_not():
    m = load_model("deepseek-v3")
    V, d, L, h = 129280, 7168, 61, 128
    q_lora, kv_lora, rope, nope, v, ff, mi, E, k, shared = 1536, 512, 64, 128, 128, 18432, 2048, 256, 8, 1
    mla = (
        d * q_lora + q_lora * h * (nope + rope) + d * (kv_lora + rope) + kv_lora * h * (nope + v) + h * v * d
    )
    matmul = L * mla + 3 * (3 * d * ff) + (L - 3) * ((k + shared) * 3 * d * mi + E * d) + V * d
    c = 4096
    absorbed = L * (2 * c * h * (kv_lora + rope) + 2 * c * h * kv_lora)
    assert m.flops_per_token(c) == 2 * matmul + absorbed
    naive = L * (2 * c * h * (nope + rope) + 2 * c * h * v + 2 * (c - 1) * kv_lora * h * (nope + v))
    assert m.flops_per_token(c, mla_absorbed=False) == 2 * matmul + naive


def test_flops_gpt_oss_windowed_attention():
    m = load_model("gpt-oss-120b")
    V, d, L, h, kv, hd, ff, E, k = 201088, 2880, 36, 64, 8, 64, 2880, 128, 4
    matmul = L * (d * h * hd + 2 * d * kv * hd + h * hd * d + E * d + k * 3 * d * ff) + V * d
    for c in (64, 4096):
        attn = 4 * h * hd * (18 * c + 18 * min(c, 128))
        assert m.flops_per_token(c) == 2 * matmul + attn


# -- decode step work ------------------------------------------------------------------------------
def test_decode_work_dense_single_sequence():
    m = load_model("llama-3.1-70b")
    V, d, L = 128256, 8192, 80
    c = 2048
    w = m.decode_work(c)
    assert w.tokens == 1 and len(w.layers) == L
    # every weight once, except the embedding table of which one row is read
    assert w.weight_bytes == 2 * (m.n_params - V * d + d)
    assert w.kv_read_bytes == L * c * 2 * 8 * 128 * 2
    assert w.kv_write_bytes == 327_680
    assert w.flops == m.flops_per_token(c)
    layer = w.layers[7]
    assert layer.weight_bytes == m.weight_bytes_per_layer("bf16")[7]
    assert layer.kv_read_bytes == c * 4096 and layer.kv_write_bytes == 4096


@pytest.mark.parametrize("name", ["mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3", "gpt-oss-120b"])
def test_decode_work_one_token_reads_its_active_parameters(name):
    """A single token touches exactly top-k experts per MoE layer: bf16 bytes = 2 x active (row)."""
    m = load_model(name)
    w = m.decode_work(100)
    assert w.weight_bytes == pytest.approx(2 * m.active_params_per_token(embedding="row"), rel=1e-12)
    assert w.flops == m.flops_per_token(100)
    moe = [p for p in w.layers if m.moe_layer(p.layer)]
    assert moe and all(p.experts_touched == pytest.approx(m.experts_per_token) for p in moe)


def test_decode_work_batch_expected_and_explicit_experts():
    m = load_model("mixtral-8x7b")
    d, ff, E, k = 4096, 14336, 8, 2
    expert_bytes = 2 * 3 * d * ff
    w1 = m.decode_work(512)
    w = m.decode_work([512, 1024, 16, 3])
    u = E * (1 - (1 - k / E) ** 4)
    lay, lay1 = w.layers[0], w1.layers[0]
    assert lay.experts_touched == pytest.approx(u)
    assert lay.weight_bytes == pytest.approx(lay1.weight_bytes + (u - k) * expert_bytes)
    assert lay.kv_read_bytes == (512 + 1024 + 16 + 3) * 2 * 8 * 128 * 2
    assert lay.kv_write_bytes == 4 * 2 * 8 * 128 * 2
    per_token_matmul = w1.layers[0].flops - m.attention_flops(0, 512)
    assert per_token_matmul == 2 * (4096 * 4096 * 2 + 2 * 4096 * 1024 + E * d + k * 3 * d * ff)
    assert lay.flops == 4 * per_token_matmul + sum(4 * 32 * 128 * c for c in (512, 1024, 16, 3))
    routed = {i: {0, 3, 5} for i in range(32)}
    we = m.decode_work([512] * 4, experts=routed)
    assert we.layers[0].experts_touched == 3
    assert we.layers[0].weight_bytes == lay1.weight_bytes + (3 - k) * expert_bytes
    with pytest.raises(ValueError, match="impossible"):
        m.decode_work([512], experts=routed)  # one token cannot touch 3 experts with top-2
    with pytest.raises(ValueError, match="no experts for MoE layer 1"):
        m.decode_work([512] * 4, experts={0: {1}})


def test_decode_work_mixed_precision_and_head():
    m = load_model("gpt-oss-120b")
    w = m.decode_work(1, weight_dtype=m.native_precision(), kv_dtype="fp8")
    head = w.parts[-1]
    assert head.part == "head" and head.weight_bytes == 2 * (201088 * 2880 + 2880)
    assert head.flops == 2 * 201088 * 2880
    assert w.parts[0].part == "embed" and w.parts[0].weight_bytes == 2 * 2880
    lay = w.layers[0]
    assert lay.kv_write_bytes == 2 * 8 * 64  # fp8
    # 4 experts: matrices in MXFP4 (4.25 bits), biases in bf16
    d = ff = 2880
    assert lay.weight_bytes_by_kind["expert"] == 4 * (3 * d * ff * 17 // 32 + 2 * (2 * ff + d))


def test_decode_work_context_checks():
    m = load_model("llama-3.1-8b")
    with pytest.raises(ValueError, match="context"):
        m.decode_work(0)
    with pytest.raises(ValueError, match="at least one"):
        m.decode_work([])


# -- expected unique experts ---------------------------------------------------------------------
def test_expected_unique_experts_edges():
    assert expected_unique_experts(8, 2, 0) == 0
    assert expected_unique_experts(8, 2, 1) == pytest.approx(2)
    assert expected_unique_experts(128, 128, 3) == pytest.approx(128)  # k = E: everything
    assert expected_unique_experts(256, 8, 10_000) == pytest.approx(256)
    assert expected_unique_experts(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))  # 3.5
    with pytest.raises(ValueError):
        expected_unique_experts(8, 9, 1)


@pytest.mark.parametrize(("experts", "k", "batch"), [(8, 2, 3), (128, 8, 16), (256, 8, 32), (128, 4, 1)])
def test_expected_unique_experts_matches_monte_carlo(experts, k, batch):
    rng = np.random.default_rng(20260105)
    trials = 1500
    # each token picks k distinct experts uniformly: the k smallest of E uniform keys
    picks = np.argpartition(rng.random((trials, batch, experts)), k - 1, axis=2)[:, :, :k]
    touched = np.zeros((trials, experts), dtype=bool)
    touched[np.arange(trials)[:, None], picks.reshape(trials, -1)] = True
    counts = touched.sum(axis=1)
    se = counts.std(ddof=1) / np.sqrt(trials)
    expected = expected_unique_experts(experts, k, batch)
    assert abs(counts.mean() - expected) <= 4 * se + 1e-9


# -- dtypes ----------------------------------------------------------------------------------------
def test_dtype_sizes():
    assert [get_dtype(n).bytes_per_element for n in ("bf16", "fp8", "fp4")] == [2, 1, 0.5]
    assert get_dtype("mxfp4").bytes_per_element == 4.25 / 8
    assert get_dtype("nvfp4").bytes_per_element == 4.5 / 8
    assert get_dtype("fp4").nbytes(3) == 2  # rounded up to whole bytes
    assert get_dtype("mxfp4").nbytes(33) == 17 + 2  # 132 bits of data, two started blocks
    assert get_dtype("fp8_b128").nbytes(128 * 128) == 128 * 128 + 4


def test_dtypes_are_registered_and_unknown_names_list_them():
    from sim.core.errors import MemwallError
    from sim.core.registry import names

    assert {"bf16", "fp8", "fp4", "mxfp4", "nvfp4"} <= set(names("dtype"))
    with pytest.raises(MemwallError, match=r"unknown dtype 'fp3'.*bf16"):
        get_dtype("fp3")
