"""Effective sampling values for one request: requested values are clamped, never trusted."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
