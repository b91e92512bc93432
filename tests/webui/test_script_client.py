"""The real gradio_client against the whole app on a loopback port, with a real login session."""

from __future__ import annotations

import pytest
from gradio_client import Client

from core.audit import CHAT_REQUEST


@pytest.fixture
def chat(chat_server):
    return chat_server()


def client_for(chat, user: str) -> Client:
    session = chat.login(user)
    return Client(chat.url, headers=chat.session_headers(session), verbose=False)


def test_client_streams_partial_replies_and_continues_the_conversation(chat):
    client = client_for(chat, "alice")
    job = client.submit("hello there friend", None, api_name="/chat")
    partials = [update["reply"] for update in job]
    final = job.outputs()[-1]
    assert final["status"] == "complete"
    assert final["reply"] == "You said: hello there friend"
    assert len({p for p in partials if p}) > 1  # several partial renderings arrived

    follow = client.predict("again", final["conversation_id"], api_name="/chat")
    assert follow["conversation_id"] == final["conversation_id"]
    listed = client.predict("", api_name="/list_conversations")
    assert [c["id"] for c in listed] == [final["conversation_id"]]
    stored = client.predict(final["conversation_id"], api_name="/get_conversation")
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]
    # The engine saw the earlier turns, rebuilt from the server-side history.
    assert [m.content for m in chat.services.engine.requests[-1].messages][:2] == [
        "hello there friend",
        "You said: hello there friend",
    ]
    records = chat.services.audit_log.query(type=CHAT_REQUEST).records
    assert len(records) == 2 and all(r.actor == chat.key("alice") for r in records)


def test_too_long_message_is_refused_with_a_clear_notice(chat):
    client = client_for(chat, "alice")
    result = client.predict("x" * 9000, None, api_name="/chat")
    assert result["status"] == "refused" and result["retry_after"] is None
    assert "too long" in result["notice"]
    assert chat.services.engine.requests == []


def test_one_user_cannot_read_or_continue_another_users_conversation(chat):
    alice, bob = client_for(chat, "alice"), client_for(chat, "bob")
    mine = alice.predict("a secret plan", None, api_name="/chat")["conversation_id"]
    with pytest.raises(Exception, match="not found"):
        bob.predict(mine, api_name="/get_conversation")
    with pytest.raises(Exception, match="not found"):
        bob.predict(mine, api_name="/delete_conversation")
    hijack = bob.predict("tell me more", mine, api_name="/chat")
    assert hijack["status"] == "refused" and "not found" in hijack["notice"].lower()
    assert bob.predict("", api_name="/list_conversations") == []
    # Alice's conversation is untouched, and the attempts were audited.
    assert len(alice.predict(mine, api_name="/get_conversation")["messages"]) == 2
    attempts = chat.services.audit_log.query(type="object.not_found").records
    assert {r.actor for r in attempts} == {chat.key("bob")} and len(attempts) >= 3


def test_without_a_session_the_client_cannot_even_connect(chat):
    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises its own error types
        Client(chat.url, verbose=False)


def test_over_the_chat_limit_the_client_gets_rate_limited_with_a_wait(chat_server):
    chat = chat_server(limits={"chat_per_minute": 1})
    client = client_for(chat, "alice")
    first = client.predict("hello", None, api_name="/chat")
    assert (first["status"], first["retry_after"]) == ("complete", None)
    second = client.predict("hello again", first["conversation_id"], api_name="/chat")
    assert second["status"] == "rate_limited"
    assert 1 <= second["retry_after"] <= 60
    assert second["reply"] == "" and "too quickly" in second["notice"]
    assert len(chat.services.engine.requests) == 1
    # Other refusals stay "refused", with no wait to offer.
    other = client_for(chat, "bob").predict("x" * 9000, None, api_name="/chat")
    assert (other["status"], other["retry_after"]) == ("refused", None)
