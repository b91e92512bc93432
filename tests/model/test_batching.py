"""Concurrent generations decode in one batch: same greedy answers as alone, each one cancellable."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch
from transformers import DynamicCache

from model.decode_scheduler import prefill_chunk
from model.kv_batch import BatchedKV, cache_pairs
from model.settings import ModelSettings
from model.slack_cache import slack_cache
from model.threaded_engine import prepare_forward
from tests.model.conftest import ask, batch_step, read_all

GREEDY = {"temperature": 0.0, "repetition_penalty": 1.2}
QUESTIONS = (
    "Hello!",
    "What is the capital of France? Tell me about Paris and its history, please.",
    "你好！今天我能帮你做什么？",
    "def add(a, b):",
)


@pytest.mark.parametrize("kv_dtype", ["float32", "bfloat16"])
def test_concurrent_streams_each_equal_their_solo_answer(make_engine, loaded, kv_dtype) -> None:
    loaded = dataclasses.replace(loaded, settings=ModelSettings(kv_cache_dtype=kv_dtype))
    solo_engine = make_engine(loaded, max_concurrent=1, **GREEDY)
    lengths = [40, 25, 60, 33]  # rows leave the batch at different steps
    solo = [
        "".join(d.text for d in solo_engine.stream(ask(q, max_new_tokens=n)))
        for q, n in zip(QUESTIONS, lengths, strict=True)
    ]
    engine = make_engine(loaded, max_concurrent=4, max_queue=0, **GREEDY)
    streams = [
        engine.stream(ask(q, max_new_tokens=n)) for q, n in zip(QUESTIONS, lengths, strict=True)
    ]
    assert read_all(streams) == solo
    assert [s.final.completion_tokens for s in streams] == lengths
    assert max(s.final.max_batch for s in streams) >= 3  # they really shared steps


def test_cancelling_one_stream_mid_batch_leaves_the_others_intact(make_engine) -> None:
    solo_engine = make_engine(max_concurrent=1, **GREEDY)
    expected = [
        "".join(d.text for d in solo_engine.stream(ask(q, max_new_tokens=80)))
        for q in QUESTIONS[1:]
    ]
    engine = make_engine(max_concurrent=4, max_queue=0, **GREEDY)
    victim = engine.stream(ask(QUESTIONS[0]))  # would run to the 8192-token cap
    others = [engine.stream(ask(q, max_new_tokens=80)) for q in QUESTIONS[1:]]
    victim_deltas = iter(victim)
    next(victim_deltas)
    victim.cancel()
    assert victim.wait(2.0)
    assert victim.final.finish_reason == "cancelled"
    assert victim.final.completion_tokens < 200
    assert read_all(others) == expected
    assert all(s.final.finish_reason == "length" for s in others)
    assert engine.load.running == 0


def test_a_request_joining_a_running_batch_answers_as_alone(make_engine) -> None:
    solo_engine = make_engine(max_concurrent=1, **GREEDY)
    late_solo = "".join(d.text for d in solo_engine.stream(ask(QUESTIONS[3], max_new_tokens=30)))
    engine = make_engine(max_concurrent=2, max_queue=0, **GREEDY)
    early = engine.stream(ask(QUESTIONS[1], max_new_tokens=400))
    early_deltas = iter(early)
    for _ in range(20):  # the early one is well into decoding: the late one must be padded in
        next(early_deltas)
    late = engine.stream(ask(QUESTIONS[3], max_new_tokens=30))
    assert "".join(d.text for d in late) == late_solo
    assert late.final.max_batch == 2
    early.cancel()


def test_sampled_and_greedy_requests_share_a_batch(make_engine) -> None:
    engine = make_engine(max_concurrent=2, max_queue=0, repetition_penalty=1.2)
    greedy_alone = "".join(
        d.text for d in engine.stream(ask(QUESTIONS[0], temperature=0.0, max_new_tokens=30))
    )
    sampled = engine.stream(ask(QUESTIONS[1], temperature=1.0, max_new_tokens=30))
    greedy = engine.stream(ask(QUESTIONS[0], temperature=0.0, max_new_tokens=30))
    replies = read_all([sampled, greedy])
    assert replies[1] == greedy_alone
    assert replies[0] and sampled.final.completion_tokens == 30


def prefill(model, ids: list[int]):
    cache = DynamicCache()
    out = model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True)
    return out.logits[0, -1], [(k, v) for k, v, *_ in cache]


def test_a_padded_batch_step_gives_each_row_its_solo_logits(loaded) -> None:
    model = loaded.model
    prompts = [[5, 60, 70, 80, 90, 100, 120, 7, 9, 11], [200, 201, 202], [42] * 6]
    nxt = [300, 301, 302]
    kv = BatchedKV()
    with torch.inference_mode():
        solo = [prefill(model, [*ids, t])[0] for ids, t in zip(prompts, nxt, strict=True)]
        for ids in prompts:
            kv.add([(prefill(model, ids)[1], len(ids))])
        assert kv.width == 10 and kv.step_inputs()[0].sum(dim=1).tolist() == [11, 4, 7]
        logits = batch_step(model, kv, nxt)
    for row, expected in enumerate(solo):
        torch.testing.assert_close(logits[row], expected, atol=1e-4, rtol=1e-4)


def test_rows_that_stay_keep_their_place_and_answer_as_alone_after_others_leave(loaded) -> None:
    model = loaded.model
    prompts = [[5, 60, 70, 80, 90], [200, 201, 202], [42] * 6, [7, 8, 9, 10]]
    kv = BatchedKV()
    with torch.inference_mode():
        for ids in prompts:
            kv.add([(prefill(model, ids)[1], len(ids))])
        first = batch_step(model, kv, [300, 301, 302, 303])
        buffer = kv.cache.layers[0].keys.data_ptr()
        order = kv.keep([1, 3])  # row 0 leaves (its place goes to row 3), row 2 leaves
        assert order == [3, 1] and kv.cache.layers[0].keys.data_ptr() == buffer  # no copy
        tokens = [int(first[i].argmax()) for i in order]
        logits = batch_step(model, kv, tokens)
        for row, i in enumerate(order):
            alone = prefill(model, [*prompts[i], 300 + i, tokens[row]])[0]
            torch.testing.assert_close(logits[row], alone, atol=1e-4, rtol=1e-4)
        assert kv.keep([1]) == [1]  # down to one row, moved to place 0; the padding stays
        assert kv.width == 8 and kv.lengths == [5]
        last = batch_step(model, kv, [400])
        ids = [*prompts[1], 301, tokens[1], 400]
        torch.testing.assert_close(last[0], prefill(model, ids)[0], atol=1e-4, rtol=1e-4)


def engine_prefill(forward, ids: list[int]):
    """A prompt's KV as the engine prefills it (its forward, a cache with room)."""
    cache = slack_cache()
    prefill_chunk(forward, ids, 0, cache)
    return cache_pairs(cache)


