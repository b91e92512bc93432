"""Load a causal LM straight into int8, one weight at a time, so no fp32 copy is ever resident.

Every nn.Linear becomes PyTorch's dynamic-quantized Linear (fbgemm; VNNI where the CPU has it):
weights int8 with one scale per output row, activations quantized per call; q/k/v and gate/up are
stacked into one such Linear each (model.fused_linear: same numbers, fewer and bigger products); a
tied output projection gets its own packed int8 copy of the embedding matrix. The token embedding
itself is not loaded: it is read row by row from the weights file as tokens are looked up: none of
it is resident, rows exact.
An earlier build had the output projection read the embedding's int8 codes instead (one copy, via
torch._weight_int8pack_mm); it was 1.3x slower per token on an AMD EPYC and 2x slower on an Intel
Xeon with AMX than the packed copy, which the file-read embedding now pays for. Measured on the
Qwen1.5-0.5B shape, 2 threads: see README "Speed" for the ratios against fp32 `generate`.

Quality trade-off: per-row int8 weights keep ~2 significant digits per weight and activations are
rounded to 8 bits per call (fbgemm uses 7 of them), so logits drift a little; greedy choices change
where the top logits are close, and an answer that differs at one token continues differently from
there (same quality on average, not the same text). On the tiny test model (hidden size 64, a worst
case for rounding) the mean logit error is ~0.09 of the logits' spread and the teacher-forced top
token agrees with fp32 at 77-84% of positions (tests/model/test_int8.py).

Why not torchao (the maintained successor of torch.ao.quantization): torchao 0.18 with torch 2.13
ran here at 8.4 tok/s (int8 dynamic activation + int8 weight) and 1.2 tok/s (int8 weight only)
without torch.compile, against 22.9 for this path; it is worth re-measuring on each upgrade.

oneDNN's int8 matmul (`torch.ops.onednn.qlinear_pointwise`, AMX tiles on recent Xeons) does not
replace fbgemm: measured on an Intel Xeon with AMX over the 0.5B model's block weights, it did a
128-token prompt's products 2-2.6x faster than fbgemm but a single decoding row's ~20% slower
(more per call), and the two libraries need their own packed copies. On CPUs with AMX prompts
are served from a second, oneDNN copy of block weights, as much as `onednn_copy_mb` allows
(model.onednn_int8); everything else stays on fbgemm.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from model import onednn_int8
from model.fused_linear import FusedLinear, FusedPart
from model.heap import return_freed_memory

ROW_CHUNK = 8192  # rows of a big matrix (the vocabulary) read and quantized at a time
BLOCK_ROWS = 32768  # rows packed as one int8 Linear: bounds the packing's transient memory
FUSED_PROJECTIONS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))  # same input each


class Int8Linear(DynamicLinear):
    """PyTorch's dynamic int8 Linear, with less Python-binding work per call.

    The op takes the packed weights as a script object, and the binding looks for a
    `__torch_function__` override on every argument: on a script object that lookup fails by
    throwing and catching a C++ exception. With overrides disabled for the call (nothing here
    is a tensor subclass) and the op's overload called directly (the op packet re-checks the
    arguments in Python too), a one-row product over a small matrix took 10 instead of 27 us;
    a decoding step makes ~100 of these calls. The overload's own Python `__call__` then
    searches the arguments for a FakeScriptObject (which exists only while tracing for export
    or compile) before calling its C++ function, `_op`, which is called here directly (with
    FusedLinear's plain memo, a decoding step ~4% faster: AMD EPYC, 2 runs of 16 interleaved
    pairs). Same op, same arguments as the parent's forward (7-bit activations, reduce_range=True).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self._packed_params._packed_params
        with torch._C.DisableTorchFunction():
            return torch.ops.quantized.linear_dynamic.default._op(x, packed, True).to(x.dtype)


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


