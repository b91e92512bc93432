"""The real engine on the tiny model: exact streaming, limits, admission, errors, readiness."""

from __future__ import annotations

import gc
import logging
import threading
import time
from pathlib import Path

import pytest
import torch

from model.engine import EngineBusy, EngineClosed, EngineError
from model.loader import LoadedModel
from model.prompt import build_prompt
from model.settings import GenerationSettings
from model.types import ChatMessage, EngineLoad, GenerationRequest
from tests.model.conftest import LONG, ScriptedModel, ask, until

IDLE = EngineLoad(waiting=0, running=0)

CHINESE = "你好！北京是中国的首都。人工智能正在改变世界。😀"


def test_stream_equals_greedy_generate_token_for_token(make_engine, loaded) -> None:
    engine = make_engine(temperature=0.0, repetition_penalty=1.3, max_new_tokens=60)
    request = ask("Hello! 你好, how are you?")
    stream = engine.stream(request)
    deltas = [d.text for d in stream]

    settings = GenerationSettings()
    prompt = build_prompt(
        loaded.tokenizer, settings.system_prompt, request.messages, settings.max_input_tokens
    )
    ids = torch.tensor([prompt.input_ids])
    out = loaded.model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=60,
        repetition_penalty=1.3,
    )
    expected = loaded.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert "".join(deltas) == expected
    assert len(deltas) > 10 and len(set(deltas)) > 5  # really streamed, and not one repeated token
    assert stream.final.prompt_tokens == len(prompt.input_ids)
    assert stream.final.completion_tokens == 60
    assert stream.final.finish_reason == "length"
    assert 0 < stream.final.time_to_first_token <= stream.final.total_time
    assert stream.final.request_id


def test_chinese_streams_without_broken_characters(make_engine, tokenizer) -> None:
    script = [*tokenizer.encode(CHINESE, add_special_tokens=False), tokenizer.eos_token_id]
    scripted = LoadedModel(ScriptedModel(script, tokenizer.eos_token_id), tokenizer, Path("."))
    stream = make_engine(scripted).stream(ask("写一句话"))
    deltas = [d.text for d in stream]
    assert "".join(deltas) == CHINESE
    assert all("\ufffd" not in d for d in deltas)
    assert len(deltas) > 5
    assert stream.final.finish_reason == "stop"
    assert stream.final.completion_tokens == len(script)


def test_max_new_tokens_is_capped_by_settings(make_engine) -> None:
    stream = make_engine(max_new_tokens=7).stream(ask("hi", max_new_tokens=10**6))
    list(stream)
    assert stream.final.completion_tokens == 7
    assert stream.final.finish_reason == "length"


def test_negative_temperature_is_greedy(make_engine) -> None:
    engine = make_engine(repetition_penalty=1.3, max_new_tokens=30)
    greedy = "".join(d.text for d in engine.stream(ask("hi", temperature=0.0)))
    clamped = "".join(d.text for d in engine.stream(ask("hi", temperature=-5.0)))
    assert clamped == greedy


def test_sampling_with_extreme_values_still_answers(make_engine) -> None:
    stream = make_engine(max_new_tokens=20).stream(ask("hi", temperature=1e9, top_p=-1.0))
    assert "".join(d.text for d in stream)
    assert stream.final.completion_tokens == 20


def test_dropped_history_is_reported(make_engine) -> None:
    history = tuple(
        ChatMessage(role, f"{role} turn {i} " + "words " * 30)
        for i in range(6)
        for role in ("user", "assistant")
    )
    request = GenerationRequest(
        messages=(*history, ChatMessage("user", "newest")), max_new_tokens=3
    )
    stream = make_engine(max_input_tokens=200).stream(request)
    list(stream)
    assert stream.final.prompt_tokens <= 200
    assert stream.final.dropped_messages > 0


