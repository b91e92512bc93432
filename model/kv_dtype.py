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

Prompt products (prompt_products): a fp32 cache can still have a prompt's attention over it
computed in bf16, where that is what pays. A follow-up's ~41 new tokens over ~1,533 cached ones
cost ~3 ms per layer in fp32 SDPA on an AMD EPYC with AVX512-BF16 but no AMX (~75 of a ~130 ms
prefill): MKL's fp32 products run at ~95 GFLOPS there, oneDNN's bf16 ones twice as fast, while
PyTorch's bf16 SDPA is no faster than fp32 and a bf16 cache slows short decoding steps (small bf16
products cost more than fp32 ones). So keys and values stay fp32, and only a prompt over cached
tokens takes matmul-softmax-matmul in bf16 (keys, values, scores and weights rounded to bf16;
accumulation in fp32 inside oneDNN): ~2.2 instead of ~3.5 ms per layer in the engine. Decoding
steps and a prompt with nothing cached (SDPA's causal kernel) keep fp32 SDPA. "auto" turns it on
with int8 weights on CPUs with AVX512-BF16 and without AMX (with AMX the cache itself is bf16).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch

from model.cpu_features import amx_tiles, avx512_bf16
from model.settings import KvCacheDtype, PromptAttentionDtype

ATTENTION = "sdpa_stored_kv"  # the name the attention below is registered under in transformers
# A prompt whose narrow scores would take more than this goes to SDPA, which works in blocks.
NARROW_SCORES_BYTES = 16 * 2**20
# The dtype of the current thread's prompt products over a fp32 cache; None: as stored.
_prompt_dtype: ContextVar[torch.dtype | None] = ContextVar("prompt_dtype", default=None)
# Per thread: buffers the narrow copies of keys and values are written into (see _scratch_copy).
_scratch = threading.local()


def resolve_kv_dtype(
    setting: KvCacheDtype, quantization: str, model_dtype: torch.dtype
) -> torch.dtype:
    """The dtype a cache stores keys and values in, for this setting and model on this CPU."""
    if setting == "auto":
        return torch.bfloat16 if quantization == "int8" and amx_tiles() else model_dtype
    return getattr(torch, setting)


def resolve_prompt_dtype(
    setting: PromptAttentionDtype, quantization: str, kv_dtype: torch.dtype
) -> torch.dtype | None:
    """The dtype of a prompt's attention products over a fp32 cache; None: fp32, as stored."""
    if kv_dtype != torch.float32:
        return None  # a narrower cache already has narrower products
    if setting == "auto":
        wanted = quantization == "int8" and avx512_bf16() and not amx_tiles()
        return torch.bfloat16 if wanted else None
    return None if setting == "float32" else getattr(torch, setting)


@contextmanager
def prompt_products(dtype: torch.dtype | None) -> Iterator[None]:
    """Within this block, this thread's prompts over cached tokens take products in `dtype`."""
    token = _prompt_dtype.set(dtype)
    try:
        yield
    finally:
        _prompt_dtype.reset(token)


def use_engine_attention(model: Any) -> None:
    """Make the model's attention the engine's: it reads a cache stored in another dtype than
    the model's own (queries are cast to the cache's dtype, the output back), honours
    prompt_products, and runs a batched decoding step row by row (_row_by_row); SDPA otherwise."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import sdpa_mask

    def attention(module, query, key, value, attention_mask, **kwargs):
        if query.shape[0] > 1 and query.shape[2] == 1 and attention_mask is not None:
            return _row_by_row(one_row, module, query, key, value, attention_mask, **kwargs)
        return one_row(module, query, key, value, attention_mask, **kwargs)

    def one_row(module, query, key, value, attention_mask, **kwargs):
        if key.dtype != query.dtype:
            output, weights = sdpa_attention_forward(
                module, query.to(key.dtype), key, value, attention_mask, **kwargs
            )
            return output.to(query.dtype), weights
        narrow = _prompt_dtype.get()
        if narrow is not None and _over_cached_tokens(query, key, attention_mask, narrow):
            scaling = kwargs.get("scaling")
            output = narrow_attention(module, query, key, value, attention_mask, narrow, scaling)
            return output, None
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    model.set_attn_implementation(ATTENTION)


def _row_by_row(attend, module, query, key, value, mask, **kwargs):
    """A batched decoding step's attention, each row over its own tokens only, as it is alone.

    Rows are left-padded to the batch's width (model.kv_batch). Over the padded width SDPA
    splits and sums the keys differently than over a row's own, and the last bits of its output
    differ (~1e-5 in fp32); int8's rounding of the next products can turn that into a different
    greedy token at a near-tie, so a user's reply would depend on who else is being answered.
    One call per row over exactly the columns it has alone (its mask all true: none is passed,
    as for a lone row) gives each row the numbers it gets alone."""
    rows = []
    kept = mask.reshape(mask.shape[0], -1, mask.shape[-1])[:, -1, :]  # the new token's row
    for row, count in enumerate(kept.sum(dim=-1).tolist()):
        start = key.shape[2] - int(count)
        one = slice(row, row + 1)
        output, _ = attend(
            module, query[one], key[one, :, start:], value[one, :, start:], None, **kwargs
        )
        rows.append(output)
    return torch.cat(rows), None


def _over_cached_tokens(
    query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, dtype: torch.dtype
) -> bool:
    """A prompt (several queries) over more keys than itself, with a boolean mask (a cache hit),
    whose scores in `dtype` stay small enough to hold at once."""
    batch, heads, queries, _ = query.shape
    keys = key.shape[2]
    return (
        1 < queries < keys
        and mask is not None
        and mask.dtype == torch.bool
        and batch * heads * queries * keys * dtype.itemsize <= NARROW_SCORES_BYTES
    )


def narrow_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor,
    dtype: torch.dtype,
    scaling: float | None = None,
) -> torch.Tensor:
    """Matmul-softmax-matmul with products in `dtype`; [batch, queries, heads, dim] in query's dtype."""
    from transformers.integrations.sdpa_attention import repeat_kv

    groups = getattr(module, "num_key_value_groups", 1)
    queries, keys = query.shape[2], key.shape[2]  # before the copies: the same shapes
    key = repeat_kv(_scratch_copy(0, key, dtype), groups)
    value = repeat_kv(_scratch_copy(1, value, dtype), groups)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul((query * scale).to(dtype), key.transpose(-1, -2))
    hidden = mask[..., :keys].logical_not()
    lowest = torch.finfo(dtype).min  # finite: a row with every key hidden stays a number
    cached = keys - queries
    if hidden[..., :cached].any():
        scores.masked_fill_(hidden, lowest)
    else:  # every new token sees every cached one: only the new block is (causally) masked
        scores[..., cached:].masked_fill_(hidden[..., cached:], lowest)
    output = torch.matmul(torch.softmax(scores, dim=-1), value)
    return output.to(query.dtype).transpose(1, 2).contiguous()


def _scratch_copy(slot: int, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`tensor` in `dtype` and contiguous, written into this thread's buffer `slot`, which grows
    and is reused (no copy if it already is both).

    Cached keys and values are slices of buffers with room to grow (model.slack_cache), and a
    bf16 matrix product over such a slice copies it into a fresh allocation first; so does a
    conversion from fp32. A fresh multi-MB allocation is served from fresh pages, and faulting
    them in cost more than the products: 54 queries over 1,554 bf16 keys and values, one layer,
    1.2 ms from the slices, 0.6 ms copied into reused buffers first (AMD EPYC, Zen 5, 2
    threads). Two buffers of the longest conversation's keys of one layer stay allocated (~4 MB
    each at 2,048 tokens of Qwen1.5-0.5B in bf16).
    """
    if tensor.dtype == dtype and tensor.is_contiguous():
        return tensor
    # Normal tensors, not inference tensors: a buffer made under inference_mode could not be
    # written by a later call made outside it.
    with torch.inference_mode(False):
        buffers: list[torch.Tensor] = getattr(_scratch, "buffers", None) or [torch.empty(0)] * 2
        _scratch.buffers = buffers
        if buffers[slot].dtype != dtype or buffers[slot].numel() < tensor.numel():
            buffers[slot] = torch.empty(tensor.numel(), dtype=dtype)
        return buffers[slot][: tensor.numel()].view(tensor.shape).copy_(tensor)