def load_int8_model(model_dir: Path, onednn_copy_bytes: int = 0) -> Any:
    """Build the model with empty weights, then fill it from safetensors, quantizing as it goes;
    block Linears also get a oneDNN copy for prompts while their codes fit in `onednn_copy_bytes`
    (model.onednn_int8)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    budget = onednn_int8.CopyBudget(onednn_copy_bytes)
    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with _open_weights(Path(model_dir)) as weights:
        tied = bool(getattr(config, "tie_word_embeddings", False))
        _fill(model, weights, tied=tied, budget=budget)
    if (Path(model_dir) / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(model_dir)
    left = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if left:
        raise ValueError(f"weights missing from {model_dir}: {left[:3]}")
    return model.eval()


def _fill(
    model: nn.Module,
    weights: dict[str, _StoredTensor],
    tied: bool,
    budget: onednn_int8.CopyBudget,
) -> None:
    """Every weight from the file; block Linears with a oneDNN prompt copy while the budget
    lasts, in load order (q/k/v and gate/up block by block, then the others), the output
    projection never (one row per step, even in a prompt)."""
    embed_name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    head_name = next(n for n, m in model.named_modules() if m is model.get_output_embeddings())
    _replace(model, embed_name, FileEmbedding(weights[f"{embed_name}.weight"]))
    if tied or f"{head_name}.weight" not in weights:
        _replace(model, head_name, _int8_linear(weights, f"{embed_name}.weight", None))
    _fuse_projections(model, weights, budget)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and module.weight.device.type == "meta":
            bias = f"{name}.bias" if module.bias is not None else None
            prompt_budget = budget if name != head_name else None  # the head: fbgemm only
            _replace(model, name, _int8_linear(weights, f"{name}.weight", bias, prompt_budget))
    for name, param in list(model.named_parameters()):
        if param.device.type == "meta":  # norms: small, kept in fp32
            owner, _, attr = name.rpartition(".")
            tensor = _read(weights, name).to(torch.float32)
            model.get_submodule(owner)._parameters[attr] = nn.Parameter(tensor, requires_grad=False)


def _fuse_projections(
    model: nn.Module, weights: dict[str, _StoredTensor], budget: onednn_int8.CopyBudget
) -> None:
    """q/k/v and gate/up of every block as one int8 Linear each (model.fused_linear)."""
    for owner_name, owner in list(model.named_modules()):
        for group in FUSED_PROJECTIONS:
            members = [getattr(owner, name, None) for name in group]
            if not all(
                isinstance(m, nn.Linear) and m.weight.device.type == "meta" for m in members
            ):
                continue
            prefix = f"{owner_name}." if owner_name else ""
            linear, rows = _stacked_int8_linear(
                weights,
                [
                    (f"{prefix}{name}", m.bias is not None)
                    for name, m in zip(group, members, strict=True)
                ],
                budget,
            )
            fused = FusedLinear(linear, len(group))
            owner.add_module("fused_" + "_".join(name.split("_")[0] for name in group), fused)
            start = 0
            for name, count in zip(group, rows, strict=True):
                setattr(owner, name, FusedPart(fused, start, start + count))
                start += count


def _stacked_int8_linear(
    weights: dict[str, _StoredTensor],
    members: list[tuple[str, bool]],
    budget: onednn_int8.CopyBudget,
) -> tuple[nn.Module, list[int]]:
    """One int8 Linear over the rows of several stored weights, and each member's row count."""
    pieces = []
    for name, has_bias in members:
        stored = weights[f"{name}.weight"]
        bias = _read(weights, f"{name}.bias").to(torch.float32) if has_bias else None
        pieces.append((stored, 0, stored.shape[0], bias))
    return _linear_over_rows(pieces, budget), [stop for _, _, stop, _ in pieces]


