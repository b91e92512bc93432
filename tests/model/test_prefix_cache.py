"""A follow-up turn reuses its conversation's KV cache: same greedy answer, far less prefill."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.prefix_cache import PrefixCache
from model.prompt import build_prompt
from model.settings import GenerationSettings, ModelSettings
from model.slack_cache import SPARE_TOKENS, capacity
from model.types import ChatMessage, GenerationRequest

GREEDY = {"temperature": 0.0, "repetition_penalty": 1.2, "max_new_tokens": 24}


def kv(tokens: int, layers: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.randn(1, 2, tokens, 4), torch.randn(1, 2, tokens, 4)) for _ in range(layers)]


def entry_bytes(tokens: int) -> int:
    return sum(k.nbytes + v.nbytes for k, v in kv(tokens))


def turn(engine, messages, conversation="c1", user="alice", **kwargs):
    request = GenerationRequest(
        messages=tuple(messages), user_key=user, conversation_id=conversation, **kwargs
    )
    stream = engine.stream(request)
    reply = "".join(d.text for d in stream)
    return reply, stream.final


@pytest.fixture(params=["float32", "bfloat16"])
def engines(make_engine, loaded, request):
    """(with cache, without cache), same generation settings, keys and values stored as the param."""
    cached = make_engine(
        dataclasses.replace(
            loaded, settings=ModelSettings(prefix_cache_mb=16, kv_cache_dtype=request.param)
        ),
        **GREEDY,
    )
    plain = make_engine(
        dataclasses.replace(
            loaded, settings=ModelSettings(prefix_cache_mb=0, kv_cache_dtype=request.param)
        ),
        **GREEDY,
    )
    return cached, plain


def conversation(first_reply: str, first_question: str = "Hello! How can I help you today?"):
    return [
        ChatMessage("user", first_question),
        ChatMessage("assistant", first_reply),
        ChatMessage("user", "Please summarise the meeting notes."),
    ]


def test_follow_up_reuses_the_conversation_and_answers_the_same(engines) -> None:
    cached, plain = engines
    first, first_stats = turn(cached, conversation("")[:1])
    assert first_stats.cached_prompt_tokens == 0
    follow_up, stats = turn(cached, conversation(first))
    expected, plain_stats = turn(plain, conversation(first))
    assert follow_up == expected
    # Everything up to the first reply's text was cached; only the new turn was prefilled.
    assert stats.cached_prompt_tokens >= first_stats.prompt_tokens
    assert plain_stats.cached_prompt_tokens == 0


def test_a_follow_up_longer_than_a_chunk_answers_as_prefilled_whole(make_engine, loaded) -> None:
    """A follow-up prefilled in 16-token chunks over its cached conversation: the same greedy
    answer as the whole prompt prefilled at once without a cache."""
    chunked = make_engine(
        dataclasses.replace(
            loaded, settings=ModelSettings(prefix_cache_mb=16, prompt_chunk_tokens=16)
        ),
        **GREEDY,
    )
    plain = make_engine(
        dataclasses.replace(loaded, settings=ModelSettings(prefix_cache_mb=0)), **GREEDY
    )
    first, first_stats = turn(chunked, conversation("")[:1])
    messages = conversation(first)
    messages[-1] = ChatMessage("user", "Please summarise the meeting notes. " * 5)
    answer, stats = turn(chunked, messages)
    assert stats.prompt_tokens - stats.cached_prompt_tokens > 3 * 16
    assert stats.cached_prompt_tokens >= first_stats.prompt_tokens
    assert answer == turn(plain, messages)[0]


def test_an_edited_earlier_message_reuses_only_the_part_before_the_edit(engines) -> None:
    cached, plain = engines
    first, first_stats = turn(cached, conversation("")[:1])
    edited = conversation(first, first_question="Hello! How can I help you tomorrow?")
    answer, stats = turn(cached, edited)
    assert answer == turn(plain, edited)[0]
    assert 0 < stats.cached_prompt_tokens < first_stats.prompt_tokens


def test_history_truncated_to_fit_reuses_only_the_system_prompt(make_engine, loaded) -> None:
    tuned = dataclasses.replace(loaded, settings=ModelSettings(prefix_cache_mb=16))
    limits = {**GREEDY, "max_input_tokens": 120}
    cached = make_engine(tuned, **limits)
    plain = make_engine(
        dataclasses.replace(loaded, settings=ModelSettings(prefix_cache_mb=0)), **limits
    )
    long_question = "Write a short poem about the sea, the wind and the morning light. " * 2
    first, _first_stats = turn(cached, [ChatMessage("user", long_question)])
    messages = [ChatMessage("user", long_question), ChatMessage("assistant", first)]
    messages.append(ChatMessage("user", "And the capital of France?"))
    answer, stats = turn(cached, messages)
    assert stats.dropped_messages > 0
    assert answer == turn(plain, messages)[0]
    # Only the rendered system prompt and the next turn's opening survive the cut.
    opening = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    assert stats.cached_prompt_tokens == len(loaded.tokenizer.encode(opening))


def test_a_reply_ended_at_its_first_token_leaves_room_for_the_next_message(
    make_engine, loaded
) -> None:
    """Its cached conversation gets the room a decoded reply gets: a next message longer than a
    prefill's spare room is prefilled into it in place, not after copying the whole conversation."""
    settings = {**GREEDY, "max_new_tokens": 1}
    cached = make_engine(
        dataclasses.replace(loaded, settings=ModelSettings(prefix_cache_mb=16)), **settings
    )
    plain = make_engine(
        dataclasses.replace(loaded, settings=ModelSettings(prefix_cache_mb=0)), **settings
    )
    first, first_stats = turn(cached, conversation("")[:1])
    assert first_stats.completion_tokens == 1
    messages = conversation(first)
    messages[-1] = ChatMessage("user", "Please summarise the meeting notes. " * 5)
    follow_up = build_prompt(
        loaded.tokenizer, GenerationSettings().system_prompt, messages, 10**6
    ).input_ids
    assert len(follow_up) - first_stats.prompt_tokens > SPARE_TOKENS
    hit = cached.prefix_cache.take(("alice", "c1"), follow_up)
    assert hit is not None and hit.tokens == first_stats.prompt_tokens
    for keys, values in hit.kv:
        assert min(capacity(keys), capacity(values)) >= len(follow_up)
    cached.prefix_cache.put(("alice", "c1"), follow_up[: hit.tokens], hit.kv)
    answer, stats = turn(cached, messages)
    assert stats.cached_prompt_tokens == first_stats.prompt_tokens
    assert answer == turn(plain, messages)[0]


