"""Gradio's routes tried as an attacker with two ordinary accounts would, on the whole app.

Alice and Bob sign in through the embedded OpenID provider; requests are sent the way the browser
and gradio_client send them (queue/join, queue/data, cancel), and then the way they should not be.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from core.audit import ACCESS_DENIED
from model.fake_engine import FakeEngine
from tests.gradio_queue import api_index, join, messages, render_page

SLOW_WORDS = " ".join(f"word{i}" for i in range(40))  # 41 words at 0.05 s: about 2 s of reply


@pytest.fixture
def chat(chat_server):
    return chat_server(FakeEngine(delay=0.05))


def functions(rendered: dict[str, Any]) -> set[int]:
    return {d["id"] for d in rendered["dependencies"]}


class Reply:
    """A chat reply streaming in a background thread through queue/join and queue/data."""

    def __init__(self, client: httpx.Client, session_hash: str, text: str) -> None:
        self.client = client
        self.session_hash = session_hash
        response = join(client, session_hash, api_index(client, "chat"), [text, None])
        assert response.status_code == 200, response.text
        self.event_id: str = response.json()["event_id"]
        self.received: list[dict[str, Any]] = []
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.started.wait(10), "the reply did not start"

    def _read(self) -> None:
        for message in messages(self.client, self.session_hash):
            self.received.append(message)
            if message.get("msg") == "process_generating":
                self.started.set()
            if message.get("msg") == "process_completed":
                return

    def final(self) -> dict[str, Any]:
        self._thread.join(30)
        [done] = [m for m in self.received if m.get("msg") == "process_completed"]
        return done["output"]["data"][0]


def denied(chat, outcome: str) -> list:
    return [
        r for r in chat.services.audit_log.query(type=ACCESS_DENIED).records if r.outcome == outcome
    ]


def test_another_user_cannot_reach_a_session_through_call_and_it_keeps_streaming(chat):
    alice, bob = chat.login("alice"), chat.login("bob")
    reply = Reply(alice, "alice-tab", SLOW_WORDS)
    stolen = bob.post(
        "/gradio_api/call/list_conversations", json={"data": [""], "session_hash": "alice-tab"}
    )
    assert stolen.status_code == 404
    read = bob.get(f"/gradio_api/call/list_conversations/{reply.event_id}")
    assert read.status_code == 404
    assert "word39" not in stolen.text + read.text
    final = reply.final()
    assert final["status"] == "complete" and final["reply"].endswith("word39")


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/gradio_api/call/chat", {"json": {"data": ["hi", None]}}),
        ("POST", "/gradio_api/call/v2/chat", {"json": {"message": "hi"}}),
        ("GET", "/gradio_api/call/chat/0123456789abcdef0123456789abcdef", {}),
        ("POST", "/gradio_api/run/chat", {"json": {"data": ["hi", None]}}),
        ("POST", "/gradio_api/api/chat", {"json": {"data": ["hi", None]}}),
        ("POST", "/gradio_api/upload", {"files": {"files": ("a.txt", b"hello", "text/plain")}}),
        ("GET", "/gradio_api/upload_progress?upload_id=x", {}),
        ("GET", "/gradio_api/file=/etc/hostname", {}),
        ("GET", "/gradio_api/file/etc/hostname", {}),
        ("GET", "/gradio_api/proxy=http://127.0.0.1/", {}),
        ("POST", "/gradio_api/component_server", {"data": {"session_hash": "h", "fn_name": "x"}}),
        ("GET", "/gradio_api/stream/tab/run/1/playlist.m3u8", {}),
        ("POST", "/gradio_api/stream/0123456789abcdef", {"json": {}}),
        ("GET", "/gradio_api/startup-events", {}),
        ("GET", "/gradio_api/openapi.json", {}),
        ("GET", "/gradio_api/user", {}),
        ("GET", "/gradio_api/token", {}),
        ("GET", "/gradio_api/app_id", {}),
        ("GET", "/gradio_api/deep_link?session_hash=tab", {}),
        ("POST", "/gradio_api/vibe-edit", {"json": {"prompt": "x"}}),
        ("POST", "/gradio_api/process_recording", {"json": {}}),
        ("GET", "/gradio_api/runs", {}),
        ("GET", "/monitoring", {}),
        ("GET", "/svelte/index.js", {}),
        ("GET", "/manifest.json", {}),
        ("POST", "/login", {"data": {"username": "a", "password": "b"}}),
        ("GET", "/logout", {}),
        ("GET", "/?page=x", {}),  # the product has one page; Gradio raised KeyError on others
        ("GET", "/?page=", {}),
    ],
)
def test_gradio_routes_the_product_does_not_use_answer_404(chat, method, path, kwargs):
    alice = chat.login("alice")
    response = alice.request(method, path, **kwargs)
    assert response.status_code == 404, (path, response.status_code, response.text[:200])
    assert response.json()["error"] == "not_found"


def test_another_users_event_cannot_be_cancelled_or_reset_and_the_attempt_is_audited(chat):
    alice, bob = chat.login("alice"), chat.login("bob")
    render_page(bob, "bob-tab")
    reply = Reply(alice, "alice-tab", SLOW_WORDS)
    fn_index = api_index(bob, "chat")
    cancel = bob.post(
        "/gradio_api/cancel",
        json={"session_hash": "bob-tab", "fn_index": fn_index, "event_id": reply.event_id},
    )
    assert cancel.status_code == 403, cancel.text
    reset = bob.post("/gradio_api/reset", json={"event_id": reply.event_id})
    assert reset.status_code == 403, reset.text
    with_her_hash = bob.post(
        "/gradio_api/cancel",
        json={"session_hash": "alice-tab", "fn_index": fn_index, "event_id": reply.event_id},
    )
    assert with_her_hash.status_code == 403
    assert (
        bob.get("/gradio_api/queue/data", params={"session_hash": "alice-tab"}).status_code == 403
    )

    final = reply.final()
    assert final["status"] == "complete" and final["reply"].endswith("word39")
    stored = chat.services.history.get_conversation(chat.key("alice"), final["conversation_id"])
    assert [(m.role, m.status) for m in stored.messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert [r.actor for r in denied(chat, "foreign_event")] == [chat.key("bob")] * 2
    assert [r.actor for r in denied(chat, "foreign_session_hash")] == [chat.key("bob")] * 2


def test_the_owner_cancels_their_own_reply_and_it_is_saved_as_stopped(chat):
    alice = chat.login("alice")
    reply = Reply(alice, "alice-tab", SLOW_WORDS)
    cancel = alice.post(
        "/gradio_api/cancel",
        json={
            "session_hash": "alice-tab",
            "fn_index": api_index(alice, "chat"),
            "event_id": reply.event_id,
        },
    )
    assert cancel.status_code == 200, cancel.text
    reply._thread.join(30)
    history, alice_key = chat.services.history, chat.key("alice")
    [conversation] = history.list_conversations(alice_key)

    def statuses() -> list[tuple[str, str]]:
        stored = history.get_conversation(alice_key, conversation.id)
        return [(m.role, m.status) for m in stored.messages]

    deadline = time.monotonic() + 10  # the reply's final save follows the cancel closely
    while statuses()[-1] == ("assistant", "streaming") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert statuses() == [("user", "complete"), ("assistant", "stopped")]


def test_an_admin_handler_is_unknown_in_a_non_admins_session(chat):
    admin, alice = chat.login("admin1"), chat.login("alice")
    admin_only = functions(render_page(admin, "admin-tab")) - functions(
        render_page(alice, "alice-tab")
    )
    assert admin_only  # the audit tab's handlers
    for fn_index in sorted(admin_only):
        response = join(alice, "alice-tab", fn_index, [])
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "unknown_function"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


BAD_JOINS = {
    "fn_index -1": {"fn_index": -1},
    "fn_index 9999": {"fn_index": 9999},
    "fn_index as text": {"fn_index": "1"},
    "fn_index true": {"fn_index": True},
    "no fn_index": {"fn_index": None},
    "empty session_hash": {"session_hash": ""},
    "session_hash with a slash": {"session_hash": "a/b"},
    "long session_hash": {"session_hash": "h" * 65},
    "session_hash a number": {"session_hash": 7},
    "no session_hash": {"session_hash": None},
    "data not a list": {"data": "hello"},
    "too few inputs": {"data": ["hello"]},
    "too many inputs": {"data": ["hello", None, "x"]},
}


@pytest.mark.parametrize("change", BAD_JOINS.values(), ids=BAD_JOINS.keys())
def test_malformed_queue_joins_get_a_4xx_with_a_json_message(chat, change, capfd):
    alice = chat.login("alice")
    body = {"data": ["hello", None], "fn_index": api_index(alice, "chat"), "session_hash": "t1"}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    response = alice.post("/gradio_api/queue/join", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["message"]
    assert "Traceback" not in "".join(capfd.readouterr())


RAW_BODIES = {
    "nested 50,000 deep": nested(50_000),
    "nested 33 deep": b'{"session_hash": "t1", "fn_index": 1, "data": ' + nested(33) + b"}",
    "NaN": b'{"session_hash": "t1", "fn_index": 1, "data": [NaN, null]}',
    "a number too large": b'{"session_hash": "t1", "fn_index": 1, "data": [1e999, null]}',
    "a lone surrogate": b'{"session_hash": "t1", "fn_index": 1, "data": ["\\ud800", null]}',
    "not JSON": b"session_hash=t1",
    "a JSON list": b'["t1"]',
    "invalid UTF-8": b'{"session_hash": "\xff"}',
}


@pytest.mark.parametrize("path", ["/gradio_api/queue/join", "/gradio_api/cancel"])
@pytest.mark.parametrize("body", RAW_BODIES.values(), ids=RAW_BODIES.keys())
def test_bodies_past_the_json_limits_get_400(chat, path, body, capfd):
    alice = chat.login("alice")
    response = alice.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert "Traceback" not in "".join(capfd.readouterr())


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/gradio_api/queue/data?session_hash=", {}, 400),
        ("GET", "/gradio_api/queue/data", {}, 400),
        ("GET", "/gradio_api/queue/data?session_hash=a&session_hash=b", {}, 400),
        # Never joined: Gradio raised its 404 after the event stream had started.
        ("GET", "/gradio_api/queue/data?session_hash=never-joined", {}, 404),
        ("GET", "/gradio_api/heartbeat/a%20b", {}, 400),
        ("GET", "/gradio_api/queue/join", {}, 405),
        ("POST", "/gradio_api/cancel", {"json": {"session_hash": "t1", "fn_index": 1}}, 400),
        (
            "POST",
            "/gradio_api/cancel",
            {"json": {"session_hash": "t1", "fn_index": "1", "event_id": "e1"}},
            400,
        ),
        (
            "POST",
            "/gradio_api/cancel",
            {"json": {"session_hash": "t1", "fn_index": 1, "event_id": ["e1"]}},
            400,
        ),
        (
            "POST",
            "/gradio_api/cancel",
            {"json": {"session_hash": "t1", "fn_index": 1, "event_id": "never-issued"}},
            404,
        ),
        ("POST", "/gradio_api/reset", {"json": {"event_id": "never-issued"}}, 404),
        ("POST", "/gradio_api/reset", {"json": {}}, 400),
    ],
)
def test_malformed_protocol_requests_get_a_4xx_quickly(chat, method, path, kwargs, status, capfd):
    alice = chat.login("alice")
    response = alice.request(method, path, timeout=5, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["message"]
    assert "Traceback" not in "".join(capfd.readouterr())


def test_the_browser_protocol_still_works_for_the_owner(chat):
    alice = chat.login("alice")
    render_page(alice, "alice-tab")
    with alice.stream("GET", "/gradio_api/heartbeat/alice-tab") as heartbeat:
        assert heartbeat.status_code == 200
    final = Reply(alice, "alice-tab", "hello there").final()
    assert final["status"] == "complete" and final["reply"] == "You said: hello there"


def test_an_input_gradio_refuses_is_logged_as_one_line_without_a_traceback(chat, capfd, caplog):
    """The sidebar's list only takes its own choices; Gradio raises on anything else. The caller
    is told; the log gets one line and no traceback (anyone could send these by the thousand)."""
    alice = chat.login("alice")
    rendered = render_page(alice, "alice-tab")
    radio = next(
        c["id"]
        for c in rendered["components"]
        if c["type"] == "radio" and c["props"].get("elem_id") != "language-switch"  # no handler
    )
    [pick] = [d["id"] for d in rendered["dependencies"] if d["inputs"] == [radio]]
    assert join(alice, "alice-tab", pick, ["not-a-choice"]).status_code == 200
    errors = [m for m in messages(alice, "alice-tab") if m.get("msg") == "process_completed"]
    assert errors and errors[0]["success"] is False
    assert "Traceback" not in "".join(capfd.readouterr())
    [record] = [r for r in caplog.records if r.name == "chat.gradio"]
    assert record.exc_info is None and "refused an input" in record.getMessage()