def test_prompt_too_long_is_refused_before_admission(make_engine) -> None:
    engine = make_engine(max_input_tokens=32)
    with pytest.raises(EngineError) as info:
        engine.stream(ask("long " * 100))
    assert "too long" in info.value.user_message
    assert engine.load.running == 0


def test_full_queue_is_busy_and_queued_requests_run_in_turn(make_engine) -> None:
    engine = make_engine(max_concurrent=1, max_queue=1)
    first = engine.stream(ask("first"))
    queued = engine.stream(ask("second", max_new_tokens=5))
    with pytest.raises(EngineBusy) as info:
        engine.stream(ask("third"))
    assert "busy" in info.value.user_message
    first.cancel()
    assert len("".join(d.text for d in queued)) > 0
    assert queued.final.completion_tokens == 5
    assert first.wait(5) and queued.wait(5)
    assert engine.load == IDLE


def test_the_load_counts_requests_running_and_waiting_with_no_thread_per_request(
    make_engine,
) -> None:
    before = set(threading.enumerate())
    engine = make_engine(max_concurrent=1, max_queue=2)
    streams = [engine.stream(ask(f"question {i}")) for i in range(3)]
    assert until(lambda: engine.load == EngineLoad(waiting=2, running=1))
    assert {t.name for t in set(threading.enumerate()) - before} == {"engine-decoder"}
    streams[0].cancel()
    assert until(lambda: engine.load == EngineLoad(waiting=1, running=1))
    for stream in streams:
        stream.cancel()
    assert until(lambda: engine.load == IDLE)


def test_a_request_queued_past_the_queue_timeout_is_told_busy(make_engine) -> None:
    engine = make_engine(max_concurrent=1, max_queue=1, queue_timeout_seconds=0.2)
    running = engine.stream(ask("first"))
    queued = engine.stream(ask("second"))
    with pytest.raises(EngineBusy):
        list(queued)
    assert queued.final.finish_reason == "error"
    assert queued.final.completion_tokens == 0
    assert engine.load == EngineLoad(waiting=0, running=1)
    running.cancel()


def test_cancel_while_queued_frees_the_place(make_engine) -> None:
    engine = make_engine(max_concurrent=1, max_queue=1)
    running = engine.stream(ask("first"))
    queued = engine.stream(ask("second"))
    queued.cancel()
    assert queued.wait(2.0)  # it leaves the queue at once, not when the running one ends
    assert list(queued) == []
    assert queued.final.finish_reason == "cancelled"
    assert queued.final.completion_tokens == 0
    replacement = engine.stream(ask("third", max_new_tokens=2))  # the place is free again
    running.cancel()
    list(replacement)
    assert replacement.final.completion_tokens == 2


def test_slot_is_released_when_a_stream_is_never_iterated(make_engine) -> None:
    engine = make_engine(max_concurrent=1, max_queue=0)
    abandoned = engine.stream(ask("nobody reads this"))
    del abandoned
    gc.collect()
    assert until(lambda: engine.load == IDLE)
    follow_up = engine.stream(ask("next", max_new_tokens=2))
    list(follow_up)
    assert follow_up.final.completion_tokens == 2


def test_a_worker_failure_is_a_safe_engine_error_and_logged(make_engine, tokenizer, caplog) -> None:
    script = tokenizer.encode("partial answer then failure", add_special_tokens=False)
    failing = ScriptedModel(script, tokenizer.eos_token_id, fail_after=3)
    engine = make_engine(LoadedModel(failing, tokenizer, Path(".")))
    stream = engine.stream(ask("hi"))
    received = []
    with caplog.at_level(logging.ERROR, logger="chat.engine"), pytest.raises(EngineError) as info:
        received.extend(d.text for d in stream)
    assert "".join(received) == tokenizer.decode(script[:3])
    assert "secret" not in info.value.user_message
    assert stream.final.request_id in info.value.user_message
    assert stream.final.finish_reason == "error"
    failure = next(r for r in caplog.records if r.message == "generation failed")
    assert failure.exc_info is not None and "boom" in str(failure.exc_info[1])
    assert engine.load.running == 0


