"""Compute-die presets with every number's source: datasheet peaks, and a kernel model fitted on
measured kernels.

The kernel-model values of ``h100-sxm`` and ``a100-sxm`` are the output of
:func:`sim.calibration.compute.fit_die` on Vidur's per-operator profiles (microsoft/vidur @ 7d475133,
``data/profiling/compute/{h100,a100}/*/*/mlp.csv``, MIT; the project's copy is
``../shared/data/validation``), with the datasheet memory bandwidth of the GPU the kernels ran on
(H100 SXM 3.35 TB/s, A100 SXM4 80 GB 2.039 TB/s). ``tests/validation/test_compute_calibration.py``
refits them and checks both the values and the per-operator error; ``memwall validate`` reports it.
Decode attention is not in those profiles; its parameters are an ASSUMPTION stated on each value.
"""

from __future__ import annotations

from sim.core.preset import Preset, register_preset

H100_FIT = "FIT (sim.calibration.compute, Vidur H100 mlp.csv profiles, 41,760 kernels at 3.35 TB/s): {}"
A100_FIT = "FIT (sim.calibration.compute, Vidur A100 mlp.csv profiles, 78,240 kernels at 2.039 TB/s): {}"
H100_ERR = {
    "gemm": "GEMM error median 6.2%, p90 19.5% (16,704 kernels)",
    "norm": "norm error median 8.9%, p90 20.3% (8,352 kernels)",
    "rope": "RoPE error median 1.1%, p90 10.9% (4,176 kernels)",
    "act": "SiLU-and-mul error median 2.0%, p90 11.3% (4,176 kernels)",
    "add": "residual-add error median 0.9%, p90 6.5% (4,176 kernels)",
    "emb": "embedding error median 3.8%, p90 8.6% (4,176 kernels)",
}
A100_ERR = {
    "gemm": "GEMM error median 4.7%, p90 12.7% (31,296 kernels)",
    "norm": "norm error median 7.9%, p90 19.4% (15,648 kernels)",
    "rope": "RoPE error median 2.8%, p90 16.6% (7,824 kernels)",
    "act": "SiLU-and-mul error median 2.5%, p90 12.3% (7,824 kernels)",
    "add": "residual-add error median 4.8%, p90 11.5% (7,824 kernels)",
    "emb": "embedding error median 3.8%, p90 10.5% (7,824 kernels)",
}


def _fitted(
    fit: str, err: dict[str, str], values: dict[str, dict[str, object]]
) -> dict[str, tuple[object, str]]:
    return {
        key: (value, fit.format(err[cls])) for cls, group in values.items() for key, value in group.items()
    }


H100_SXM = register_preset(
    Preset(
        name="h100-sxm",
        kind="die",
        description="NVIDIA H100 SXM5: datasheet peaks, 132 SMs, 50 MB L2, kernels fitted on measured ones",
        values={
            "peak_bf16": ("989TFLOPS", "H100 SXM datasheet, dense BF16 (PF 8.3)"),
            "peak_fp8": (
                "1979TFLOPS",
                "H100 SXM datasheet: 3,958 TFLOPS FP8 with 2:4 sparsity (PF 8.3) / 2 = dense",
            ),
            "peak_fp4": (
                "1979TFLOPS",
                "ASSUMPTION: Hopper has no FP4 units; FP4 weights run at the FP8 rate",
            ),
            "sram": ("50MiB", "H100 SXM: 50 MB L2 (NVIDIA H100 whitepaper)"),
            "sram_bandwidth": ("0B/s", "ASSUMPTION: 0 = a die-side buffer reads no faster than its memory"),
            "fitted_memory_latency": (
                "30.279ns",
                "DERIVED: the profiled kernels read HBM3; memwall's hbm3 preset answers an idle 64 B read "
                "in 30.279 ns, which the fitted fixed costs include",
            ),
            "static_power": ("70W", "ASSUMPTION: H100 SXM idles near 70 W in nvidia-smi"),
            "energy_per_flop_bf16": (
                "0.5pJ",
                "DERIVED/ASSUMPTION: 700 W TDP / 989 TFLOPS = 0.71 pJ/FLOP with static and memory power; "
                "~0.5 for the math",
            ),
            "energy_per_flop_fp8": ("0.25pJ", "ASSUMPTION: half of BF16"),
            "energy_per_flop_fp4": ("0.125pJ", "ASSUMPTION: half of FP8"),
            "units": (132, "H100 SXM5: 132 streaming multiprocessors (NVIDIA H100 whitepaper)"),
            **_fitted(
                H100_FIT,
                H100_ERR,
                {
                    "gemm": {
                        "gemm_tile_m": 64,
                        "gemm_tile_n": 64,
                        "gemm_fixed": 5781250,
                        "gemm_bw_efficiency": 1.0,
                        "gemm_compute_efficiency": 0.7437499999999999,
                        "gemm_overlap": 1.9852638244628906,
                    },
                    "norm": {"norm_fixed": 31250, "norm_floor": 5500000, "norm_bw_efficiency": 0.375},
                    "rope": {"rope_fixed": 1375000, "rope_floor": 3250000, "rope_bw_efficiency": 0.5},
                    "act": {
                        "act_fixed": 1687500,
                        "act_floor": 3000000,
                        "act_bw_efficiency": 0.5800781250000001,
                    },
                    "add": {"add_fixed": 0, "add_floor": 2000000, "add_bw_efficiency": 1.0},
                    "emb": {"emb_fixed": 2062500, "emb_floor": 2500000, "emb_bw_efficiency": 0.18603515625},
                },
            ),
            "gemm_floor": (0, "not fitted: no GEMM in the profiles is floor-bound"),
            "attn_decode_fixed": (
                5781250,
                "ASSUMPTION: decode attention streams the KV cache like a GEMV streams weights: "
                "the GEMM's fitted fixed time",
            ),
            "attn_decode_floor": (0, "ASSUMPTION: as the GEMM (not fitted)"),
            "attn_decode_bw_efficiency": (1.0, "ASSUMPTION: the GEMM's fitted bandwidth efficiency"),
            "attn_prefill_fixed": (5781250, "ASSUMPTION: the GEMM's fitted fixed time"),
            "attn_prefill_floor": (0, "ASSUMPTION: as the GEMM (not fitted)"),
            "attn_prefill_bw_efficiency": (1.0, "ASSUMPTION: the GEMM's fitted bandwidth efficiency"),
            "attn_prefill_compute_efficiency": (
                0.35,
                "FlashAttention-2 reaches 35% of peak on H100 (FlashAttention-3, Shah et al., "
                "arXiv 2407.08608); FlashAttention-3 reaches 75%",
            ),
        },
    )
)

