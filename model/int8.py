"""Load a causal LM straight into int8, one weight at a time, so no fp32 copy is ever resident.

Every nn.Linear becomes an Int8Linear: weights int8 with one scale per output row, after a
block-Hadamard rotation of their inputs (model.rotation); at run time each token's activations
get the same rotation, then are rounded twice with one scale per token: to 8-bit codes, then
what that rounding lost, in codes 1/254 as fine. Both go through one int8 product as twice the
rows (model.int8_products: exact 32-bit sums) and are added back, so an activation keeps ~15
bits for the price of 8-bit products. q/k/v and gate/up are stacked into one such Linear each
(model.fused_linear: same numbers, fewer and bigger products); a tied output projection gets its
own int8 copy of the embedding matrix. The token embedding itself is not loaded: looked-up rows
are read from the weights file (exact, none of it resident).

Why this scheme, by perplexity against fp32 on real weights (SmolLM2-135M-Instruct through the
engine's own prefill, bench/quality.py; GPL-3 / Apache-2.0 / a Chinese text):
- one activation scale per call in 7 bits, what PyTorch's dynamic int8 Linear does: +182% on
  GPL-3 alone;
- one 8-bit rounding per token: +5% unrotated; rotated in blocks of 64, +0.56% / +0.70% /
  +1.17%: the Chinese text misses the 1% goal, and activation and weight rounding each cost about
  half of that;
- the two roundings per token (this module): +0.48% / +0.13% / +0.63%, what int8 weights alone
  cost. Unrotated, the same is +0.48% / +1.04% / +0.59%; blocks of 32, +0.53% / +0.38% / +0.76%.
Decoding a token is bound by reading the weights, and two rows cost what one does there; a
prompt's products are bound by arithmetic and cost about twice (on oneDNN with AMX, 56 ms for
a 128-token prompt's 96 block products, twice the rows included).
One scale per token also makes each row's result independent of the other rows of a batch: a
user's reply does not depend on who else is being answered in the same decoding step.

fbgemm sums pairs of 8-bit products in 16 bits where the CPU has no VNNI (AVX2 only), which can
saturate with full 8-bit codes; there codes keep 7 bits (model.int8_products.activation_bits),
still ~13 bits in all.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from model.fused_linear import FusedLinear, FusedPart
from model.heap import return_freed_memory
from model.int8_products import Backend, Product, activation_bits, default_backend, pack
from model.rotation import block_size, hadamard, rotate

ROW_CHUNK = 8192  # rows of a big matrix (the vocabulary) read and quantized at a time
BLOCK_ROWS = 32768  # rows packed at a time: bounds the packing's transient memory
FUSED_PROJECTIONS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))  # same input each
TINY = 1e-30  # a row of zeros keeps a finite scale (and gives zeros)


@dataclass(frozen=True)
class Recipe:
    """How a model's Linears are made int8: bits of an activation code, and the product's library."""

    bits: int
    backend: Backend


class Int8Linear(nn.Module):
    """x W^T + b with int8 weights (one scale per output row) and activations rounded per token,
    twice: the codes, then what rounding lost.

    `products` hold the packed rotated weights (model.int8_products), one per BLOCK_ROWS output
    rows (a vocabulary-sized head is packed in pieces; a token is rotated and rounded once).
    """

    def __init__(
        self,
        products: list[Product],
        in_features: int,
        out_features: int,
        bias: torch.Tensor | None,
        bits: int,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # Plain attributes: a library's packed layout is no state to save or move between devices.
        self._products = products
        self._rotation = hadamard(block_size(in_features))
        self._bias = bias
        self._levels = 2 ** (bits - 1) - 1  # 127: codes -127..127, symmetric like the weights'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels, count = self._levels, x.numel() // self.in_features
        rows = rotate(x.reshape(count, self.in_features), self._rotation)
        # linalg's inf-norm and aminmax over dim 1 are 10x and 3x slower here.
        step = rows.abs().amax(dim=1, keepdim=True).clamp_min_(TINY).div_(levels)  # each row's
        rows.div_(step)  # each row within [-levels, levels]
        # Codes, then the rounding's loss (at most half a code) in codes of 1 / (2 * levels):
        # ~15 bits per value for one product call on twice the rows (see the module's docstring).
        both = torch.empty((2 * count, self.in_features))
        codes, lost = both[:count], both[count:]
        torch.round(rows, out=codes)
        torch.sub(rows, codes, out=lost).mul_(2 * levels).round_()
        both = both.to(self._products[0].input_dtype)
        outs = [product(both) for product in self._products]
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        out = out[:count].add_(out[count:], alpha=0.5 / levels).mul_(step)
        if self._bias is not None:
            out.add_(self._bias)
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class FileEmbedding(nn.Module):
    """Embedding lookup that reads the looked-up rows from the weights file (positional reads).

    Nothing of the matrix is held by this process: 155 MB of int8 codes (311 MB in bf16) less
    resident, for one small read per token (a 128-token prompt: 128 reads of 2-4 KB, well under a
    millisecond) and exact rows. The kernel's page cache keeps the rows read, shared and dropped
    under memory pressure; it is not this process's memory. Not a memory map: every mapped page
    counts in the process's RSS, and the kernel maps cached neighbours with each faulted page, so
    scattered lookups made the whole matrix resident over time (measured).
    """

    def __init__(self, stored: _StoredTensor) -> None:
        super().__init__()
        self._stored = stored.reopened()  # its own read-only file, open as long as the module lives

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        unique, inverse = torch.unique(input_ids, return_inverse=True)
        rows = torch.stack([self._stored.row(int(i)) for i in unique])
        return rows.to(torch.float32)[inverse]


def load_int8_model(
    model_dir: Path, bits: int | None = None, backend: Backend | None = None
) -> Any:
    """Build the model with empty weights, then fill it from safetensors, quantizing as it goes.
    `bits` of an activation code and the product's `backend`: None for this CPU's own
    (model.int8_products)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with _open_weights(Path(model_dir)) as weights:
        tied = bool(getattr(config, "tie_word_embeddings", False))
        recipe = Recipe(bits or activation_bits(), backend or default_backend())
        _fill(model, weights, tied=tied, recipe=recipe)
    if (Path(model_dir) / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(model_dir)
    left = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if left:
        raise ValueError(f"weights missing from {model_dir}: {left[:3]}")
    return model.eval()


def _fill(model: nn.Module, weights: dict[str, _StoredTensor], tied: bool, recipe: Recipe) -> None:
    """Every weight from the file: Linears in int8 (q/k/v and gate/up stacked), norms in fp32."""
    embed_name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    head_name = next(n for n, m in model.named_modules() if m is model.get_output_embeddings())
    _replace(model, embed_name, FileEmbedding(weights[f"{embed_name}.weight"]))
    if tied or f"{head_name}.weight" not in weights:
        _replace(model, head_name, _int8_linear(weights, [(f"{embed_name}.weight", None)], recipe))
    _fuse_projections(model, weights, recipe)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and module.weight.device.type == "meta":
            bias = f"{name}.bias" if module.bias is not None else None
            _replace(model, name, _int8_linear(weights, [(f"{name}.weight", bias)], recipe))
    for name, param in list(model.named_parameters()):
        if param.device.type == "meta":  # norms: small, kept in fp32
            owner, _, attr = name.rpartition(".")
            tensor = _read(weights, name).to(torch.float32)
            setattr(model.get_submodule(owner), attr, nn.Parameter(tensor, requires_grad=False))


def _fuse_projections(model: nn.Module, weights: dict[str, _StoredTensor], recipe: Recipe) -> None:
    """q/k/v and gate/up of every block as one int8 Linear each (model.fused_linear)."""
    for owner_name, owner in list(model.named_modules()):
        for group in FUSED_PROJECTIONS:
            members = [getattr(owner, name, None) for name in group]
            if not all(
                isinstance(m, nn.Linear) and m.weight.device.type == "meta" for m in members
            ):
                continue
            prefix = f"{owner_name}." if owner_name else ""
            stored = [
                (f"{prefix}{name}.weight", f"{prefix}{name}.bias" if m.bias is not None else None)
                for name, m in zip(group, members, strict=True)
            ]
            fused = FusedLinear(_int8_linear(weights, stored, recipe), len(group))
            owner.add_module("fused_" + "_".join(name.split("_")[0] for name in group), fused)
            start = 0
            for name, m in zip(group, members, strict=True):
                setattr(owner, name, FusedPart(fused, start, start + m.out_features))
                start += m.out_features


def _int8_linear(
    weights: dict[str, _StoredTensor], members: list[tuple[str, str | None]], recipe: Recipe
) -> Int8Linear:
    """One Int8Linear over the rows of these stored weights stacked in order (weight name, bias
    name or None); packed BLOCK_ROWS rows at a time, the load's temporaries handed back to the
    OS before returning (model.heap)."""
    stored = [weights[name] for name, _ in members]
    in_features = stored[0].shape[1]
    rotation = hadamard(block_size(in_features))
    biases = [
        _read(weights, bias).to(torch.float32) if bias else torch.zeros(tensor.shape[0])
        for tensor, (_, bias) in zip(stored, members, strict=True)
    ]
    packed = []
    for piece in _row_pieces(stored):
        codes, scales = zip(*(_quantize_rows(t, a, b, rotation) for t, a, b in piece), strict=True)
        packed.append(pack(torch.cat(codes), torch.cat(scales), recipe.backend))
        del codes, scales
        return_freed_memory()
    bias = None if all(bias is None for _, bias in members) else torch.cat(biases)
    out_features = sum(tensor.shape[0] for tensor in stored)
    return Int8Linear(packed, in_features, out_features, bias, recipe.bits)


def _row_pieces(stored: list[_StoredTensor]) -> Iterator[list[tuple[_StoredTensor, int, int]]]:
    """The stacked rows of `stored` as consecutive pieces of at most BLOCK_ROWS rows each."""
    piece: list[tuple[_StoredTensor, int, int]] = []
    room = BLOCK_ROWS
    for tensor in stored:
        start = 0
        while start < tensor.shape[0]:
            stop = min(tensor.shape[0], start + room)
            piece.append((tensor, start, stop))
            room -= stop - start
            start = stop
            if room == 0:
                yield piece
                piece, room = [], BLOCK_ROWS
    if piece:
        yield piece


def _quantize_rows(
    stored: _StoredTensor, start: int, stop: int, rotation: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 codes and scales of rows [start, stop) after the input rotation,
    ROW_CHUNK fp32 rows at a time."""
    n_cols = stored.shape[1]
    codes = torch.empty((stop - start, n_cols), dtype=torch.int8)
    scales = torch.empty(stop - start, dtype=torch.float32)
    for first in range(start, stop, ROW_CHUNK):
        chunk = stored.rows(first, min(first + ROW_CHUNK, stop)).to(torch.float32)
        at = first - start
        codes[at : at + len(chunk)], scales[at : at + len(chunk)] = _row_codes(chunk, rotation)
    return codes, scales


def _row_codes(rows: torch.Tensor, rotation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes of fp32 weight rows after the input rotation, one scale per row."""
    rotated = rotate(rows, rotation)
    scale = (rotated.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
    return torch.round(rotated / scale.unsqueeze(1)).to(torch.int8), scale


def int8_linear(weight: torch.Tensor, bias: torch.Tensor | None, recipe: Recipe) -> Int8Linear:
    """An Int8Linear over an fp32 weight (rows x inputs) held in memory: what loading makes of
    a stored one of this size (the head's pieces aside)."""
    rotation = hadamard(block_size(weight.shape[1]))
    codes, scales = _row_codes(weight.to(torch.float32), rotation)
    product = pack(codes, scales, recipe.backend)
    return Int8Linear([product], weight.shape[1], weight.shape[0], bias, recipe.bits)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` where the submodule called `name` is."""
    owner, _, attr = name.rpartition(".")
    setattr(model.get_submodule(owner) if owner else model, attr, module)


def _read(weights: dict[str, _StoredTensor], name: str) -> torch.Tensor:
    return weights[name].whole()


_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


class _StoredTensor:
    """One tensor of a safetensors file, read with plain file reads, whole or by rows.

    Not safetensors' safe_open: it memory-maps the file, and every mapped page that has been read
    counts in this process's RSS until the mapping closes (1.9 GB peak for the 0.5B model).
    """

    def __init__(self, file: BinaryIO, offset: int, dtype: torch.dtype, shape: list[int]) -> None:
        self._file, self._offset, self.dtype, self.shape = file, offset, dtype, shape
        self.itemsize = torch.empty((), dtype=dtype).element_size()

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop) read at their offset (os.preadv: no shared file position, so
        concurrent readers are safe)."""
        stop = min(stop, self.shape[0])
        row_bytes = math.prod(self.shape[1:]) * self.itemsize
        out = torch.empty((stop - start) * row_bytes, dtype=torch.uint8)
        offset = self._offset + start * row_bytes
        if os.preadv(self._file.fileno(), [out.numpy()], offset) != out.numel():
            raise ValueError("truncated safetensors file")
        return out.view(self.dtype).reshape(stop - start, *self.shape[1:])

    def whole(self) -> torch.Tensor:
        return self.rows(0, self.shape[0]) if self.shape else self.rows(0, 1).reshape(())

    def row(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"row {index} out of range for {self.shape[0]} rows")
        return self.rows(index, index + 1)[0]

    def reopened(self) -> _StoredTensor:
        """The same tensor over a descriptor of its own (the same file, read-only) that stays
        open after loading closes the original."""
        own = os.fdopen(os.dup(self._file.fileno()), "rb")
        return _StoredTensor(own, self._offset, self.dtype, self.shape)


@contextlib.contextmanager
def _open_weights(model_dir: Path) -> Iterator[dict[str, _StoredTensor]]:
    """Name -> stored tensor over one or more safetensors shards (header parsed, data read lazily)."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    with contextlib.ExitStack() as stack:
        tensors: dict[str, _StoredTensor] = {}
        for name in files:
            file = stack.enter_context(open(model_dir / name, "rb"))
            header_len = int.from_bytes(file.read(8), "little")
            header = json.loads(file.read(header_len))
            header.pop("__metadata__", None)
            for key, info in header.items():
                if info["dtype"] not in _DTYPES:
                    raise ValueError(f"unsupported weight dtype {info['dtype']} for {key}")
                offset = 8 + header_len + info["data_offsets"][0]
                tensors[key] = _StoredTensor(file, offset, _DTYPES[info["dtype"]], info["shape"])
        yield tensors


def quantized_linear_count(model: nn.Module) -> int:
    """How many int8 Linear layers the model holds (for logs and tests)."""
    return sum(isinstance(m, Int8Linear) for m in model.modules())
