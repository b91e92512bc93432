"""Load a causal LM straight into int8, one weight at a time, so no fp32 copy is ever resident.

Every nn.Linear becomes PyTorch's dynamic-quantized Linear (fbgemm, VNNI on these CPUs): weights
int8 with one scale per output row, activations quantized per call. The token embedding keeps the
same per-row int8 codes and dequantizes only the rows it looks up; on CPUs with AVX512-BF16 a tied
output projection reads those same codes (Int8TiedHead) instead of a second copy. Measured on the
Qwen1.5-0.5B shape, 2 threads: time to first token 0.36x and decoding 2.7x of fp32 `generate`.

Quality trade-off: per-row int8 weights keep ~2 significant digits per weight and activations are
rounded to 8 bits per call (fbgemm uses 7 of them), so logits drift a little; greedy choices change
where the top logits are close, and an answer that differs at one token continues differently from
there (same quality on average, not the same text). On the tiny test model (hidden size 64, a worst
case for rounding) the mean logit error is ~0.09 of the logits' spread and the teacher-forced top
token agrees with fp32 at 77-84% of positions (tests/model/test_int8.py).

Why not torchao (the maintained successor of torch.ao.quantization): torchao 0.18 with torch 2.13
ran here at 8.4 tok/s (int8 dynamic activation + int8 weight) and 1.2 tok/s (int8 weight only)
without torch.compile, against 22.9 for this path; it is worth re-measuring on each upgrade.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

ROW_CHUNK = 8192  # rows of a big matrix (the vocabulary) read and quantized at a time


class Int8Embedding(nn.Module):
    """Embedding lookup over per-row int8 codes: dequantizes only the looked-up rows."""

    def __init__(self, codes: torch.Tensor, scales: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("codes", codes)  # int8 [vocab, hidden]
        self.register_buffer("scales", scales)  # float32 [vocab]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.codes[input_ids].to(torch.float32) * self.scales[input_ids].unsqueeze(-1)


class Int8TiedHead(nn.Module):
    """The output projection of a tied model over the embedding's own int8 codes: one copy of
    the biggest matrix (151936 x 1024 for Qwen1.5-0.5B, 155 MB in int8) instead of two.

    PyTorch's weight-only int8 matmul (`torch._weight_int8pack_mm`, the CPU path gpt-fast uses)
    with bf16 activations. Measured on an AMD EPYC with AVX512-BF16, one token: 4.7 ms against
    3.6 ms for the dynamic int8 Linear (relative logit error 0.3% against fp32 weights); without
    bf16 vector units that kernel is far slower, so load_int8_model only picks it where they exist.
    """

    def __init__(self, embedding: Int8Embedding) -> None:
        super().__init__()
        # The same tensors as the embedding's, not copies.
        self.register_buffer("codes", embedding.codes, persistent=False)
        self.register_buffer("scales", embedding.scales.to(torch.bfloat16), persistent=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        flat = hidden.reshape(-1, hidden.shape[-1]).to(torch.bfloat16)
        logits = torch._weight_int8pack_mm(flat, self.codes, self.scales)
        return logits.to(torch.float32).reshape(*hidden.shape[:-1], self.codes.shape[0])


def bf16_vector_units() -> bool:
    """Whether this CPU runs bf16 arithmetic natively (AVX512-BF16): Int8TiedHead is fast here."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe and probe())