A100_SXM = register_preset(
    Preset(
        name="a100-sxm",
        kind="die",
        description="NVIDIA A100 SXM4 80 GB: datasheet peaks, 108 SMs, 40 MB L2, fitted kernels",
        values={
            "peak_bf16": ("312TFLOPS", "A100 datasheet: 312 TFLOPS dense BF16"),
            "peak_fp8": (
                "312TFLOPS",
                "ASSUMPTION: Ampere has no FP8 units; FP8 weights run at the BF16 rate",
            ),
            "peak_fp4": ("312TFLOPS", "ASSUMPTION: no FP4 units; FP4 weights run at the BF16 rate"),
            "sram": ("40MiB", "A100: 40 MB L2 (NVIDIA A100 whitepaper)"),
            "sram_bandwidth": ("0B/s", "ASSUMPTION: 0 = a die-side buffer reads no faster than its memory"),
            "fitted_memory_latency": (
                "30.006ns",
                "DERIVED: the profiled kernels read HBM2e; memwall's hbm2e preset answers an idle 64 B read "
                "in 30.006 ns, which the fitted fixed costs include",
            ),
            "static_power": ("55W", "ASSUMPTION: A100 SXM idles near 50-60 W in nvidia-smi"),
            "energy_per_flop_bf16": (
                "0.9pJ",
                "DERIVED/ASSUMPTION: 400 W TDP / 312 TFLOPS = 1.28 pJ/FLOP with static and memory power; "
                "~0.7 of it for the math, as on H100",
            ),
            "energy_per_flop_fp8": ("0.9pJ", "ASSUMPTION: no FP8 units, the BF16 energy"),
            "energy_per_flop_fp4": ("0.9pJ", "ASSUMPTION: no FP4 units, the BF16 energy"),
            "units": (108, "A100: 108 streaming multiprocessors (NVIDIA A100 whitepaper)"),
            **_fitted(
                A100_FIT,
                A100_ERR,
                {
                    "gemm": {
                        "gemm_tile_m": 16,
                        "gemm_tile_n": 64,
                        "gemm_fixed": 5031250,
                        "gemm_bw_efficiency": 0.8336870544778439,
                        "gemm_compute_efficiency": 0.7331542968749999,
                        "gemm_overlap": 1.6018485029640033,
                    },
                    "norm": {
                        "norm_fixed": 0,
                        "norm_floor": 8250000,
                        "norm_bw_efficiency": 0.36508021354675296,
                    },
                    "rope": {
                        "rope_fixed": 1500000,
                        "rope_floor": 4500000,
                        "rope_bw_efficiency": 0.4333267211914063,
                    },
                    "act": {
                        "act_fixed": 1406250,
                        "act_floor": 4500000,
                        "act_bw_efficiency": 0.49603271484375,
                    },
                    "add": {
                        "add_fixed": 31250,
                        "add_floor": 3250000,
                        "add_bw_efficiency": 0.9244711875915529,
                    },
                    "emb": {
                        "emb_fixed": 750000,
                        "emb_floor": 5500000,
                        "emb_bw_efficiency": 0.15234375000000003,
                    },
                },
            ),
            "gemm_floor": (0, "not fitted: no GEMM in the profiles is floor-bound"),
            "attn_decode_fixed": (
                5031250,
                "ASSUMPTION: decode attention streams the KV cache like a GEMV streams weights: "
                "the GEMM's fitted fixed time",
            ),
            "attn_decode_floor": (0, "ASSUMPTION: as the GEMM (not fitted)"),
            "attn_decode_bw_efficiency": (
                0.8336870544778439,
                "ASSUMPTION: the GEMM's fitted bandwidth efficiency",
            ),
            "attn_prefill_fixed": (5031250, "ASSUMPTION: the GEMM's fitted fixed time"),
            "attn_prefill_floor": (0, "ASSUMPTION: as the GEMM (not fitted)"),
            "attn_prefill_bw_efficiency": (
                0.8336870544778439,
                "ASSUMPTION: the GEMM's fitted bandwidth efficiency",
            ),
            "attn_prefill_compute_efficiency": (
                0.615,
                "FlashAttention-2 reaches 50-73% of peak on A100 (Dao, arXiv 2307.08691); the midpoint",
            ),
        },
    )
)
