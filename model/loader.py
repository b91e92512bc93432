"""Find the model directory for the configured source, then load it the same way for every source."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.settings import ModelSettings
from model.tiny_random import build_tiny_model

log = logging.getLogger("chat.model")

FIXES = (
    'Fix: set [model] source = "local" and path = "/dir/with/config.json" '
    "(or CHAT_MODEL__SOURCE=local CHAT_MODEL__PATH=...), or start with --demo for the offline demo model."
)


class ModelUnavailable(Exception):
    """The model cannot be found or loaded; the message is one line with what failed and the fixes."""

    def __init__(self, what_failed: str) -> None:
        super().__init__(f"model unavailable: {_one_line(what_failed)}. {FIXES}")


@dataclass(frozen=True)
class LoadedModel:
    """A loaded causal LM and its tokenizer, ready for an engine."""

    model: Any  # transformers PreTrainedModel
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    model_dir: Path
    demo: bool = False  # random weights: the page shows a banner
    settings: ModelSettings | None = None  # threads, prefix cache and batch sizes for the engine
    quantization: str = "none"  # how the weights were loaded ("int8": model.int8)


def resolve_model_dir(settings: ModelSettings) -> Path:
    """Return a local directory with config.json for the configured source, downloading if needed."""
    cache_dir = Path(settings.cache_dir)
    if settings.source == "local":
        return _local_dir(settings.path)
    if settings.source == "tiny-random":
        try:
            return build_tiny_model(cache_dir / "tiny-random")
        except (OSError, RuntimeError) as exc:
            raise ModelUnavailable(
                f"could not build the demo model in {cache_dir}: {exc}"
            ) from None
    if settings.source == "modelscope":
        return _download("ModelScope", _modelscope_download, settings.id, cache_dir / "modelscope")
    if settings.source == "huggingface":
        return _download("Hugging Face", _hf_download, settings.id, cache_dir / "huggingface")
    raise ModelUnavailable(f"unknown model source {settings.source!r}")


def load_model(model_dir: Path, settings: ModelSettings) -> LoadedModel:
    """Load model and tokenizer from a directory with one code path for every source, in eval mode.

    The torch work runs in a thread that then ends: a thread that has run torch ops keeps an OpenMP
    team for life, and with more teams than cores libgomp throttles its spin-wait, which measured
    13 instead of 23 tok/s of int8 decoding when the caller (launch's main thread) kept one.
    """
    from model.torch_internals import check_supported

    check_supported()  # before minutes of loading, not in the middle of the first reply
    box: list[LoadedModel | BaseException] = []

    def load() -> None:
        try:
            box.append(_load(model_dir, settings))
        except BaseException as exc:  # re-raised in the caller's thread
            box.append(exc)

    worker = threading.Thread(target=load, name="model-load")
    worker.start()
    worker.join()
    import torch

    torch.set_num_threads(settings.threads or os.cpu_count() or 1)  # the caller's too: no team made
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _load(model_dir: Path, settings: ModelSettings) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    threads = settings.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[settings.dtype]
    int8_log: dict[str, str | int] = {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        if settings.quantization == "int8":
            from model.int8 import load_int8_model  # no fp32 copy in memory
            from model.int8_products import activation_bits, default_backend

            bits, backend = activation_bits(), default_backend()
            model = load_int8_model(model_dir, bits, backend)
            int8_log = {"activation_bits": bits, "int8_backend": backend}
        else:
            model = AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=dtype, local_files_only=True
            )
    except (
        Exception
    ) as exc:  # missing/corrupt files surface as many types (OSError, safetensors, ...)
        raise ModelUnavailable(
            f"could not load the model from {model_dir}: {type(exc).__name__}: {exc}"
        ) from None
    model.eval()
    if tokenizer.chat_template is None:
        raise ModelUnavailable(f"the tokenizer in {model_dir} has no chat template")
    log.info(
        "model loaded",
        extra={
            "model_dir": str(model_dir),
            "dtype": settings.dtype,
            "quantization": settings.quantization,
            **int8_log,
            "threads": threads,
        },
    )
    demo = settings.source == "tiny-random"
    return LoadedModel(
        model,
        tokenizer,
        Path(model_dir),
        demo=demo,
        settings=settings,
        quantization=settings.quantization,
    )


def _local_dir(path: Path | None) -> Path:
    if path is None:
        raise ModelUnavailable('[model] source = "local" needs [model] path')
    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise ModelUnavailable(f"no config.json in local model path {path}")
    return path


def _download(hub: str, download, model_id: str, cache_dir: Path) -> Path:
    """Download (or update) a snapshot; when the hub is unreachable, fall back to a cached copy."""
    try:
        return Path(download(model_id, cache_dir, local_files_only=False))
    except Exception as exc:  # the hubs raise many types (network, HTTP, auth, disk)
        reason = f"{type(exc).__name__}: {exc}"
    try:
        path = Path(download(model_id, cache_dir, local_files_only=True))
    except Exception:  # nothing usable in the cache either
        path = None
    if path is not None and (path / "config.json").is_file():
        log.warning("model hub unreachable, using the cached copy", extra={"hub": hub})
        return path
    raise ModelUnavailable(
        f"could not download {model_id} from {hub} into {cache_dir} and no cached copy ({reason})"
    )


def _modelscope_download(model_id: str, cache_dir: Path, *, local_files_only: bool) -> str:
    import modelscope  # progress bars are modelscope's own

    return modelscope.snapshot_download(
        model_id, cache_dir=str(cache_dir), local_files_only=local_files_only
    )


def _hf_download(model_id: str, cache_dir: Path, *, local_files_only: bool) -> str:
    import huggingface_hub

    return huggingface_hub.snapshot_download(
        model_id, cache_dir=cache_dir, local_files_only=local_files_only
    )


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