def load_int8_model(model_dir: Path, share_tied_head: bool | None = None) -> Any:
    """Build the model with empty weights, then fill it from safetensors, quantizing as it goes.

    share_tied_head: a tied output projection reads the embedding's codes (Int8TiedHead) instead of
    a packed copy of its own; None decides by the CPU (bf16_vector_units).
    """
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with _open_weights(Path(model_dir)) as weights:
        tied = bool(getattr(config, "tie_word_embeddings", False))
        share = bf16_vector_units() if share_tied_head is None else share_tied_head
        _fill(model, weights, tied=tied, share_tied_head=share)
    if (Path(model_dir) / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(model_dir)
    left = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if left:
        raise ValueError(f"weights missing from {model_dir}: {left[:3]}")
    return model.eval()


def _fill(
    model: nn.Module, weights: dict[str, _StoredTensor], tied: bool, share_tied_head: bool
) -> None:
    embed_name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    head_name = next(n for n, m in model.named_modules() if m is model.get_output_embeddings())
    codes, scales = _quantize_rows(weights, f"{embed_name}.weight")
    embedding = Int8Embedding(codes, scales)
    _replace(model, embed_name, embedding)
    _return_freed_memory()
    if tied or f"{head_name}.weight" not in weights:
        head = Int8TiedHead(embedding) if share_tied_head else _dynamic_linear(codes, scales, None)
        _replace(model, head_name, head)
        _return_freed_memory()
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and module.weight.device.type == "meta":
            codes, scales = _quantize_rows(weights, f"{name}.weight")
            bias = _read(weights, f"{name}.bias") if module.bias is not None else None
            _replace(model, name, _dynamic_linear(codes, scales, bias))
            _return_freed_memory()
    for name, param in list(model.named_parameters()):
        if param.device.type == "meta":  # norms: small, kept in fp32
            owner, _, attr = name.rpartition(".")
            tensor = _read(weights, name).to(torch.float32)
            model.get_submodule(owner)._parameters[attr] = nn.Parameter(tensor, requires_grad=False)


def _quantize_rows(
    weights: dict[str, _StoredTensor], name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 codes and scales, reading ROW_CHUNK rows of fp32 at a time."""
    stored = weights[name]
    n_rows, n_cols = stored.shape
    codes = torch.empty((n_rows, n_cols), dtype=torch.int8)
    scales = torch.empty(n_rows, dtype=torch.float32)
    for start in range(0, n_rows, ROW_CHUNK):
        chunk = stored.rows(start, start + ROW_CHUNK).to(torch.float32)
        scale = (chunk.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
        codes[start : start + len(chunk)] = torch.round(chunk / scale.unsqueeze(1)).to(torch.int8)
        scales[start : start + len(chunk)] = scale
    return codes, scales


def _dynamic_linear(codes: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None):
    """PyTorch's dynamic int8 Linear from per-row codes (the layout quantize_dynamic produces)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    out_features, in_features = codes.shape
    zero_points = torch.zeros(out_features, dtype=torch.long)
    with warnings.catch_warnings():  # torch.ao quantized tensors are deprecated; see the docstring
        warnings.simplefilter("ignore", UserWarning)
        qweight = torch._make_per_channel_quantized_tensor(
            codes, scales.to(torch.float64), zero_points, 0
        )
        layer = DynamicLinear(in_features, out_features, bias_=bias is not None, dtype=torch.qint8)
        layer.set_weight_bias(qweight, None if bias is None else bias.to(torch.float32))
    return layer


def _return_freed_memory() -> None:
    """Give freed heap pages back to the OS (glibc only) so load temporaries do not add to peak RSS.

    Each fp32 weight is read, quantized and freed; glibc keeps such chunks in a thread's arena
    (measured: +170 MB peak when loading off the main thread), and malloc_trim releases them.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
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

    def rows(self, start: int, stop: int) -> torch.Tensor:
        stop = min(stop, self.shape[0])
        row_numel = math.prod(self.shape[1:])
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        out = torch.empty((stop - start) * row_numel * itemsize, dtype=torch.uint8)
        self._file.seek(self._offset + start * row_numel * itemsize)
        if self._file.readinto(out.numpy()) != out.numel():
            raise ValueError("truncated safetensors file")
        return out.view(self.dtype).reshape(stop - start, *self.shape[1:])

    def whole(self) -> torch.Tensor:
        return self.rows(0, self.shape[0]) if self.shape else self.rows(0, 1).reshape(())


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
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(isinstance(m, DynamicLinear) for m in model.modules())
