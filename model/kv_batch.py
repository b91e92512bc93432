"""The KV cache of the sequences decoding together: left-padded to one width, padding masked out.

Each row's cached tokens are the rightmost `length` columns: a row joins padded on the left to
the batch's width (or the batch is padded to the row's), and every step appends one column to
all rows. Keys carry their rotary position already, so padding changes no row's arithmetic
except through the mask, which hides it. Joins copy the cache once, into buffers with spare room
(model.slack_cache); leaves copy at most the rows that move into the leavers' places (keep());
steps append into the room and copy nothing, and when it runs out, make_room() re-lays the cache
out before the step.

Every re-layout of a batch of several rows frees buffers of sizes that no later buffer of the
batch fits in; glibc keeps them resident, and across a burst they added 100-250 MB to the peak.
The heap is trimmed each time TRIM_EVERY bytes of them have been freed (model.heap). Measured on
an AMD EPYC, 8 streams of 64 tokens after 128-token prompts: peak RSS 1,287-1,389 MB without
(4 runs), 1,147-1,155 MB with 32 MB (5 runs; 96 MB: 1,177-1,252), for up to ~5% of the 8
streams' throughput (4.7% in one test of 6 interleaved pairs, nothing measurable in another; 96 MB:
~2%): what a trim releases comes back through page faults.
A lone row's regrowths are not counted, nor its buffers when it leaves: they leave ~50 MB behind
over a reply, and trimming after lone replies slows the next prompt (model.decode_scheduler).
Counting them, a lone reply after 1,500 tokens of conversation would end with ~9 trims (28-51 ms,
against 0.2-0.6 ms without, 8 replies each on an AMD EPYC) while its caller's next message waits.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from model.heap import TrimEvery
from model.slack_cache import (
    SPARE_TOKENS,
    KVPairs,
    capacity,
    slack_cache,
    stored_bytes,
    with_room,
)

TRIM_EVERY = 32 * 2**20  # bytes of a batch's re-laid-out buffers freed between heap trims


class BatchedKV:
    def __init__(self) -> None:
        self.cache = slack_cache()
        self.lengths: list[int] = []  # cached tokens per row
        self.width = 0  # columns in the cache (the longest row, plus padding)
        self._freed = TrimEvery(TRIM_EVERY)

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, joining: list[tuple[KVPairs, int]]) -> None:
        """Append rows, each given as its cache (batch of one, no padding) and how many tokens it
        holds, in one re-layout however many join. The rows' lists are consumed: each layer's
        tensors are dropped once copied, so the old and new layouts never coexist whole."""
        width = max(self.width, *(length for _, length in joining))
        if not self.lengths and len(joining) == 1:
            self.cache = slack_cache(joining[0][0])  # a lone row's own buffers: no copy
        else:
            layers = (
                [layer for layer in self.cache.layers if _filled(layer)] if self.lengths else []
            )
            fresh: KVPairs = []  # the new layout's layers, when there was no batch to re-lay
            for i in range(len(joining[0][0])):
                parts = [(layers[i].keys, layers[i].values)] if layers else []
                for kv, _ in joining:
                    parts.append(kv[i])
                    kv[i] = None  # the copy below is the only one kept
                old = stored_bytes(parts)
                keys = _stacked([k for k, _ in parts], width)
                values = _stacked([v for _, v in parts], width)
                del parts
                if layers:
                    layers[i].keys, layers[i].values = keys, values
                else:
                    fresh.append((keys, values))
                self._freed.freed(old)
            if not layers:
                self.cache = slack_cache(fresh)
        self.lengths.extend(length for _, length in joining)
        self.width = width

    def keep(self, rows: list[int]) -> list[int]:
        """Keep only these rows (ascending indices); return them in their new order.

        Rows leave one or a few at a time, and re-laying out the whole batch each time copied
        every other row's cache (8 rows of ~200 tokens: ~300 MB) while they all waited. Instead,
        a kept row stays in its place, a leaving row's place below the new row count is taken by
        a kept row from above it (one row copied), and the batch becomes a view of its first
        rows: the buffers, their room and their padding stay. Only when every kept row has more
        than SPARE_TOKENS columns of padding on the left is the batch laid out anew without them.
        """
        if not rows:
            pairs = cache_pairs(self.cache)
            freed = stored_bytes(pairs) if any(self._counted(k) for k, _ in pairs) else 0
            del pairs
            self.cache, self.lengths, self.width = slack_cache(), [], 0
            self._freed.freed(freed)
            return []
        width = max(self.lengths[i] for i in rows)
        if self.width - width > SPARE_TOKENS:
            self._lay_out_anew(rows, width)
            return list(rows)
        order = list(range(len(rows)))
        kept = set(rows)
        holes = [j for j in order if j not in kept]
        for hole, source in zip(holes, rows[len(rows) - len(holes) :], strict=True):
            order[hole] = source
        for layer in filter(_filled, self.cache.layers):
            for hole in holes:
                layer.keys[hole] = layer.keys[order[hole]]
                layer.values[hole] = layer.values[order[hole]]
            layer.keys, layer.values = layer.keys[: len(rows)], layer.values[: len(rows)]
        self.lengths = [self.lengths[i] for i in order]
        return order

    def _lay_out_anew(self, rows: list[int], width: int) -> None:
        """Copy these rows into new buffers, without the columns to the left of `width`."""
        self.lengths = [self.lengths[i] for i in rows]
        index = torch.tensor(rows, dtype=torch.long)
        room = width + SPARE_TOKENS
        for layer in filter(_filled, self.cache.layers):
            old = stored_bytes([(layer.keys, layer.values)])
            layer.keys = with_room(layer.keys[index, :, self.width - width :], room)
            layer.values = with_room(layer.values[index, :, self.width - width :], room)
            self._freed.freed(old)
        self.width = width

    def row(self, i: int, room: int) -> KVPairs:
        """Row i's cached tokens (batch of one, no padding) with room for `room` more, e.g. for the
        prefix cache. Call it only for a row that leaves next (keep() drops it): the lone row's own
        tensors are handed over without a copy when they have the room."""
        length = self.lengths[i]
        pairs = cache_pairs(self.cache)
        if len(self.lengths) == 1 and self.width == length and pairs:
            keys = pairs[0][0]
            # Not a view into a batch's buffer: its departed rows' memory would go along.
            if _whole(keys) and capacity(keys) >= length + room:
                return pairs
        start = self.width - length
        return [
            (
                with_room(k[i : i + 1, :, start:], length + room),
                with_room(v[i : i + 1, :, start:], length + room),
            )
            for k, v in pairs
        ]

    def make_room(self) -> None:
        """Room for one more column in every layer, for the next step to append in place."""
        for layer in filter(_filled, self.cache.layers):
            if min(capacity(layer.keys), capacity(layer.values)) > self.width:
                continue
            old = stored_bytes([(layer.keys, layer.values)])
            counted = self._counted(layer.keys)
            layer.keys = with_room(layer.keys, self.width + SPARE_TOKENS)
            layer.values = with_room(layer.values, self.width + SPARE_TOKENS)
            if counted:
                self._freed.freed(old)

    def _counted(self, keys: torch.Tensor) -> bool:
        """Whether dropping this layer's buffer counts towards trims: a batch's does; a lone
        row's own does not (see the module docstring), unless it sits in a batch's buffer, which
        goes with it."""
        return len(self.lengths) > 1 or not _whole(keys)

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


def cache_pairs(cache: DynamicCache) -> KVPairs:
    """Each filled layer's keys and values, as tensors (no copy)."""
    return [(layer.keys, layer.values) for layer in cache.layers if _filled(layer)]


def _filled(layer: object) -> bool:
    keys = getattr(layer, "keys", None)
    return keys is not None and keys.numel() > 0


def _whole(tensor: torch.Tensor) -> bool:
    """Whether the rows of this [rows, heads, n, dim] slice span its whole buffer."""
    return tensor.shape[0] * tensor.stride(0) * tensor.element_size() == (
        tensor.untyped_storage().nbytes()
    )


def _stacked(parts: list[torch.Tensor], width: int) -> torch.Tensor:
    """The parts' rows in order, each right-aligned to `width` columns with zeros on the left, in
    a buffer with spare room. Only the padding is zeroed (masked out, but it must hold finite
    numbers: attention multiplies it by zero weights); the spare room is left untouched, so its
    pages are not made resident before tokens are appended there."""
    heads, dim = parts[0].shape[1], parts[0].shape[3]
    buffer = parts[0].new_empty((sum(p.shape[0] for p in parts), heads, width + SPARE_TOKENS, dim))
    first = 0
    for part in parts:
        last, start = first + part.shape[0], width - part.shape[2]
        buffer[first:last, :, :start] = 0
        buffer[first:last, :, start:width] = part
        first = last
    return buffer[:, :, :width]
