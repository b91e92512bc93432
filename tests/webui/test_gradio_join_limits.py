"""Per-user limits on the Gradio queue: one user's flood of joins or fresh tabs is refused with a 429
that says when to retry, is audited once, and leaves other users' results untouched."""

from __future__ import annotations

from core.audit import RATE_LIMITED
from model.fake_engine import FakeEngine
from tests.gradio_queue import api_index, join, messages


def test_a_flood_of_new_tabs_is_refused_and_another_users_result_survives(chat_server):
    chat = chat_server(FakeEngine(delay=0.05), limits={"gradio_sessions_per_hour": 5})
    alice, bob = chat.login("alice"), chat.login("bob")
    chat_fn = api_index(alice, "chat")
    assert join(alice, "alice-tab", chat_fn, ["hello there", None]).status_code == 200

    answers = [join(bob, f"flood-{n}", chat_fn, ["x", None]) for n in range(12)]
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) == 12 - 5
    assert int(refused[0].headers["retry-after"]) > 0
    assert "new chat tabs" in refused[0].json()["message"]
    assert join(bob, "flood-0", chat_fn, ["again", None]).status_code == 200  # an open tab

    completed = [m for m in messages(alice, "alice-tab") if m.get("msg") == "process_completed"]
    assert completed and completed[0]["success"] is True
    assert completed[0]["output"]["data"][0]["reply"] == "You said: hello there"
    flood_records = [
        e
        for e in chat.services.audit_log.query(type=RATE_LIMITED).records
        if e.outcome == "gradio_sessions_per_hour"
    ]
    assert len(flood_records) == 1  # one record per window, not one per refused join


def test_joins_past_the_per_minute_limit_are_refused_for_that_user_only(chat_server):
    chat = chat_server(FakeEngine(), limits={"gradio_joins_per_minute": 4})
    alice, bob = chat.login("alice"), chat.login("bob")
    chat_fn = api_index(alice, "chat")
    statuses = [join(alice, "alice-tab", chat_fn, ["hi", None]).status_code for _ in range(6)]
    assert statuses == [200] * 4 + [429] * 2
    assert join(bob, "bob-tab", chat_fn, ["hi", None]).status_code == 200
