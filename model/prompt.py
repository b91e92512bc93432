"""ChatML prompt ids from the configured system prompt and the conversation, within max_input_tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from model.engine import PromptTooLong
from model.types import ChatMessage


@dataclass(frozen=True)
class Prompt:
    """Token ids ready for the model, and how many of the oldest messages were left out to fit."""

    input_ids: list[int]
    dropped_messages: int


def build_prompt(
    tokenizer: Any,
    system_prompt: str,
    messages: Sequence[ChatMessage],
    max_input_tokens: int,
    max_prompt_chars: int | None = None,
) -> Prompt:
    """Render the conversation with the tokenizer's chat template, dropping the oldest turns to fit.

    The system prompt (from settings; system messages in `messages` are ignored, so users cannot
    replace it) and the newest user message are always kept; if those alone do not fit, raise
    PromptTooLong.
    """
    turns = [m for m in messages if m.role != "system"]
    if not turns or turns[-1].role != "user":
        raise ValueError("a generation request must end with a user message")
    if max_prompt_chars is not None and len(turns[-1].content) > max_prompt_chars:
        raise PromptTooLong(f"message of {len(turns[-1].content)} chars > {max_prompt_chars}")

    rendered: dict[int, list[int]] = {}

    def render(start: int) -> list[int]:
        if start not in rendered:
            rendered[start] = _render(tokenizer, system_prompt, turns[start:])
        return rendered[start]

    # Places to cut: keep everything, or start at a user message, so no reply loses its question.
    starts = [0, *(i for i in range(1, len(turns)) if turns[i].role == "user")]
    if len(render(0)) <= max_input_tokens:
        return Prompt(render(0), 0)
    if len(render(starts[-1])) > max_input_tokens:
        raise PromptTooLong(f"prompt of {len(render(starts[-1]))} tokens > {max_input_tokens}")
    # Dropping more never lengthens the prompt: binary search for the fewest drops that fit.
    low, high = 1, len(starts) - 1
    while low < high:
        mid = (low + high) // 2
        if len(render(starts[mid])) <= max_input_tokens:
            high = mid
        else:
            low = mid + 1
    return Prompt(render(starts[high]), starts[high])


def _render(tokenizer: Any, system_prompt: str, turns: Sequence[ChatMessage]) -> list[int]:
    conversation = [{"role": "system", "content": system_prompt}]
    conversation += [{"role": m.role, "content": m.content} for m in turns]
    ids = tokenizer.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    return list(ids)
