"""OpenAIEngine against `transformers serve` with real weights (SmolLM2-135M-Instruct).

The tiny random model in test_openai_engine.py exercises the protocol; only real weights show
that a user's question reaches the model through the server's chat template and comes back as a
correct, streamed answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from bench.smollm2 import smollm2_dir
from model.openai_engine import OpenAIEngine
from model.openai_settings import OpenAISettings
from model.settings import GenerationSettings
from tests.model.conftest import ask
from tests.model.openai_server import OpenAIServer, openai_server


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAIServer]:
    log = tmp_path_factory.mktemp("smollm2-server") / "server.log"
    with openai_server(smollm2_dir(), log) as running:
        yield running


def test_a_question_streams_the_right_answer(smollm2_server: OpenAIServer) -> None:
    remote = OpenAISettings(base_url=smollm2_server.base_url, model=smollm2_server.model)
    engine = OpenAIEngine(remote, GenerationSettings(max_new_tokens=64))
    with contextlib.closing(engine):
        stream = engine.stream(ask("What is the capital of France?", temperature=0.0))
        deltas = [delta.text for delta in stream]

    reply = "".join(deltas)
    assert "Paris" in reply, reply
    assert len(deltas) > 1
    assert stream.final.finish_reason == "stop"  # the model ended its turn: no error, no cut-off
    assert stream.final.time_to_first_token is not None
