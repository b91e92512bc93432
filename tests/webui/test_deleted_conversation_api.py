"""A conversation deleted through the script API answers {"deleted": true} as before, and from then on
its id behaves like a missing one everywhere a script or a browser can use it: list, get, export,
continuing it, deleting it again."""

from __future__ import annotations

import contextlib

import pytest
from gradio_client import Client

from core.audit import CONVERSATION_DELETED, NOT_FOUND
from model.fake_engine import FakeEngine


@pytest.fixture
def chat(chat_server):
    return chat_server()


def test_a_deleted_id_is_missing_everywhere(chat):
    session = chat.login("alice")
    alice = Client(chat.url, headers=chat.session_headers(session), verbose=False)
    gone = alice.predict("the merger plan", None, api_name="/chat")["conversation_id"]
    kept = alice.predict("lunch options", None, api_name="/chat")["conversation_id"]
    assert session.get(f"/export/{gone}.md").status_code == 200

    assert alice.predict(gone, api_name="/delete_conversation") == {"deleted": True}

    assert [c["id"] for c in alice.predict("", api_name="/list_conversations")] == [kept]
    assert alice.predict("merger", api_name="/list_conversations") == []
    with pytest.raises(Exception, match="not found"):
        alice.predict(gone, api_name="/get_conversation")
    with pytest.raises(Exception, match="not found"):
        alice.predict(gone, api_name="/delete_conversation")
    assert session.get(f"/export/{gone}.md").status_code == 404
    assert session.get(f"/export/{gone}.json").status_code == 404
    carried_on = alice.predict("and then?", gone, api_name="/chat")
    assert carried_on["status"] == "refused" and "not found" in carried_on["notice"].lower()

    deleted = chat.services.audit_log.query(type=CONVERSATION_DELETED).records
    assert [(r.actor, r.target) for r in deleted] == [(chat.key("alice"), gone)]
    missing = chat.services.audit_log.query(type=NOT_FOUND).records
    assert {r.target for r in missing} == {gone}


def test_a_reply_streaming_into_a_deleted_conversation_stops(chat_server):
    chat = chat_server(FakeEngine(delay=0.05))
    session = chat.login("alice")
    alice = Client(chat.url, headers=chat.session_headers(session), verbose=False)
    # The fake engine repeats the message word by word: 200 words stream for about 10 s.
    job = alice.submit(" ".join(["story"] * 200), None, api_name="/chat")
    conversation_id = None
    for update in job:
        if update["reply"]:
            conversation_id = update["conversation_id"]
            break
    assert conversation_id is not None

    history, owner = chat.services.history, chat.key("alice")
    assert alice.predict(conversation_id, api_name="/delete_conversation") == {"deleted": True}
    # The turn ends at its next save, which finds nothing to reply into. (How the script is told
    # is the chat service's: today the handler fails, which gradio_client raises.)
    with contextlib.suppress(Exception):
        job.result()
    shown = max((len(update["reply"]) for update in job.outputs()), default=0)

    history.restore(owner, conversation_id)
    reply = history.get_conversation(owner, conversation_id).messages[-1]
    assert reply.status == "streaming"  # its final save was refused too
    assert len(reply.content) <= shown
