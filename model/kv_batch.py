"""The KV cache of the sequences decoding together: left-padded to one width, padding masked out.

Each row's cached tokens are the rightmost `length` columns: a row joins padded on the left to
the batch's width (or the batch is padded to the row's), and every step appends one column to
all rows. Keys carry their rotary position already, so padding changes no row's arithmetic
except through the mask, which hides it. Joins and leaves copy the cache once; steps do not.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from model.prefix_cache import KVPairs


class BatchedKV:
    def __init__(self) -> None:
        self.cache = DynamicCache()
        self.lengths: list[int] = []  # cached tokens per row
        self.width = 0  # columns in the cache (the longest row, plus padding)

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, kv: KVPairs, length: int) -> None:
        """Append a row whose cache (batch of one, no padding) holds `length` tokens."""
        width = max(self.width, length)
        if not self.lengths:
            self.cache = cache_of(kv)
        else:
            # Layer by layer, so only one layer's old and new tensors coexist.
            layers = [layer for layer in self.cache.layers if _filled(layer)]
            for layer, (k, v) in zip(layers, kv, strict=True):
                layer.keys = torch.cat([_pad_left(layer.keys, width), _pad_left(k, width)])
                layer.values = torch.cat([_pad_left(layer.values, width), _pad_left(v, width)])
        self.lengths.append(length)
        self.width = width

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows, and drop leading columns that are padding in every kept row."""
        self.lengths = [self.lengths[i] for i in rows]
        width = max(self.lengths, default=0)
        index = torch.tensor(rows, dtype=torch.long)
        for layer in filter(_filled, self.cache.layers):
            layer.keys = layer.keys[index, :, self.width - width :].contiguous()
            layer.values = layer.values[index, :, self.width - width :].contiguous()
        self.width = width
        if not self.lengths:
            self.cache = DynamicCache()

    def row(self, i: int) -> KVPairs:
        """A copy of row i's cached tokens (batch of one, no padding), e.g. for the prefix cache."""
        start = self.width - self.lengths[i]
        return [
            (k[i : i + 1, :, start:].clone(), v[i : i + 1, :, start:].clone())
            for k, v in _pairs(self.cache)
        ]

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention mask [rows, width + 1] and position ids [rows, 1] for one new token per row."""
        mask = torch.zeros((len(self.lengths), self.width + 1), dtype=torch.long)
        for i, length in enumerate(self.lengths):
            mask[i, self.width - length :] = 1
        positions = torch.tensor([[length] for length in self.lengths], dtype=torch.long)
        return mask, positions

    def advance(self) -> None:
        """Record the column the model's forward pass just appended to every row."""
        self.lengths = [length + 1 for length in self.lengths]
        self.width += 1


def cache_of(kv: KVPairs) -> DynamicCache:
    """A DynamicCache over these tensors without copying them (the next forward pass appends)."""
    if not kv:
        return DynamicCache()
    # Built from one-token slices (DynamicCache copies what it is given), then pointed at the rest.
    cache = DynamicCache(ddp_cache_data=[(k[:, :, :1], v[:, :, :1]) for k, v in kv])
    for layer, (k, v) in zip(cache.layers, kv, strict=True):
        layer.keys, layer.values = k, v
    return cache


def _pairs(cache: DynamicCache) -> KVPairs:
    return [(layer.keys, layer.values) for layer in cache.layers if _filled(layer)]


def _filled(layer: object) -> bool:
    keys = getattr(layer, "keys", None)
    return keys is not None and keys.numel() > 0


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - tensor.shape[2]
    if missing == 0:
        return tensor
    pad = tensor.new_zeros((tensor.shape[0], tensor.shape[1], missing, tensor.shape[3]))
    return torch.cat([pad, tensor], dim=2)
