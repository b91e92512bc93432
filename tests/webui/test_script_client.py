"""The real gradio_client against the real app on a loopback port (fake engine, fake auth gate)."""

from __future__ import annotations

import os

import pytest
from gradio_client import Client

from auth.identity import User
from config import load_settings
from model.fake_engine import FakeEngine
from store.events import CHAT_REQUEST, MemoryAuditSink
from tests.live_server import free_port, live_server
from tests.webui.fakes import FixedUserMiddleware, MemoryHistory
from webui.app import Services, create_app

ALICE = User(issuer="https://idp.test", subject="alice-sub", name="Alice")


@pytest.fixture
def served(monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    port = free_port()
    settings = load_settings(None, server={"port": port, "public_url": f"http://127.0.0.1:{port}"})
    services = Services(
        engine=FakeEngine(delay=0.05), history=MemoryHistory(), audit=MemoryAuditSink()
    )
    app = create_app(settings, services)
    app.add_middleware(FixedUserMiddleware, user=ALICE)
    with live_server(app, port=port) as url:
        yield url, services


def test_client_streams_partial_replies_and_continues_the_conversation(served):
    url, services = served
    client = Client(url, verbose=False)
    job = client.submit("hello there friend", None, api_name="/chat")
    partials = [update["reply"] for update in job]
    final = job.outputs()[-1]
    assert final["status"] == "complete"
    assert final["reply"] == "You said: hello there friend"
    # More than one partial rendering arrived before the end.
    assert len({p for p in partials if p}) > 1

    follow = client.predict("again", final["conversation_id"], api_name="/chat")
    assert follow["conversation_id"] == final["conversation_id"]
    conversation = services.history.get_conversation(ALICE.key, final["conversation_id"])
    assert [m.role for m in conversation.messages] == ["user", "assistant", "user", "assistant"]
    # The engine saw the earlier turns, rebuilt from the server-side history.
    assert [m.content for m in services.engine.requests[-1].messages][:2] == [
        "hello there friend",
        "You said: hello there friend",
    ]
    assert len(services.audit.of_type(CHAT_REQUEST)) == 2


def test_too_long_message_is_refused_with_a_clear_notice(served):
    url, services = served
    client = Client(url, verbose=False)
    result = client.predict("x" * 9000, None, api_name="/chat")
    assert result["status"] == "refused"
    assert "too long" in result["notice"]
    assert services.engine.requests == []
    assert os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] == "1"
