"""No blocking SQL or Redis call runs on the event loop, along every journey that reaches them.

A blocking call on the loop stalls every user's stream for as long as the database or Redis takes.
The journeys run on the whole app with SQLite, once with shared state in memory and once in the
real Redis; the watch (tests/event_loop_io.py) records each call made from a thread running a loop.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from gradio_client import Client

from core.audit import ACCESS_DENIED, AuditEvent
from core.identity import User
from tests.event_loop_io import watch_event_loop_io
from tests.gradio_queue import completed, join, messages

PROXIED = {"trusted_proxies": ["127.0.0.1/32"]}
ACCESS = {"allow": ["127.0.0.0/8", "10.0.0.0/8"], "admin_allow": ["127.0.0.0/8"]}
WORDS = " ".join(f"word{i}" for i in range(60))  # about a second of reply from the fake engine
LIMITS = {"unauthenticated_per_minute_per_ip": 20, "failed_tokens_per_minute_per_ip": 2}


@pytest.fixture(params=["memory", "redis"])
def chat(chat_server, request):
    return chat_server(
        shared_state=request.param == "redis", server=PROXIED, access=ACCESS, limits=LIMITS
    )


def run(client: httpx.Client, session_hash: str, fn_index: int, data: list) -> dict[str, Any]:
    """One event through queue/join and queue/data, as the browser sends it; its final message."""
    joined = join(client, session_hash, fn_index, data)
    assert joined.status_code == 200, joined.text
    return completed(client, session_hash)


class Page:
    """The per-user part of the page (tabs, handlers) as one browser tab renders it."""

    def __init__(self, client: httpx.Client, session_hash: str) -> None:
        self.client, self.session_hash = client, session_hash
        config = client.get("/config").json()
        [load] = [
            d["id"] for d in config["dependencies"] if [t[1] for t in d["targets"]] == ["load"]
        ]
        rendered = run(client, session_hash, load, [])["output"]["render_config"]
        self.components = {c["id"]: c for c in rendered["components"]}
        self.dependencies = rendered["dependencies"]

    def click(self, elem_id: str, **values: Any) -> dict[str, Any]:
        """Click the button `elem_id` with its inputs at their defaults, or `values` by elem_id."""
        [button] = [i for i, c in self.components.items() if c["props"].get("elem_id") == elem_id]
        [fn] = [d for d in self.dependencies if [button, "click"] in d["targets"]]
        data = [self._value(i, values) for i in fn["inputs"]]
        return run(self.client, self.session_hash, fn["id"], data)

    def _value(self, component: int, values: dict[str, Any]) -> Any:
        props = self.components[component]["props"]
        if props.get("elem_id") in values:
            return values[props["elem_id"]]
        return props.get("value", "")


def stop_a_reply(chat, client: httpx.Client, session_hash: str) -> None:
    """Start a long reply, press Stop once it streams; Gradio closes the handler on its loop."""
    config = client.get("/config").json()
    fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")
    joined = client.post(
        "/gradio_api/queue/join",
        json={"data": [WORDS, None], "fn_index": fn, "session_hash": session_hash},
    )
    event = {"session_hash": session_hash, "fn_index": fn, "event_id": joined.json()["event_id"]}
    for message in messages(client, session_hash):
        if message.get("msg") == "process_generating" and event:
            assert client.post("/gradio_api/cancel", json=event).status_code == 200
            event = {}
        if message.get("msg") == "process_completed":
            break
    history, owner = chat.services.history, chat.key("alice")
    latest = history.list_conversations(owner)[0]
    deadline = time.monotonic() + 10  # the stopped reply is saved just after the cancel
    while history.get_conversation(owner, latest.id).messages[-1].status == "streaming":
        assert time.monotonic() < deadline, "the stopped reply was not saved"
        time.sleep(0.05)
    assert history.get_conversation(owner, latest.id).messages[-1].status == "stopped"


def journeys(chat) -> None:
    """Every way a person, a script or an attacker reaches SQL or Redis through async code."""
    # Login through the embedded IdP (rate limit, login state, session, audit, token policy).
    alice, admin = chat.login("alice"), chat.login("admin1")
    outsider = httpx.Client(base_url=chat.url, timeout=30)
    page = outsider.get("/login", follow_redirects=True)
    refused = outsider.post(page.url, data={"sub": "outsider"}, follow_redirects=True)
    assert refused.status_code == 403
    # A chat turn over the Gradio queue, then history and exports.
    script = Client(chat.url, headers=chat.session_headers(alice), verbose=False)
    reply = script.predict("hello there", None, api_name="/chat")
    assert reply["status"] == "complete"
    conversation = reply["conversation_id"]
    assert [c["id"] for c in script.predict("", api_name="/list_conversations")] == [conversation]
    assert alice.get(f"/export/{conversation}.md").status_code == 200
    assert alice.get(f"/export/{conversation}.json").status_code == 200
    assert alice.get("/export/none.md").status_code == 404
    stop_a_reply(chat, alice, "stop-tab")
    # The admin tab, the audit export, and an admin action from outside the admin network.
    tab = Page(admin, "admin-tab")
    assert tab.click("audit-search")["success"]
    assert tab.click("sessions-refresh")["success"]
    assert admin.get("/admin/audit.csv").status_code == 200
    assert alice.get("/admin/audit.csv").status_code == 403
    outside = {"X-Forwarded-For": "10.1.2.3"}
    assert admin.get("/admin/audit.csv", headers=outside).status_code == 403
    # Another user's Gradio session and event are refused (and audited).
    bob = chat.login("bob")
    stolen = bob.get("/gradio_api/queue/data", params={"session_hash": "admin-tab"})
    assert stolen.status_code == 403
    # A token made in the tokens tab, used by a script; unknown tokens until the limit.
    mine = Page(alice, "alice-tab")
    made = mine.click("token-create", **{"token-name": "nightly"})
    secret = made["output"]["data"][0]
    assert secret.startswith("chat_pat_")
    bearer = {"Authorization": f"Bearer {secret}", "Accept": "application/json"}
    assert httpx.get(f"{chat.url}/config", headers=bearer, timeout=30).status_code == 200
    wrong = {"Authorization": "Bearer chat_pat_unknown", "X-Forwarded-For": "10.0.0.9"}
    statuses = [httpx.get(f"{chat.url}/config", headers=wrong).status_code for _ in range(4)]
    assert statuses[0] == 401 and statuses[-1] == 429
    # An anonymous flood, an address outside the allowlist, a foreign page's POST.
    anonymous = {"Accept": "application/json", "X-Forwarded-For": "10.0.0.66"}
    flood = [httpx.get(f"{chat.url}/config", headers=anonymous).status_code for _ in range(21)]
    assert flood[0] == 401 and flood[-1] == 429
    stranger = httpx.get(f"{chat.url}/config", headers={"X-Forwarded-For": "192.0.2.1"})
    assert stranger.status_code == 403
    foreign = alice.post("/logout", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    # Probes, then logout with the form's CSRF token.
    assert httpx.get(f"{chat.url}/healthz").status_code == 200
    assert httpx.get(f"{chat.url}/readyz").status_code == 200
    form = alice.get("/signout")
    [token] = re.findall(r'name="csrf_token" value="([^"]+)"', form.text)
    out = alice.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert alice.get("/config", headers={"Accept": "application/json"}).status_code == 401
    denied = {r.outcome for r in chat.services.audit_log.query(type=ACCESS_DENIED).records}
    assert {"foreign_origin", "ip_not_allowed:all", "foreign_session_hash"} <= denied


def test_no_journey_makes_a_blocking_call_on_the_event_loop(chat):
    with watch_event_loop_io() as violations:
        journeys(chat)
    assert violations == [], f"{len(violations)} blocking calls on the loop:\n" + "\n".join(
        violations
    )


def test_the_watch_sees_a_blocking_call_made_on_a_loop(chat, no_blocking_io_on_the_event_loop):
    """The watch itself: SQL and Redis calls from a coroutine are caught, from a thread are not."""
    audit, limiter = chat.services.audit, chat.services.limiter
    event = AuditEvent(ACCESS_DENIED, outcome="probe")

    async def blocking() -> None:
        audit.record(event)
        limiter.hit_chat("probe")

    async def threaded() -> None:
        await asyncio.to_thread(audit.record, event)
        await asyncio.to_thread(limiter.hit_chat, "probe")

    def in_a_server_thread(coroutine) -> None:  # as the servers under test run their loops
        worker = threading.Thread(target=asyncio.run, args=(coroutine,))
        worker.start()
        worker.join()

    with watch_event_loop_io() as violations:
        in_a_server_thread(threaded())
        assert violations == []
        in_a_server_thread(blocking())
    kinds = {violation.split(" ", 1)[0] for violation in violations}
    assert kinds == (
        {"SQL", "Redis"} if chat.settings.limits.storage.startswith("redis") else {"SQL"}
    )
    no_blocking_io_on_the_event_loop.clear()  # the suite-wide watch saw them too, on purpose


def test_a_users_token_policy_applies_at_login_off_the_loop(chat):
    """Login revokes the admin-scope tokens of a person who is no longer an admin (SQL writes)."""
    owner = User(chat.issuer, "alice", groups=("staff",))
    expires = datetime.now(UTC) + timedelta(days=1)
    chat.services.api_tokens.create(owner, "old-admin", expires, admin_scope=True)
    with watch_event_loop_io() as violations:
        chat.login("alice")
    assert violations == []
    [token] = chat.services.api_tokens.list_tokens(owner.key)
    assert token.revoked_at is not None
