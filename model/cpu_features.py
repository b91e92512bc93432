"""What the CPU can do, as this torch build reports it (settings that say "auto" follow these)."""

from __future__ import annotations

from model.torch_internals import cpu_supports


def amx_tiles() -> bool:
    """Whether this CPU has AMX tile units (bf16/int8 matrix tiles: Intel Xeon since Sapphire Rapids)."""
    return cpu_supports("amx_tile")


def avx512_bf16() -> bool:
    """Whether this CPU has AVX512-BF16 (bf16 dot products: Intel Cooper Lake and later, AMD Zen 4)."""
    return cpu_supports("avx512_bf16")


def int8_vnni() -> bool:
    """Whether this CPU has AVX512-VNNI (int8 dot products into 32 bits: Intel since Cascade Lake,
    AMD since Zen 4). Without it, int8 products go through 16-bit sums that can saturate."""
    return cpu_supports("vnni")
