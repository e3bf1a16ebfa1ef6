"""Number formats for weights and KV cache, registered by name under kind ``dtype``.

A :class:`Dtype` is a storage format: bits per element, optionally with one shared scale per
``block`` elements (microscaling formats). Its :meth:`Dtype.nbytes` is the storage of ``n``
elements, scales included, rounded up to whole bytes::

    get_dtype("bf16").nbytes(4096)    # 8192
    get_dtype("fp4").nbytes(4096)     # 2048   (bare 4-bit elements, no scales)
    get_dtype("mxfp4").nbytes(4096)   # 2176   (+ 128 one-byte E8M0 scales, one per 32 elements)

A new format is one ``register("dtype", name)(Dtype(...))`` call (in or out of tree).
Per-tensor scales (one FP32 per tensor, as in plain FP8 or NVFP4's second level) are ignored: a few
bytes per tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.core.errors import ConfigError
from sim.core.registry import REGISTRY, lookup, register


@dataclass(frozen=True)
class Dtype:
    """A storage format: ``bits`` per element plus one ``scale_bits`` scale per ``block`` elements."""

    name: str
    bits: int
    description: str
    block: int = 0  # elements sharing one scale; 0 = no block scales
    scale_bits: int = 0

    def __post_init__(self) -> None:
        if (
            self.bits <= 0
            or self.block < 0
            or self.scale_bits < 0
            or (self.block == 0) != (self.scale_bits == 0)
        ):
            raise ValueError(f"dtype {self.name!r}: bits > 0, and block and scale_bits both 0 or both > 0")

    def nbytes(self, elements: int) -> int:
        """Bytes to store ``elements`` values: data plus one scale per started block, rounded up."""
        if elements < 0:
            raise ValueError(f"negative element count {elements}")
        bits = elements * self.bits
        if self.block:
            bits += -(-elements // self.block) * self.scale_bits
        return -(-bits // 8)

    @property
    def bytes_per_element(self) -> float:
        """Average bytes per element for long tensors (scales amortised): 2, 1, 0.5, 0.53125, ..."""
        scale = self.scale_bits / self.block if self.block else 0.0
        return (self.bits + scale) / 8


DtypeLike = str | Dtype

BUILTIN_DTYPES = (
    Dtype("fp32", 32, "IEEE binary32"),
    Dtype("bf16", 16, "bfloat16 (8-bit exponent, 7-bit mantissa); 2 bytes per element"),
    Dtype("fp16", 16, "IEEE binary16; 2 bytes per element"),
    Dtype("fp8", 8, "FP8 (E4M3 or E5M2) with a per-tensor scale (ignored); 1 byte per element"),
    Dtype(
        "fp8_b128",
        8,
        "FP8 E4M3 with one FP32 scale per 128x128 weight block, as DeepSeek-V3 is released "
        "(scales counted per 16384 elements)",
        block=128 * 128,
        scale_bits=32,
    ),
    Dtype("fp4", 4, "bare 4-bit elements (E2M1), no block scales; 0.5 byte per element"),
    Dtype(
        "mxfp4",
        4,
        "OCP Microscaling MXFP4: E2M1 elements, one 8-bit E8M0 scale per 32 (4.25 bits/element); "
        "gpt-oss experts are released in it",
        block=32,
        scale_bits=8,
    ),
    Dtype(
        "nvfp4",
        4,
        "NVIDIA NVFP4: E2M1 elements, one FP8 E4M3 scale per 16 (4.5 bits/element; the per-tensor "
        "FP32 scale is ignored)",
        block=16,
        scale_bits=8,
    ),
)

for _dtype in BUILTIN_DTYPES:
    register("dtype", _dtype.name)(_dtype)


def get_dtype(dtype: DtypeLike) -> Dtype:
    """The :class:`Dtype` registered as ``dtype`` (a Dtype passes through).

    Names registered by this module resolve without loading every other built-in module; other
    names go through the registry (which loads plugins) and an unknown one lists the known names.
    """
    if isinstance(dtype, Dtype):
        return dtype
    if not isinstance(dtype, str):
        raise ConfigError(f"expected a dtype name such as 'bf16', found {dtype!r}", where="dtype")
    found = REGISTRY.entries.get("dtype", {}).get(dtype)
    if found is None:
        found = lookup("dtype", dtype)
    if not isinstance(found, Dtype):  # pragma: no cover - registry misuse by a plugin
        raise ConfigError(f"{dtype!r} is registered as a dtype but is not a Dtype", where="dtype")
    return found
