"""The threaded engine on real weights (SmolLM2-135M-Instruct), in every quantization mode.

The tiny random model shows the mechanics; only a real chat model shows what a user reads: a right
answer, a follow-up that remembers the conversation, Chinese and emoji streamed whole, a reply
that ends at the model's end of turn, and the same answer whether or not others are being
answered at the same time. Every request is greedy, so each answer is one fixed text per mode.
"""

from __future__ import annotations

import itertools
import typing
from collections.abc import Callable, Iterator

import pytest

from bench.smollm2 import smollm2_dir
from model.loader import LoadedModel, load_model
from model.settings import GenerationSettings, ModelSettings
from model.threaded_engine import ThreadedEngine, ThreadedStream
from model.types import ChatMessage, GenerationRequest, GenerationStats
from tests.model.conftest import read_all

QUANTIZATIONS = typing.get_args(ModelSettings.model_fields["quantization"].annotation)
REPLACEMENT = "\ufffd"  # what a character cut between two tokens decodes to
MAX_NEW_TOKENS = 48


@pytest.fixture(scope="module", params=QUANTIZATIONS)
def smollm2(request: pytest.FixtureRequest) -> LoadedModel:
    """The model loaded once per module and mode, as a user's settings.toml would load it."""
    path = smollm2_dir()
    settings = ModelSettings(
        source="local", path=str(path), quantization=request.param, threads=2, prefix_cache_mb=64
    )
    return load_model(path, settings)


@pytest.fixture
def make_engine(smollm2: LoadedModel) -> Iterator[Callable[..., ThreadedEngine]]:
    """Engines on the real model with GenerationSettings overrides; all closed after the test."""
    engines: list[ThreadedEngine] = []

    def make(**overrides: object) -> ThreadedEngine:
        engine = ThreadedEngine(
            smollm2, GenerationSettings(**{"max_new_tokens": MAX_NEW_TOKENS, **overrides})
        )
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close(timeout=10)


def greedy(*messages: ChatMessage, **kwargs: object) -> GenerationRequest:
    return GenerationRequest(messages=messages, temperature=0.0, **kwargs)


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def reply_of(stream: ThreadedStream) -> tuple[str, GenerationStats]:
    return "".join(delta.text for delta in stream), stream.final


def test_a_question_gets_the_right_answer(make_engine) -> None:
    # Not "What is the capital of France?": its first token is a near tie in fp32 ("The" 24.14,
    # "La" 24.05) that int8 rounding tips into a French reply without the city.
    reply, stats = reply_of(
        make_engine().stream(greedy(user("Which city is the capital of France?")))
    )
    assert "Paris" in reply, reply
    assert stats.completion_tokens > 0


def test_a_follow_up_answers_from_the_conversation_and_reuses_its_cache(make_engine) -> None:
    engine = make_engine()
    told = user("The secret word is pineapple.")
    asked = user("What is the secret word?")
    first, first_stats = reply_of(
        engine.stream(greedy(told, user_key="alice", conversation_id="c1"))
    )
    history = (told, ChatMessage("assistant", first), asked)
    follow_up, stats = reply_of(
        engine.stream(greedy(*history, user_key="alice", conversation_id="c1"))
    )
    assert "pineapple" in follow_up, follow_up
    # The whole first turn's prompt was reused from the cache; only the new turn was prefilled.
    assert stats.cached_prompt_tokens >= first_stats.prompt_tokens > 0
    # The word came from the conversation: asked cold, in a new conversation, the model lacks it.
    cold, cold_stats = reply_of(
        engine.stream(greedy(asked, user_key="alice", conversation_id="c2"))
    )
    assert "pineapple" not in cold, cold
    assert cold_stats.cached_prompt_tokens == 0


@pytest.mark.parametrize(
    "question",
    [
        "用中文说“谢谢”。",
        "How do you say hello in Chinese?",
        "What does the emoji 🍕 mean?",
    ],
    ids=["chinese", "chinese-in-english", "emoji"],
)
def test_streamed_text_never_shows_a_partial_character(make_engine, smollm2, question) -> None:
    """Chinese characters and emoji take several byte-level tokens each: no delta may show the
    replacement character for a character still being decoded."""
    stream = make_engine(max_new_tokens=128).stream(greedy(user(question)))
    deltas = [delta.text for delta in stream]
    reply = "".join(deltas)
    assert stream.final.finish_reason == "stop", reply  # ended by the model, not cut by the cap
    assert len(deltas) > 1
    assert [d for d in deltas if REPLACEMENT in d] == [], reply
    # The reply does hold characters split across tokens: decoded token by token, they would show.
    ids = smollm2.tokenizer.encode(reply, add_special_tokens=False)
    assert any(REPLACEMENT in smollm2.tokenizer.decode([i]) for i in ids), reply


def test_a_reply_cut_by_its_token_limit_never_shows_a_partial_character(make_engine) -> None:
    """Cut by max_new_tokens in the middle of a Chinese character, a reply ends before it."""
    question = greedy(user("请用中文介绍一下北京。"))  # long Chinese replies: many split characters
    caps = range(40, 48)
    replies = [reply_of(make_engine(max_new_tokens=cap).stream(question))[0] for cap in caps]
    longest = replies[-1]
    for cap, reply in zip(caps, replies, strict=True):
        assert REPLACEMENT not in reply, (cap, reply)
        assert longest.startswith(reply), (cap, reply)  # greedy: each is a prefix of the next
    # Some caps did cut a character: one more token then added no visible text.
    assert any(a == b for a, b in itertools.pairwise(replies)), replies


def test_a_reply_ends_at_the_models_end_of_turn(make_engine) -> None:
    cap = 256
    reply, stats = reply_of(
        make_engine(max_new_tokens=cap).stream(greedy(user("Tell me the capital of France.")))
    )
    assert stats.finish_reason == "stop", reply
    assert 0 < stats.completion_tokens < cap
    assert reply.strip()
    assert "<|im_end|>" not in reply and "<|im_start|>" not in reply, reply


BATCH_QUESTIONS = (
    "Which city is the capital of France?",
    "What does the emoji 🍕 mean?",
    "Write a haiku about the sea.",
    "How do you say hello in Chinese?",
)


def test_answers_decoded_in_one_batch_equal_each_answer_alone(make_engine) -> None:
    engine = make_engine(max_concurrent=len(BATCH_QUESTIONS), max_queue=0)
    alone = [reply_of(engine.stream(greedy(user(q))))[0] for q in BATCH_QUESTIONS]
    streams = [engine.stream(greedy(user(q))) for q in BATCH_QUESTIONS]
    together = read_all(streams, timeout=120)
    assert max(s.final.max_batch for s in streams) >= 3  # they really shared steps
    for question, solo, batched in zip(BATCH_QUESTIONS, alone, together, strict=True):
        assert batched == solo, f"{question!r}: alone {solo!r}, in a batch {batched!r}"