def test_with_int8_a_batched_step_gives_each_row_exactly_its_logits_alone(int8_loaded) -> None:
    """int8 rounds each token's activations with its own scale, so the last bits of a row's
    inputs can move whole codes: each row of a batched step attends over its own tokens as it
    does alone (model.kv_dtype), and its logits are its logits alone, bit for bit."""
    forward = prepare_forward(int8_loaded).model
    prompts = [[5, 60, 70, 80, 90, 100, 120, 7, 9, 11], [200, 201, 202], [42] * 6]
    nxt = [300, 301, 302]
    with torch.inference_mode():
        alone = []
        for ids, token in zip(prompts, nxt, strict=True):
            kv = BatchedKV()
            kv.add([(engine_prefill(forward, ids), len(ids))])
            alone.append(batch_step(forward, kv, [token])[0])
        kv = BatchedKV()
        for ids in prompts:
            kv.add([(engine_prefill(forward, ids), len(ids))])
        assert kv.step_inputs()[0].sum(dim=1).tolist() == [11, 4, 7]  # padded rows
        batched = batch_step(forward, kv, nxt)
    for row, expected in enumerate(alone):
        assert torch.equal(batched[row], expected)


LONG_QUESTION = QUESTIONS[1] * 6  # ~100 tokens: several 16-token chunks