class RowBlockLinear(nn.Module):
    """A Linear too big to quantize in one piece, as int8 Linears over consecutive row blocks.

    Packing a matrix for fbgemm holds several copies of it for a moment (codes, quantized tensor,
    packed layout): 4-5x its int8 size, 600+ MB for a 151,936-row vocabulary. Block by block,
    that moment costs a block's worth; the outputs are concatenated (one small copy per call).
    """

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([block(x) for block in self.blocks], dim=-1)


def _int8_linear(
    weights: dict[str, _StoredTensor],
    weight_name: str,
    bias_name: str | None,
    budget: onednn_int8.CopyBudget | None = None,
) -> nn.Module:
    """An int8 Linear for one stored weight (and bias), in row blocks if it is big."""
    stored = weights[weight_name]
    n_rows = stored.shape[0]
    bias = _read(weights, bias_name).to(torch.float32) if bias_name else None
    blocks = []
    for start in range(0, n_rows, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n_rows)
        rows = (stored, start, stop, None if bias is None else bias[start:stop])
        blocks.append(_linear_over_rows([rows], budget))
    return blocks[0] if len(blocks) == 1 else RowBlockLinear(blocks)


RowRange = tuple["_StoredTensor", int, int, torch.Tensor | None]  # rows [start, stop), their bias


def _linear_over_rows(
    pieces: list[RowRange], budget: onednn_int8.CopyBudget | None = None
) -> nn.Module:
    """One int8 Linear over these row ranges stacked in order (zero bias where a range has none),
    with a oneDNN copy of its codes for prompts if the budget grants it; the load's temporaries
    are handed back to the OS before returning."""
    quantized = [_quantize_rows(stored, start, stop) for stored, start, stop, _ in pieces]
    bias = None
    if any(b is not None for *_, b in pieces):
        bias = torch.cat(
            [torch.zeros(stop - start) if b is None else b for _, start, stop, b in pieces]
        )
    if len(quantized) == 1:
        codes, scales = quantized[0]  # no concatenation: a 32768-row block is not copied again
    else:
        codes = torch.cat([c for c, _ in quantized])
        scales = torch.cat([s for _, s in quantized])
    linear = _dynamic_linear(codes, scales, bias)
    if budget is not None and budget.grant(codes.numel() * codes.element_size()):
        linear = onednn_int8.PromptsOnOnednn(linear, codes, scales, bias)
    del quantized, codes, scales
    return_freed_memory()  # load temporaries must not pile up (model.heap)
    return linear


def _quantize_rows(
    stored: _StoredTensor, start: int, stop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 codes and scales of rows [start, stop), ROW_CHUNK fp32 rows at a time."""
    n_cols = stored.shape[1]
    codes = torch.empty((stop - start, n_cols), dtype=torch.int8)
    scales = torch.empty(stop - start, dtype=torch.float32)
    for first in range(start, stop, ROW_CHUNK):
        chunk = stored.rows(first, min(first + ROW_CHUNK, stop)).to(torch.float32)
        scale = (chunk.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
        at = first - start
        codes[at : at + len(chunk)] = torch.round(chunk / scale.unsqueeze(1)).to(torch.int8)
        scales[at : at + len(chunk)] = scale
    return codes, scales


def _dynamic_linear(codes: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None):
    """PyTorch's dynamic int8 Linear from per-row codes (the layout quantize_dynamic produces)."""
    out_features, in_features = codes.shape
    zero_points = torch.zeros(out_features, dtype=torch.long)
    with warnings.catch_warnings():  # torch.ao quantized tensors are deprecated; see the docstring
        warnings.simplefilter("ignore", UserWarning)
        qweight = torch._make_per_channel_quantized_tensor(
            codes, scales.to(torch.float64), zero_points, 0
        )
        layer = Int8Linear(in_features, out_features, bias_=bias is not None, dtype=torch.qint8)
        layer.set_weight_bias(qweight, None if bias is None else bias.to(torch.float32))
    return layer


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
    """How many dynamic int8 Linear layers the model holds (for logs and tests)."""
    return sum(isinstance(m, DynamicLinear) for m in model.modules())
