"""Prompts through oneDNN's int8 matmul, decoding through fbgemm's (int8_prompt_kernel "onednn",
which "auto" is on CPUs with AMX).

fbgemm's int8 product (every int8 Linear's, model.int8) is the fastest here for the few rows of a
decoding step, but a prompt's products are compute-bound, and on CPUs with AMX tiles (Intel Xeon
since Sapphire Rapids) oneDNN's int8 matmul (`torch.ops.onednn.qlinear_pointwise`, PyTorch's own
op, the one its x86 quantization lowers to) does them 2-2.6x faster: measured on an Intel Xeon
with AMX, 2 threads, the 0.5B model's 96 block products for 128 rows took 39-47 ms against
104-146 ms; a whole 128-token prefill 167 -> 118 ms and a 512-token one 621 -> 410 ms (medians
of 10 interleaved pairs). For one row it is slower (22 against 19 ms a step: ~20 us more per
call, and it streams the weights at ~75% of fbgemm's rate), and each library needs its own packed
copy of the weights. So this keeps both: rows below PROMPT_ROWS go to fbgemm, prompts to oneDNN,
from a second copy of block weights. All of them is +~290 MB resident for Qwen1.5-0.5B (measured),
more than the product's 1.2 GB goal can spare, so the copy has a budget (onednn_copy_mb, 100 MB
by default): each block Linear gets one as it is loaded if its codes still fit (q/k/v and gate/up
of the first blocks, then what fits), the rest run prompts on fbgemm too. Every product shape saved
about the same prompt time per MB of copy (0.13-0.17 ms/MB, a Xeon with AMX), so load order is as
good an order as any. Through the engine there, 100 MB made a 128-token prompt's first token
0.90-0.93x (3 runs of 8 interleaved pairs in one process); all of it, 0.7-0.8x. "auto" (the default)
takes oneDNN where the CPU has AMX.

Activations are quantized per call to symmetric int8 over the whole input (one scale, like
fbgemm's per-call scale; 8 bits where fbgemm keeps 7), weights keep their per-row int8 codes and
scales: on a random 1024x3072 layer the mean error against the fp32 product was 0.7% of the
output's spread, against fbgemm's 1.4%.
"""

from __future__ import annotations

import torch
from torch import nn

from model.cpu_features import amx_tiles, int8_vnni

PROMPT_ROWS = 32  # rows from which oneDNN's product is faster (between 16 and 32, measured)


def resolve_prompt_kernel(setting: str) -> str:
    """The library prompts' int8 products run on: "auto" is oneDNN where the CPU has AMX tiles
    (without them it was no faster than fbgemm: an Intel Xeon without AMX, README Speed); an
    explicit "onednn" is refused where it is unavailable or the CPU has no VNNI."""
    if setting == "auto":
        return "onednn" if amx_tiles() and onednn_int8_available() else "fbgemm"
    if setting != "onednn":
        return setting
    if not onednn_int8_available():
        raise ValueError(
            'int8_prompt_kernel = "onednn" needs a torch build with oneDNN; set "fbgemm"'
        )
    if not int8_vnni():
        # Measured on an AMD EPYC with AVX2 only: a product's mean error 5x fbgemm's (6.6% of
        # the output's spread against 1.3%; 3.3% with 7-bit activations), and 90 against 227
        # GOPS for 128 rows.
        raise ValueError(
            'int8_prompt_kernel = "onednn" needs a CPU with AVX512-VNNI (or AMX): without it '
            "oneDNN's int8 products lose precision and are slower than fbgemm's; "
            'set "fbgemm" (or "auto")'
        )
    return setting


class CopyBudget:
    """Bytes the oneDNN copies may still take: each Linear asks as it is loaded and gets a copy
    if its codes fit in what is left (the int8 codes' size is the packed copy's, measured)."""

    def __init__(self, nbytes: int) -> None:
        self.left = nbytes

    def grant(self, nbytes: int) -> bool:
        if nbytes > self.left:
            return False
        self.left -= nbytes
        return True


def prompt_copy_bytes(model: nn.Module) -> int:
    """Bytes of the oneDNN prompt copies this model holds (for the load's log and tests)."""
    return sum(m.copy_bytes for m in model.modules() if isinstance(m, PromptsOnOnednn))


def onednn_int8_available() -> bool:
    """Whether this torch build has oneDNN and its int8 matmul ops."""
    ops = torch.ops.onednn
    return torch.backends.mkldnn.is_available() and all(
        hasattr(ops, name) for name in ("qlinear_prepack", "qlinear_pointwise")
    )


class PromptsOnOnednn(nn.Module):
    """An int8 Linear whose inputs of PROMPT_ROWS rows or more go to oneDNN's product.

    `decode` is the fbgemm Linear over the same codes; oneDNN gets its own packed copy of them.
    """

    def __init__(
        self,
        decode: nn.Module,
        codes: torch.Tensor,
        scales: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> None:
        super().__init__()
        self.decode = decode
        self.out_features = codes.shape[0]
        self.copy_bytes = codes.numel() * codes.element_size()
        # Plain attributes: oneDNN's packed layout is no state to save or move between devices.
        self._packed = torch.ops.onednn.qlinear_prepack(codes.contiguous(), None)
        self._scales = scales.to(torch.float32)
        self._zero_points = torch.zeros(self.out_features, dtype=torch.long)
        self._bias = None if bias is None else bias.to(torch.float32)
        self._no_zero_point = torch.zeros((), dtype=torch.long)
        self._product = torch.ops.onednn.qlinear_pointwise.tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1]
        if x.numel() < PROMPT_ROWS * width:
            return self.decode(x)
        rows = x.reshape(-1, width)
        # The largest magnitude from one min/max pass, codes rounded in place: no fp32 temporaries
        # the input's size but the quotient (one 128 x 2816 input: 0.69 -> 0.24 ms, same codes).
        low, high = torch.aminmax(rows)
        scale = torch.maximum(-low, high).clamp_min(1e-12) / 127.0  # a tensor: .tensor overload
        codes = rows.div(scale).round_().to(torch.int8)
        out = self._product(
            codes,
            scale,
            self._no_zero_point,
            self._packed,
            self._scales,
            self._zero_points,
            self._bias,
            1.0,
            0,
            torch.float32,
            "none",
            [],
            "",
        )
        return out.view(*x.shape[:-1], self.out_features)