def test_a_long_prompt_is_prefilled_in_chunks_while_a_running_reply_goes_on(
    make_engine, loaded
) -> None:
    whole = make_engine(loaded, max_concurrent=1, **GREEDY)  # prompts up to 256 in one piece
    late_solo = "".join(d.text for d in whole.stream(ask(LONG_QUESTION, max_new_tokens=30)))
    chunked = dataclasses.replace(loaded, settings=ModelSettings(prompt_chunk_tokens=16))
    engine = make_engine(chunked, max_concurrent=2, max_queue=0, **GREEDY)
    early = engine.stream(ask(QUESTIONS[0], max_new_tokens=2000))
    early_deltas = iter(early)
    for _ in range(5):
        next(early_deltas)
    before = early.generated_tokens
    late = engine.stream(ask(LONG_QUESTION, max_new_tokens=30))
    late_deltas = iter(late)
    first = next(late_deltas)
    gained = early.generated_tokens - before
    assert first.text + "".join(d.text for d in late_deltas) == late_solo
    chunks = -(-late.final.prompt_tokens // 16)
    assert chunks >= 5
    # One step of the running reply between every two chunks of the newcomer's prompt: without
    # chunks it would have stood still for the whole prefill.
    assert gained >= chunks - 1
    early.cancel()


class WrappedModel:
    """The tiny model behind a hook the engine calls as it calls a model (no lean forward)."""

    def __init__(self, model) -> None:
        self.model = model
        self.generation_config = model.generation_config
        self.dtype = model.dtype


class CancelsAtSecondChunk(WrappedModel):
    """The tiny model, cancelling a stream when the first prompt's second chunk is prefilled."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.victim_known = threading.Event()
        self.victim = None
        self.armed = True

    def __call__(self, **kwargs):
        second_chunk = kwargs["input_ids"].shape[1] > 1 and int(kwargs["position_ids"][0, 0]) > 0
        if self.armed and second_chunk:
            self.armed = False
            assert self.victim_known.wait(5)
            self.victim.cancel()
        return self.model(**kwargs)


def test_a_prompt_cancelled_between_chunks_ends_and_its_conversation_keeps_what_was_prefilled(
    make_engine, loaded
) -> None:
    tuning = ModelSettings(prompt_chunk_tokens=16, prefix_cache_mb=16)
    model = CancelsAtSecondChunk(loaded.model)
    engine = make_engine(dataclasses.replace(loaded, model=model, settings=tuning), **GREEDY)
    request = ask(LONG_QUESTION, max_new_tokens=30, user_key="alice", conversation_id="c1")
    victim = engine.stream(request)
    model.victim = victim
    model.victim_known.set()
    assert list(victim) == []
    assert victim.final.finish_reason == "cancelled" and victim.final.completion_tokens == 0
    # The two chunks prefilled before the cancel stay cached: asked again, only the rest is new.
    again = engine.stream(request)
    answer = "".join(d.text for d in again)
    assert again.final.cached_prompt_tokens == 32
    whole = make_engine(**GREEDY)
    assert answer == "".join(d.text for d in whole.stream(ask(LONG_QUESTION, max_new_tokens=30)))


class HoldsFirstCall(WrappedModel):
    """The tiny model, holding its first call until released (requests queue up meanwhile)."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.holding = threading.Event()
        self.release = threading.Event()

    def __call__(self, **kwargs):
        if not self.holding.is_set():
            self.holding.set()
            assert self.release.wait(10)
        return self.model(**kwargs)


def test_a_short_prompt_arriving_with_a_long_one_decodes_while_the_long_one_is_prefilled(
    make_engine, loaded
) -> None:
    model = HoldsFirstCall(loaded.model)
    tuning = ModelSettings(prompt_chunk_tokens=16)
    engine = make_engine(
        dataclasses.replace(loaded, model=model, settings=tuning),
        max_concurrent=3,
        max_queue=0,
        **GREEDY,
    )
    gate = engine.stream(ask("Hello!", max_new_tokens=1))
    assert model.holding.wait(10)  # the decoder is busy: the next two arrive together
    short = engine.stream(ask(QUESTIONS[0], max_new_tokens=2000))
    long = engine.stream(ask(LONG_QUESTION, max_new_tokens=30))
    model.release.set()
    assert len(list(gate)) <= 1
    long_deltas = iter(long)
    next(long_deltas)
    decoded = short.generated_tokens
    list(long_deltas)
    chunks = -(-long.final.prompt_tokens // 16)
    # The short one joined at the long one's first chunk boundary and decoded between chunks.
    assert decoded >= chunks - 1
    short.cancel()
