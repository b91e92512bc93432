"""Stop and disconnect through the real Gradio routes stop the CPU work of the real engine."""

from __future__ import annotations

import time

import pytest
from gradio_client import Client

from model.loader import load_model, resolve_model_dir
from model.settings import GenerationSettings, ModelSettings
from model.threaded_engine import ThreadedEngine


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    cache = tmp_path_factory.mktemp("models")
    return resolve_model_dir(ModelSettings(source="tiny-random", cache_dir=cache))


def test_cancelling_a_streaming_reply_ends_its_generation_and_saves_it_as_stopped(
    chat_server, tiny_model_dir
):
    settings = ModelSettings(source="tiny-random", cache_dir=tiny_model_dir.parent)
    engine = ThreadedEngine(
        load_model(tiny_model_dir, settings), GenerationSettings(max_new_tokens=5000)
    )
    chat = chat_server(engine=engine)
    session = chat.login("alice")
    client = Client(chat.url, headers=chat.session_headers(session), verbose=False)
    job = client.submit("a long one please", None, api_name="/chat")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        job.outputs() and len(job.outputs()[-1]["reply"]) > 20
    ):
        time.sleep(0.05)
    assert engine.load.running == 1, "generation did not start"

    job.cancel()
    deadline = time.monotonic() + 10
    while engine.load.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.load.running == 0  # its row left the decoder: the CPU work stopped

    conversation_id = job.outputs()[-1]["conversation_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages = chat.services.history.get_conversation(chat.key("alice"), conversation_id)
        if messages.messages[-1].status != "streaming":  # the final save is done
            break
        time.sleep(0.05)
    assert [m.role for m in messages.messages] == ["user", "assistant"]
    reply = messages.messages[-1]
    assert reply.role == "assistant" and reply.status == "stopped" and reply.content
