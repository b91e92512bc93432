"""Sibling projections that read the same input, computed as one int8 matrix product.

An attention block projects its input three times (q, k, v) and an MLP twice (gate, up), each a
separate int8 Linear: while decoding one token per step, each call streams a 1-3 MB matrix and
pays a fixed cost (activation quantization, thread fork/join, output dequantization) that small
matrices amortize poorly. Measured on the Qwen1.5-0.5B shapes, 2 threads, one row: 9.4 GB/s for a
1024x1024 matrix against 15-19 GB/s for 5632x1024. Stacking the rows of q/k/v (and of gate/up)
into one Linear computes the same numbers: weights are quantized per output row and the shared
input per call, so every row's codes, scales and activation rounding are what the separate
Linears had.

transformers' modules keep calling `self.q_proj(x)`, `self.k_proj(x)`, ... one after the other;
each is a `FusedPart` that asks the shared `FusedLinear` for its columns. The first part called
with an input runs the product; the others called with that same tensor object take their
columns of it (transformers passes one hidden-states tensor to each, back to back; inference
tensors carry no version counter to check further). Any other order (another tensor, one part
asked twice) runs the product again: slower, not wrong. The model runs on one thread at a time
(model.decode_scheduler), which this relies on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(slots=True)
class _Memo:
    """The last product and who has had their columns of it."""

    # The tensor itself, compared with `is`: held here, it cannot be freed and its identity
    # reused by another tensor, as an id() kept after it was freed could be.
    input: torch.Tensor | None = None
    output: torch.Tensor | None = None
    served: set[int] = field(default_factory=set)  # parts (by first column) given their columns


class FusedLinear(nn.Module):
    """One Linear over the stacked rows of several projections of the same input."""

    def __init__(self, linear: nn.Module, parts: int) -> None:
        super().__init__()
        self.linear = linear
        self._parts = parts
        # A plain object, not module attributes: nn.Module's __setattr__ (it checks for parameters,
        # buffers and submodules) costs ~9 us a call, five calls per product, 48 products a step.
        self._memo = _Memo()

    def columns(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        memo = self._memo
        if memo.input is not x or start in memo.served:
            memo.output = self.linear(x)
            memo.input, memo.served = x, set()
        output = memo.output
        memo.served.add(start)
        if len(memo.served) == self._parts:  # every part has its columns: hold nothing more
            memo.input = memo.output = None
        return output[..., start:stop]


class FusedPart(nn.Module):
    """Stands where one projection was: its rows of a FusedLinear (columns of the output)."""

    def __init__(self, fused: FusedLinear, start: int, stop: int) -> None:
        super().__init__()
        # Not registered as a submodule: the FusedLinear belongs to the block that owns the parts.
        self.__dict__["_fused"] = fused
        self.start, self.stop = start, stop

    @property
    def out_features(self) -> int:
        return self.stop - self.start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fused.columns(x, self.start, self.stop)

    def extra_repr(self) -> str:
        return f"rows {self.start}:{self.stop} of a fused projection"
