"""The int8 matrix product behind every Int8Linear (model.int8), from the library fastest here.

Each backend packs a weight's int8 codes (one scale per output row) once, then multiplies rows
of integer-valued activation codes by them: out = (codes . weight codes) * row scale, the sums
exact 32-bit integers. The caller has already scaled every row of activations to its own codes,
so both backends compute the same numbers up to fp32 rounding of the scales
(tests/model/test_int8.py), and which one runs changes speed, never answers.

- oneDNN's `qlinear_pointwise` (PyTorch's own op, what its x86 quantization lowers to) where the
  CPU has AMX tiles (Intel Xeon since Sapphire Rapids). Measured on such a Xeon, 2 threads, the
  96 block products of Qwen1.5-0.5B with packed weights: 2 rows (one token and its rounding
  residual, model.int8) 18.3 ms against fbgemm's 18.9; 16 rows 19.9 against 34.7; 256 rows (a
  128-token prompt) 56 against 355 ms.
- fbgemm's `linear_with_input_q_dq_qweight_dq_output_fp32` everywhere else: with VNNI
  (AVX512-VNNI, or AMD Zen 4 and later) its 8-bit sums go into 32 bits; on AVX2 alone it sums
  pairs of products in 16 bits first, which can saturate, so activations keep 7 bits there
  (activation_bits).
"""

from __future__ import annotations

from typing import Literal

import torch

from model.cpu_features import amx_tiles, int8_vnni
from model.torch_internals import (
    fbgemm_linear,
    fbgemm_pack,
    onednn_available,
    onednn_linear,
    onednn_pack,
)

Backend = Literal["onednn", "fbgemm"]


def activation_bits() -> int:
    """Bits of an activation code: 8 where fbgemm sums into 32 bits (VNNI), else 7."""
    return 8 if int8_vnni() else 7


def default_backend() -> Backend:
    """oneDNN where the CPU has AMX tiles, fbgemm elsewhere (measured above)."""
    return "onednn" if amx_tiles() and onednn_available() else "fbgemm"


def usable_backends() -> list[Backend]:
    """Every backend that computes exact sums on this CPU: fbgemm always; oneDNN where it is
    built in and the CPU has VNNI (without it, oneDNN's int8 products lose precision too)."""
    return ["fbgemm", "onednn"] if onednn_available() and int8_vnni() else ["fbgemm"]


class FbgemmProduct:
    """fbgemm's packed weight; takes fp32 rows of integer codes (quantized with scale 1, zero
    point 128: exactly those codes)."""

    input_dtype = torch.float32

    def __init__(self, codes: torch.Tensor, scales: torch.Tensor) -> None:
        self._packed = fbgemm_pack(codes, scales)
        self._op = fbgemm_linear()

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        return self._op(codes, 1.0, 128, self._packed)


class OnednnProduct:
    """oneDNN's packed weight; takes the same rows, as int8."""

    input_dtype = torch.int8

    def __init__(self, codes: torch.Tensor, scales: torch.Tensor) -> None:
        self._packed = onednn_pack(codes)
        self._scales = scales.to(torch.float32)
        self._zero_points = torch.zeros(codes.shape[0], dtype=torch.long)
        self._op = onednn_linear()

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        return self._op(
            codes,
            1.0,  # activation scale: the codes are the values
            0,  # activation zero point
            self._packed,
            self._scales,
            self._zero_points,
            None,  # bias: added by the caller, after the residual rows are folded in
            1.0,  # output scale and zero point: plain fp32 out
            0,
            torch.float32,
            "none",  # no fused activation function
            [],
            "",
        )


Product = FbgemmProduct | OnednnProduct


def pack(codes: torch.Tensor, scales: torch.Tensor, backend: Backend) -> Product:
    """The backend's packed product over int8 `codes` (rows x inputs) with one scale per row."""
    return OnednnProduct(codes, scales) if backend == "onednn" else FbgemmProduct(codes, scales)