def test_another_user_with_the_same_conversation_id_gets_nothing_cached(engines) -> None:
    cached, _ = engines
    first, _ = turn(cached, conversation("")[:1], user="alice")
    _, stats = turn(cached, conversation(first), user="mallory")
    assert stats.cached_prompt_tokens == 0
    _, stats = turn(cached, conversation(first), user="alice")
    assert stats.cached_prompt_tokens > 0  # alice's entry survived mallory's attempt


def test_requests_without_a_conversation_id_are_not_cached(engines) -> None:
    cached, _ = engines
    turn(cached, conversation("")[:1], conversation=None)
    assert len(cached.prefix_cache) == 0


def test_least_recently_used_conversation_is_evicted_to_stay_within_bytes() -> None:
    cache = PrefixCache(max_bytes=2 * entry_bytes(10))
    cache.put(("u", "a"), list(range(10)), kv(10))
    cache.put(("u", "b"), list(range(10)), kv(10))
    assert cache.take(("u", "a"), list(range(12))) is not None  # a is used (and taken out) ...
    cache.put(("u", "a"), list(range(10)), kv(10))  # ... and stored again: b is now the oldest
    cache.put(("u", "c"), list(range(10)), kv(10))
    assert ("u", "b") not in cache
    assert ("u", "a") in cache and ("u", "c") in cache
    assert cache.bytes_used <= cache.max_bytes and cache.evictions == 1


def test_an_entry_larger_than_the_budget_is_not_kept() -> None:
    cache = PrefixCache(max_bytes=entry_bytes(10))
    cache.put(("u", "a"), list(range(11)), kv(11))
    assert len(cache) == 0 and cache.bytes_used == 0


def test_take_returns_the_common_prefix_and_leaves_a_token_to_prefill() -> None:
    cache = PrefixCache(max_bytes=10**9)
    cache.put(("u", "a"), [1, 2, 3, 4, 5], kv(5))
    hit = cache.take(("u", "a"), [1, 2, 3, 9, 9])
    assert hit is not None and hit.tokens == 3 and hit.kv[0][0].shape[2] == 3
    cache.put(("u", "a"), [1, 2, 3], kv(3))
    assert cache.take(("u", "a"), [1, 2, 3]).tokens == 2  # the last token's logits are needed
    cache.put(("u", "a"), [1, 2, 3], kv(3))
    assert cache.take(("u", "a"), [7, 8, 9]) is None  # nothing in common: a miss
    assert len(cache) == 0  # and the stale entry is gone
