"""A KV cache whose tensors have spare columns, so appending tokens writes in place.

transformers' DynamicLayer appends with torch.cat: every decoding step, and a follow-up turn's
prefill after a cached conversation, copies the whole cache into freshly allocated memory. On
these CPUs that copy was 40% of a follow-up's prefill after 1,500 cached tokens (57 of 143 ms,
mostly page faults on the new allocation) and grows with every token decoded.

Here a layer's keys and values are [:, :, :n] slices of buffers with room for more. The room is
read from the slice's strides (a slice of a contiguous [batch, heads, capacity, dim] buffer has
stride(1) == capacity * dim), so tensors can be handed around as plain tensors (the prefix cache
keeps them, BatchedKV re-pads them) and whoever appends next finds the room without bookkeeping.
A tensor without room (anything contiguous) is copied once into a buffer with SPARE_TOKENS more.

Only one holder may append to a buffer: a slice handed to someone else must not stay in use here.
"""

from __future__ import annotations

import functools

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

KVPairs = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [batch, heads, n, dim]

SPARE_TOKENS = 32  # room added when a buffer is (re)allocated: one copy per 32 decoded tokens


class SlackLayer(DynamicLayer):
    """A DynamicLayer that appends into spare room instead of concatenating, storing `dtype`."""

    def __init__(self, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.store_dtype = dtype  # None: as the model computes them

    @classmethod
    def holding(cls, keys: torch.Tensor, values: torch.Tensor) -> SlackLayer:
        layer = cls(keys.dtype)
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
        return layer

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.store_dtype is not None:
            key_states = key_states.to(self.store_dtype)
            value_states = value_states.to(self.store_dtype)
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys = append(self.keys, key_states)
        self.values = append(self.values, value_states)
        return self.keys, self.values


def slack_cache(kv: KVPairs | None = None, dtype: torch.dtype | None = None) -> DynamicCache:
    """A cache over these tensors (no copy), whose layers append into spare room; layers the model
    adds store `dtype` (None: the model's own)."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = functools.partial(SlackLayer, dtype)
    cache.layers = [SlackLayer.holding(k, v) for k, v in kv or []]
    return cache


def append(current: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """`current` followed by `new` along the token axis, in `current`'s spare room if it fits."""
    batch, heads, added, dim = new.shape
    filled = current.shape[2] if current.dim() == 4 else 0
    total = filled + added
    if filled and current.shape[0] == batch and capacity(current) >= total:
        grown = current.as_strided((batch, heads, total, dim), current.stride())
    else:
        grown = with_room(current if filled else new[:, :, :0], total + SPARE_TOKENS)
        grown = grown.as_strided((batch, heads, total, dim), grown.stride())
    grown[:, :, filled:] = new
    return grown


def with_room(tensor: torch.Tensor, tokens: int) -> torch.Tensor:
    """A copy of `tensor` [batch, heads, n, dim] as the first n columns of a `tokens`-column buffer."""
    batch, heads, filled, dim = tensor.shape
    buffer = tensor.new_empty((batch, heads, max(tokens, filled), dim))
    if filled:
        buffer[:, :, :filled] = tensor
    return buffer[:, :, :filled]


def with_room_for(kv: KVPairs, tokens: int) -> KVPairs:
    """These pairs with room for `tokens` more in every buffer: as they are where they have it, else
    copied once into buffers that do (so whoever appends next does not copy the whole cache)."""
    return [
        (k, v)
        if min(capacity(k), capacity(v)) >= k.shape[2] + tokens
        else (with_room(k, k.shape[2] + tokens), with_room(v, v.shape[2] + tokens))
        for k, v in kv
    ]


def capacity(tensor: torch.Tensor) -> int:
    """Columns the buffer behind a [batch, heads, n, dim] slice holds per head (n if no room)."""
    batch, heads, filled, dim = tensor.shape
    stride = tensor.stride()
    if stride[3] != 1 or stride[2] != dim or stride[1] % dim:
        return filled
    columns = stride[1] // dim
    # The slice must start at column 0 of each head's block, blocks laid out batch-major.
    if columns < filled or stride[0] != heads * stride[1] or tensor.storage_offset() % stride[1]:
        return filled
    end = tensor.storage_offset() + batch * stride[0]  # elements, up to the last row's end
    if end * tensor.element_size() > tensor.untyped_storage().nbytes():
        return filled
    return columns


def stored_bytes(kv: KVPairs) -> int:
    """Memory the tensors keep alive, spare room included."""
    return sum(k.untyped_storage().nbytes() + v.untyped_storage().nbytes() for k, v in kv)
