"""Regenerate and edit: the last question and reply are replaced together, by their owner only."""

from __future__ import annotations

import pytest

from core.history import NoTurnToReplace
from store.chat_history import ConversationNotFound

ALICE = "https://idp.example|alice"
MALLORY = "https://idp.example|mallory"


def finished_turn(history, owner: str, conversation_id: str, question: str, answer: str) -> int:
    reply = history.start_turn(owner, conversation_id, question)
    history.update_message(owner, conversation_id, reply, answer, "complete")
    return reply


def saved(history, conversation_id: str) -> list[tuple[str, str, str]]:
    messages = history.get_conversation(ALICE, conversation_id).messages
    return [(m.role, m.content, m.status) for m in messages]


def test_the_last_turn_is_replaced_by_the_new_question_and_a_streaming_reply(history):
    conversation = history.create_conversation(ALICE, "Trip")
    finished_turn(history, ALICE, conversation.id, "first", "one")
    finished_turn(history, ALICE, conversation.id, "second", "two")

    reply = history.replace_last_turn(ALICE, conversation.id, "second, edited")
    assert saved(history, conversation.id) == [
        ("user", "first", "complete"),
        ("assistant", "one", "complete"),
        ("user", "second, edited", "complete"),
        ("assistant", "", "streaming"),
    ]
    assert reply in history.live_replies()  # its lease is kept like any turn's
    history.update_message(ALICE, conversation.id, reply, "two again", "complete")
    assert saved(history, conversation.id)[-1] == ("assistant", "two again", "complete")
    assert reply not in history.live_replies()


@pytest.mark.parametrize("status", ["stopped", "error", "interrupted"])
def test_a_reply_that_ended_short_can_be_written_again(history, status):
    conversation = history.create_conversation(ALICE, "Trip")
    reply = history.start_turn(ALICE, conversation.id, "question")
    history.update_message(ALICE, conversation.id, reply, "half", status)
    history.replace_last_turn(ALICE, conversation.id, "question")
    assert saved(history, conversation.id) == [
        ("user", "question", "complete"),
        ("assistant", "", "streaming"),
    ]


def test_nothing_is_replaced_while_the_reply_is_still_being_written_or_missing(history):
    conversation = history.create_conversation(ALICE, "Trip")
    with pytest.raises(NoTurnToReplace):  # an empty conversation
        history.replace_last_turn(ALICE, conversation.id, "question")
    history.start_turn(ALICE, conversation.id, "question")
    with pytest.raises(NoTurnToReplace):  # a reply still streaming (another tab, a script)
        history.replace_last_turn(ALICE, conversation.id, "edited")
    assert saved(history, conversation.id) == [
        ("user", "question", "complete"),
        ("assistant", "", "streaming"),
    ]


def test_another_users_conversation_cannot_be_rewritten_and_the_attempt_is_audited(
    history, audit_sink
):
    conversation = history.create_conversation(ALICE, "Trip")
    finished_turn(history, ALICE, conversation.id, "question", "answer")
    with pytest.raises(ConversationNotFound):
        history.replace_last_turn(MALLORY, conversation.id, "ignore all that")
    assert saved(history, conversation.id) == [
        ("user", "question", "complete"),
        ("assistant", "answer", "complete"),
    ]
    [event] = [e for e in audit_sink.events if e.actor == MALLORY]
    assert event.outcome == "not_found" and event.details["action"] == "replace_last_turn"


def test_a_reply_keeps_the_key_of_the_notice_it_ended_with(history):
    conversation = history.create_conversation(ALICE, "Trip")
    reply = history.start_turn(ALICE, conversation.id, "question")
    history.update_message(ALICE, conversation.id, reply, "half", "error", "busy")
    last = history.get_conversation(ALICE, conversation.id).messages[-1]
    assert (last.status, last.notice) == ("error", "busy")
