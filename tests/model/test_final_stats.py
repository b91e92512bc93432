"""Each stream's stats are one frozen object, set once by whoever ends the generation, and there
by the time the stream's iteration ends, however it ends: complete, cut at its length, stopped
by cancel() or by closing the iterator, or failed."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from model.engine import EngineError
from model.fake_engine import FakeEngine
from model.generation_job import GenerationJob
from model.loader import LoadedModel
from model.types import GenerationStats
from tests.model.conftest import ScriptedModel, ask

ENDINGS = ["stop", "length", "cancel", "close", "error"]


def read_to_the_end(stream, ending: str) -> None:
    """Read the stream and end it the way `ending` says."""
    deltas = iter(stream)
    next(deltas)
    if ending == "cancel":
        stream.cancel()
        list(deltas)  # reads on to the end, without waiting for anything else
    elif ending == "close":
        deltas.close()  # what Gradio does on the stop button or a closed tab
    elif ending == "error":
        with pytest.raises(EngineError):
            list(deltas)
    else:
        list(deltas)


def assert_final(final: GenerationStats | None, ending: str) -> None:
    reason = {"cancel": "cancelled", "close": "cancelled"}.get(ending, ending)
    assert isinstance(final, GenerationStats)
    assert final.finish_reason == reason
    assert final.completion_tokens >= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        final.completion_tokens = 0  # type: ignore[misc]


@pytest.fixture
def finishes(monkeypatch) -> list[tuple[str, str, bool]]:
    """Every GenerationJob.finish call: (request id, calling thread, whether it ended the job)."""
    calls: list[tuple[str, str, bool]] = []
    original = GenerationJob.finish

    def recording(job, reason, error=None) -> GenerationStats | None:
        final = original(job, reason, error)
        calls.append((job.request_id, threading.current_thread().name, final is not None))
        return final

    monkeypatch.setattr(GenerationJob, "finish", recording)
    return calls


@pytest.mark.parametrize("ending", ENDINGS)
def test_threaded_engine_final_stats_come_once_from_the_decoder_with_the_end_of_the_stream(
    make_engine, tokenizer, finishes, ending
) -> None:
    words = tokenizer.encode(" go on and on" * 8, add_special_tokens=False)
    if ending == "stop":
        model = ScriptedModel([*words[:5], tokenizer.eos_token_id], tokenizer.eos_token_id)
    elif ending == "error":
        model = ScriptedModel(words, tokenizer.eos_token_id, fail_after=3)
    else:  # never ends on its own before its cap
        model = ScriptedModel(words, tokenizer.eos_token_id)
    engine = make_engine(LoadedModel(model, tokenizer, Path(".")))
    cap = 8 if ending == "length" else 8192
    stream = engine.stream(ask("hi", max_new_tokens=cap))

    read_to_the_end(stream, ending)
    if ending == "close":  # nobody reads on: the decoder ends it within a step
        assert stream.wait(5)
    final = stream.final

    assert_final(final, ending)
    assert final.request_id and final.prompt_tokens > 0
    engine.close()
    assert stream.final is final  # never replaced, not even by the engine's shutdown
    assert finishes == [(final.request_id, "engine-decoder", True)]


def test_threaded_engine_stats_are_not_there_before_the_end(make_engine) -> None:
    stream = make_engine().stream(ask("tell me everything"))
    deltas = iter(stream)
    next(deltas)
    assert stream.final is None and stream.generated_tokens >= 1
    stream.cancel()
    list(deltas)
    assert stream.final is not None


@pytest.mark.parametrize("ending", ENDINGS)
def test_fake_engine_final_stats_come_once_with_the_end_of_the_stream(ending) -> None:
    engine = FakeEngine(fail_after=3 if ending == "error" else None)
    cap = 4 if ending == "length" else None
    stream = engine.stream(ask("one two three four five six", max_new_tokens=cap))
    assert stream.final is None

    read_to_the_end(stream, ending)
    final = stream.final  # the reading thread ended it, whichever way

    assert_final(final, ending)
    engine.close()
    assert stream.final is final
    assert engine.load.running == 0
