"""Every private torch and transformers API the engine uses, and the versions they were read from.

These names carry no promise between releases, so they live here only, each behind a small
function, and check_supported() refuses to build an engine on other versions than the ones
pinned in requirements.txt (or where one of these names is gone), with a one-line message,
instead of failing later in the middle of a reply. Upgrading torch or transformers means
re-reading each function below against the new release, then widening SUPPORTED.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

# Release series (major, minor) these functions were written and checked against.
SUPPORTED = {"torch": (2, 13), "transformers": (5, 24)}


class UnsupportedLibraries(RuntimeError):
    """torch or transformers is a version the engine was not written for; one line, with the fix."""


def check_supported(
    torch_version: str | None = None, transformers_version: str | None = None
) -> None:
    """Raise UnsupportedLibraries unless the running (or given) versions are in SUPPORTED and
    every private name used here exists. Called when an engine or a model is built."""
    import transformers
    from packaging.version import InvalidVersion, Version

    running = {
        "torch": torch_version or torch.__version__,
        "transformers": transformers_version or transformers.__version__,
    }
    wanted = " and ".join(f"{name} {a}.{b}.x" for name, (a, b) in SUPPORTED.items())
    for name, version in running.items():
        try:
            series = Version(version).release[:2]
        except InvalidVersion:
            series = ()
        if series != SUPPORTED[name]:
            raise UnsupportedLibraries(
                f"{name} {version} is not supported: the engine uses private APIs of {wanted}"
                " (model/torch_internals.py); install the versions pinned in requirements.txt"
            )
    missing = [name for name, probe in _PRIVATE_NAMES.items() if not _exists(probe)]
    if missing:
        raise UnsupportedLibraries(
            f"torch {running['torch']} / transformers {running['transformers']} lack"
            f" {', '.join(missing)}, which the engine needs (written for {wanted});"
            " install the versions pinned in requirements.txt"
        )


def attn_implementation(config: Any) -> str | None:
    """The attention a transformers model is set to run ("sdpa", "eager", a registered name)."""
    return config._attn_implementation


def cpu_supports(feature: str) -> bool:
    """torch.cpu's probe of `feature` ("amx_tile", "avx512_bf16", "vnni"): what this CPU has."""
    return bool(getattr(torch.cpu, f"_is_{feature}_supported")())


def fbgemm_pack(codes: torch.Tensor, scales: torch.Tensor) -> Any:
    """fbgemm's packed int8 weight: `codes` (rows x inputs, integer-valued) with one scale per row."""
    zero_points = torch.zeros(codes.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # torch.ao quantized tensors are deprecated
        warnings.simplefilter("ignore", UserWarning)
        qweight = torch._make_per_channel_quantized_tensor(
            codes, scales.to(torch.float64), zero_points, 0
        )
        return torch.ops.quantized.linear_prepack(qweight, None)


def fbgemm_linear() -> Callable[..., torch.Tensor]:
    """fbgemm's product over a packed weight: (fp32 rows, input scale, zero point, packed)."""
    return torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32


def onednn_available() -> bool:
    """Whether this torch build has oneDNN and its int8 matmul ops."""
    ops = torch.ops.onednn
    return torch.backends.mkldnn.is_available() and all(
        hasattr(ops, name) for name in ("qlinear_prepack", "qlinear_pointwise")
    )


def onednn_pack(codes: torch.Tensor) -> Any:
    """oneDNN's packed int8 weight (rows x inputs, int8)."""
    return torch.ops.onednn.qlinear_prepack(codes.contiguous(), None)


def onednn_linear() -> Callable[..., torch.Tensor]:
    """oneDNN's int8 product over a packed weight; the overload itself, not the op packet, which
    re-checks its arguments in Python on every call."""
    return torch.ops.onednn.qlinear_pointwise.default


def _config_attention() -> object:
    from transformers import PretrainedConfig

    return PretrainedConfig()._attn_implementation


# The private names above that every engine needs (oneDNN is optional: onednn_available()).
_PRIVATE_NAMES: dict[str, Callable[[], object]] = {
    "torch.cpu._is_amx_tile_supported": lambda: torch.cpu._is_amx_tile_supported,
    "torch.cpu._is_avx512_bf16_supported": lambda: torch.cpu._is_avx512_bf16_supported,
    "torch.cpu._is_vnni_supported": lambda: torch.cpu._is_vnni_supported,
    "torch._make_per_channel_quantized_tensor": lambda: torch._make_per_channel_quantized_tensor,
    "torch.ops.quantized.linear_prepack": lambda: torch.ops.quantized.linear_prepack,
    "torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32": fbgemm_linear,
    "transformers PretrainedConfig._attn_implementation": _config_attention,
}


def _exists(probe: Callable[[], object]) -> bool:
    try:
        probe()
    except (AttributeError, RuntimeError):  # torch.ops raises AttributeError for unknown ops
        return False
    return True
