"""Effective sampling values for one request: requested values are clamped, never trusted."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from model.settings import GenerationSettings
from model.types import GenerationRequest

TEMPERATURE_RANGE = (0.0, 2.0)
TOP_P_MIN = 0.01  # top_p must stay above 0; this keeps at least the most likely token


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float
    top_p: float
    repetition_penalty: float

    @property
    def greedy(self) -> bool:
        """Temperature 0 means greedy decoding (do_sample=False)."""
        return self.temperature == 0.0


def resolve_sampling(request: GenerationRequest, settings: GenerationSettings) -> SamplingParams:
    """Defaults from settings, then clamp: max_new_tokens to [1, cap], temperature [0, 2], top_p (0, 1]."""
    cap = settings.max_new_tokens
    max_new = cap if request.max_new_tokens is None else min(max(1, request.max_new_tokens), cap)
    temperature = _finite(request.temperature, settings.temperature)
    top_p = _finite(request.top_p, settings.top_p)
    return SamplingParams(
        max_new_tokens=max_new,
        temperature=min(max(temperature, TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1]),
        top_p=min(max(top_p, TOP_P_MIN), 1.0),
        repetition_penalty=settings.repetition_penalty,
    )


def _finite(value: float | None, default: float) -> float:
    if value is None or not math.isfinite(value):
        return default
    return float(value)


def choose_token(logits: torch.Tensor, ids: list[int], params: SamplingParams, top_k: int) -> int:
    """Next token from one row's logits, as transformers' generate would choose it.

    Same processors in the same order (repetition penalty over prompt and reply, then temperature,
    top-k, top-p), so greedy output equals `generate`'s; per row, so each request keeps its own values.
    """
    from transformers import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    scores = logits.reshape(1, -1).to(torch.float32)
    if params.repetition_penalty != 1.0:
        seen = torch.tensor([ids], dtype=torch.long)
        scores = RepetitionPenaltyLogitsProcessor(params.repetition_penalty)(seen, scores)
    if params.greedy:
        return int(scores.argmax(dim=-1))
    scores = TemperatureLogitsWarper(params.temperature)(None, scores)
    if top_k > 0:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if params.top_p < 1.0:
        scores = TopPLogitsWarper(params.top_p)(None, scores)
    return int(torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1))