def test_ready_is_cheap_and_false_after_close(make_engine, loaded, monkeypatch) -> None:
    engine = make_engine()

    def no_generation(*args, **kwargs):
        raise AssertionError("ready() must not generate")

    monkeypatch.setattr(loaded.model, "forward", no_generation)
    assert engine.ready()
    engine.close()
    assert not engine.ready()
    with pytest.raises(EngineClosed):
        engine.stream(ask("hi"))


def test_stream_can_be_iterated_once(make_engine) -> None:
    stream = make_engine(max_new_tokens=2).stream(ask("hi"))
    list(stream)
    with pytest.raises(RuntimeError):
        iter(stream)


def test_long_generation_keeps_going_until_cancelled(make_engine) -> None:
    # Guards the cancellation tests: without a cancel, the tiny model does not stop on its own.
    stream = make_engine(max_new_tokens=300).stream(ask("hi"))
    list(stream)
    assert stream.final.completion_tokens == 300 < LONG


def test_max_concurrent_generations_run_side_by_side(make_engine) -> None:
    engine = make_engine(max_concurrent=2, max_queue=0)
    streams = [engine.stream(ask("one")), engine.stream(ask("two"))]
    assert until(lambda: engine.load == EngineLoad(waiting=0, running=2))
    with pytest.raises(EngineBusy):
        engine.stream(ask("three"))
    for stream in streams:
        stream.cancel()
        assert stream.wait(2.0)


def decoder_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "engine-decoder" and t.is_alive()}


def test_one_decoder_thread_serves_burst_after_burst_until_the_engine_closes(make_engine) -> None:
    before = decoder_threads()  # other tests' engines, if any are still closing
    engine = make_engine()
    list(engine.stream(ask("first", max_new_tokens=5)))
    time.sleep(0.2)  # idle between bursts
    decoder = decoder_threads() - before
    assert len(decoder) == 1
    list(engine.stream(ask("second", max_new_tokens=5)))
    assert decoder_threads() - before == decoder  # the same thread, still there
    engine.close()
    assert not any(t.is_alive() for t in decoder)


def test_freed_memory_goes_back_to_the_os_when_a_batch_is_done(make_engine, monkeypatch) -> None:
    trims = threading.Event()
    monkeypatch.setattr("model.decode_scheduler.return_freed_memory", trims.set)
    engine = make_engine(max_concurrent=2)
    list(engine.stream(ask("a lone reply", max_new_tokens=40)))
    stream = engine.stream(ask("hello"))
    tokens = iter(stream)
    # The lone reply left nothing re-laid out: no trim to pay for then (the decoder would have
    # run it before this reply's steps), nor while a second reply joins and leaves.
    for _ in range(20):
        next(tokens)
    list(engine.stream(ask("a second reply", max_new_tokens=5)))
    assert not trims.is_set()
    stream.cancel()
    assert trims.wait(5.0)  # the batch is over: the scheduler trims as it goes idle


def test_a_bug_while_rows_join_fails_every_caller_instead_of_stranding_one(
    make_engine, monkeypatch
) -> None:
    def broken(self, joining):
        raise RuntimeError("bug while laying out the batch")

    monkeypatch.setattr("model.kv_batch.BatchedKV.add", broken)
    engine = make_engine(max_concurrent=3, max_queue=0)
    streams = [engine.stream(ask(f"question {i}", max_new_tokens=20)) for i in range(3)]
    outcomes = []

    def read(stream) -> None:
        try:
            list(stream)
            outcomes.append("answered")
        except EngineError:
            outcomes.append("failed")

    readers = [threading.Thread(target=read, args=(s,)) for s in streams]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(10)
    assert outcomes == ["failed"] * 3  # none left waiting for a reply that will never come
    assert engine.load.running == 0
