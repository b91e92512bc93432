"""Prompts through oneDNN's int8 matmul, decoding through fbgemm's (int8_prompt_kernel = "onednn").

fbgemm's int8 product (every int8 Linear's, model.int8) is the fastest here for the few rows of a
decoding step, but a prompt's products are compute-bound, and on CPUs with AMX tiles (Intel Xeon
since Sapphire Rapids) oneDNN's int8 matmul (`torch.ops.onednn.qlinear_pointwise`, PyTorch's own
op, the one its x86 quantization lowers to) does them 2-2.6x faster: measured on an Intel Xeon
with AMX, 2 threads, the 0.5B model's 96 block products for 128 rows took 39-47 ms against
104-146 ms; a whole 128-token prefill 167 -> 118 ms and a 512-token one 621 -> 410 ms (medians
of 10 interleaved pairs). For one row it is slower (22 against 19 ms a step: ~20 us more per
call, and it streams the weights at ~75% of fbgemm's rate), and each library needs its own packed
copy of the weights. So this keeps both: rows below PROMPT_ROWS go to fbgemm, prompts to oneDNN,
for a second copy of the block weights (+~290 MB resident for Qwen1.5-0.5B, measured). Off by
default: that is more than the product's 1.2 GB goal can spare (README, Speed); an option for
AMX servers with room.

Activations are quantized per call to symmetric int8 over the whole input (one scale, like
fbgemm's per-call scale; 8 bits where fbgemm keeps 7), weights keep their per-row int8 codes and
scales: on a random 1024x3072 layer the mean error against the fp32 product was 0.7% of the
output's spread, against fbgemm's 1.4%.
"""

from __future__ import annotations

import torch
from torch import nn

PROMPT_ROWS = 32  # rows from which oneDNN's product is faster (between 16 and 32, measured)


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
