"""Perplexity of a loaded model on a text, through the engine's own forward path.

Each window of tokens is prefilled as the engine prefills a prompt (model.threaded_engine's
prepare_forward: the lean forward where it applies, the KV cache in the dtype the engine would
store, chunks of prompt_chunk_tokens over what earlier chunks cached), keeping every position's
logits instead of the last. So what is measured is what a user's prompt goes through, int8
products, narrow caches and all.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from model.decode_scheduler import prefill_chunk
from model.loader import LoadedModel
from model.slack_cache import slack_cache
from model.threaded_engine import prepare_forward

TEXTS = Path(__file__).resolve().parent / "texts"
WINDOW = 512  # tokens per independent window (each starts with an empty cache)


def text_ids(loaded: LoadedModel, name: str, tokens: int) -> list[int]:
    """The first `tokens` token ids of bench/texts/<name> (plain text, no chat template), or all
    of them if the text is shorter."""
    text = (TEXTS / name).read_text(encoding="utf-8")
    return loaded.tokenizer(text, add_special_tokens=False)["input_ids"][:tokens]


def perplexity(loaded: LoadedModel, ids: list[int], window: int = WINDOW) -> float:
    """exp(mean negative log-likelihood) of each token after the first of every window."""
    forward = prepare_forward(loaded)
    chunk = (loaded.settings.prompt_chunk_tokens if loaded.settings else None) or window
    total, count = 0.0, 0
    with torch.inference_mode():
        for first in range(0, len(ids), window):
            part = ids[first : first + window]
            if len(part) < 2:
                break
            logits = _window_logits(forward, part, chunk)
            targets = torch.tensor(part[1:])
            nll = torch.nn.functional.cross_entropy(logits[:-1].float(), targets, reduction="sum")
            total, count = total + float(nll), count + len(part) - 1
    return math.exp(total / count)


def _window_logits(forward, ids: list[int], chunk: int) -> torch.Tensor:
    """Logits at every position of `ids`, prefilled `chunk` tokens at a time into one cache."""
    cache = slack_cache(None, forward.kv_dtype)
    outs = [
        prefill_chunk(
            forward.model, ids[start : start + chunk], start, cache, forward.prompt_dtype, 0
        )[0]
        for start in range(0, len(ids), chunk)
    ]
    return torch.cat(outs)
