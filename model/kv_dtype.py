"""Which dtype the KV cache stores, and the attention that reads a cache stored narrower.

bf16 keys and values take half the memory of fp32 (~98 instead of ~196 KB per token for
Qwen1.5-0.5B): 8 streams of 192 tokens hold 150 MB less, and the prefix cache keeps twice the
conversation in the same MB. Whether attention over them is also faster depends on the CPU:
measured with 2 threads, on an Intel Xeon with AMX bf16 SDPA was 1.6x faster than fp32 for
8 x 192 decoding tokens and for a 41-token prefill over 1,533 cached ones (oneDNN tiles), while
on an AMD EPYC without AMX a bf16 cache cost 17% of single-stream decoding, and on one without
any bf16 instructions (AVX2 only) bf16 attention was 1.9x (one row) to 2.4x (8 rows) slower.
"auto" therefore stores bf16 only where AMX is present, and only with int8 weights, whose
activations already carry less precision than bf16 keeps; quantization "none" stays exact fp32
throughout.

Attention casts the fp32 queries to the cache's dtype, runs PyTorch's SDPA on that, and returns
fp32 to the rest of the layer. Keys and values are rounded once, when stored, so a conversation
continued from its cached KV sees exactly what a prefill from scratch would have stored.
"""

from __future__ import annotations

from typing import Any

import torch

from model.settings import KvCacheDtype

ATTENTION = "sdpa_stored_kv"  # the name the attention below is registered under in transformers


def amx_tiles() -> bool:
    """Whether this CPU has AMX tile units (bf16/int8 matrix tiles: Intel Xeon since Sapphire Rapids)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def resolve_kv_dtype(
    setting: KvCacheDtype, quantization: str, model_dtype: torch.dtype
) -> torch.dtype:
    """The dtype a cache stores keys and values in, for this setting and model on this CPU."""
    if setting == "auto":
        return torch.bfloat16 if quantization == "int8" and amx_tiles() else model_dtype
    return getattr(torch, setting)


def read_stored_kv(model: Any) -> None:
    """Make the model's attention read a cache stored in another dtype than its own (queries are
    cast to the cache's dtype, the output back); harmless for a cache in the model's dtype."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import sdpa_mask

    def attention(module, query, key, value, attention_mask, **kwargs):
        output, weights = sdpa_attention_forward(
            module, query.to(key.dtype), key, value, attention_mask, **kwargs
        )
        return output.to(query.dtype), weights

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    model.set_attn_implementation(ATTENTION)
