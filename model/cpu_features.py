"""What the CPU can do, as this torch build reports it (settings that say "auto" follow these)."""

from __future__ import annotations

import torch


def amx_tiles() -> bool:
    """Whether this CPU has AMX tile units (bf16/int8 matrix tiles: Intel Xeon since Sapphire Rapids)."""
    return _cpu_has("_is_amx_tile_supported")


def avx512_bf16() -> bool:
    """Whether this CPU has AVX512-BF16 (bf16 dot products: Intel Cooper Lake and later, AMD Zen 4)."""
    return _cpu_has("_is_avx512_bf16_supported")


def int8_vnni() -> bool:
    """Whether this CPU has AVX512-VNNI (int8 dot products into 32 bits: Intel since Cascade Lake,
    AMD since Zen 4). Without it, int8 products go through 16-bit sums that can saturate."""
    return _cpu_has("_is_vnni_supported")


def _cpu_has(probe_name: str) -> bool:
    """torch.cpu's probe of that name says yes (False where this torch build has no such probe)."""
    probe = getattr(torch.cpu, probe_name, None)
    return bool(probe and probe())
