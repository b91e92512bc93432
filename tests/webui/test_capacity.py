"""150 signed-in users at once, with the shipped settings: nobody gets Gradio's "Queue is full";
each chat turn is served or told "busy, try again in N seconds" (retry_after for scripts), and
page loads during such a burst are served too.

The users talk to the real app the way the browser and gradio_client do (queue/join, then
queue/data's server-sent events), 150 streams from one asyncio client: 150 gradio_client Clients
take ~30 s just to connect on 2 cores.
"""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth.session_cookie import SessionCookie
from auth.session_manager import SessionManager
from core.audit import MemoryAuditSink
from core.identity import User
from model.fake_engine import FakeEngine
from model.settings import GenerationSettings
from tests.own_thread import in_own_thread
from tests.webui.fakes import MemoryHistory
from webui.chat_service import ChatService, TurnContext
from webui.settings import UISettings

SHIPPED = Path(__file__).resolve().parents[2] / "settings.toml"
USERS = 150
MESSAGE = "one two three four five six seven eight nine ten"  # ~0.3 s of fake reply


@dataclass(frozen=True)
class Outcome:
    joined: int  # queue/join's HTTP status: 503 is Gradio's "Queue is full"
    output: dict[str, Any] | None = None  # the event's last output (the chat API's dict)
    success: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Shipped:
    generation: GenerationSettings
    ui: UISettings


@pytest.fixture
def shipped() -> Shipped:
    """settings.toml's [generation] and [ui] as shipped."""
    sections = tomllib.loads(SHIPPED.read_text())
    return Shipped(GenerationSettings(**sections["generation"]), UISettings(**sections["ui"]))


@pytest.fixture
def crowd(chat_server, shipped):
    """The app with the shipped [generation] and [ui] settings and a fake engine shaped like them:
    its rows and line as shipped, but expecting each reply to take max_wait_seconds / 12, so 12
    rounds of rows may wait and the rest of the 150 are told when to come back."""
    generation = shipped.generation
    engine = FakeEngine(
        delay=0.025,
        max_concurrent=generation.max_concurrent,
        max_queue=generation.max_queue,
        max_wait=generation.max_wait_seconds,
        seed=generation.max_wait_seconds / 12,
    )
    chat = chat_server(engine, generation=generation.model_dump(), ui=shipped.ui.model_dump())
    return chat, signed_in(chat, USERS)


def signed_in(chat, users: int) -> list[dict[str, str]]:
    """One real session per user, started as the login callback starts it: its Cookie header."""
    settings = chat.settings.session
    cookie = SessionCookie(
        [key.get_secret_value() for key in settings.secret_keys],
        https=False,
        name=settings.cookie_name,
        max_age_seconds=3600,
    )
    sessions = SessionManager(
        chat.services.sessions,
        cookie,
        idle=timedelta(minutes=60),
        absolute=timedelta(hours=1),
        clock=lambda: datetime.now(UTC),
    )
    headers = []
    for i in range(users):
        user = User(issuer=chat.issuer, subject=f"user{i:03d}", name=f"User {i}")
        started = sessions.start(
            user, ip="127.0.0.1", user_agent="test", idp_session_id=None, id_token=None
        )
        headers.append({"Cookie": f"{settings.cookie_name}={cookie.sign(started.id)}"})
    return headers


def handlers(chat, headers: dict[str, str]) -> tuple[int, int]:
    """The fn_index of the chat API and of the page load (which renders the user's tabs)."""
    config = httpx.get(f"{chat.url}/config", headers=headers).json()
    [chat_fn] = [d["id"] for d in config["dependencies"] if d.get("api_name") == "chat"]
    [load_fn] = [
        d["id"] for d in config["dependencies"] if [t[1] for t in d["targets"]] == ["load"]
    ]
    return chat_fn, load_fn


async def event(client: httpx.AsyncClient, headers: dict[str, str], fn: int, data: list) -> Outcome:
    """One event, as a browser tab or gradio_client sends it: join, then read until completed."""
    started, session_hash = time.monotonic(), uuid.uuid4().hex[:12]
    joined = await client.post(
        "/gradio_api/queue/join",
        json={"data": data, "fn_index": fn, "session_hash": session_hash},
        headers=headers,
    )
    if joined.status_code != 200:
        return Outcome(joined.status_code, seconds=time.monotonic() - started)
    async with client.stream(
        "GET", "/gradio_api/queue/data", params={"session_hash": session_hash}, headers=headers
    ) as stream:
        async for line in stream.aiter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                output = (message.get("output") or {}).get("data") or [None]
                found = output[0] if isinstance(output[0], dict) else None
                seconds = time.monotonic() - started
                return Outcome(200, found, bool(message.get("success")), seconds)
    return Outcome(200, seconds=time.monotonic() - started)


def at_once(url: str, events: list[tuple[dict[str, str], int, list]]) -> list[Outcome]:
    async def run() -> list[Outcome]:
        # A connection per request: a pooled keep-alive connection the server closed while idle
        # would fail the next request on it, a client artifact this test is not about.
        limits = httpx.Limits(max_connections=4 * len(events), max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
            return await asyncio.gather(*(event(client, *e) for e in events))

    return in_own_thread(asyncio.run, run())  # not on a loop an earlier browser test left


def test_150_script_users_at_once_are_served_or_told_when_to_come_back(crowd, shipped):
    chat, users = crowd
    chat_fn, _ = handlers(chat, users[0])
    outcomes = at_once(chat.url, [(user, chat_fn, [MESSAGE, None]) for user in users])

    assert Counter(o.joined for o in outcomes) == {200: USERS}  # no 503 "Queue is full"
    turns = [o.output for o in outcomes]
    assert all(turn is not None for turn in turns)
    statuses = Counter(turn["status"] for turn in turns)
    assert set(statuses) <= {"complete", "refused"}, statuses
    rows = shipped.generation.max_concurrent
    assert statuses["complete"] >= rows * 13  # the rows, then 12 rounds of them waiting in line
    for turn in turns:
        if turn["status"] == "complete":
            assert turn["reply"] == f"You said: {MESSAGE}" and turn["retry_after"] is None
        else:
            assert 1 <= turn["retry_after"] <= shipped.generation.max_wait_seconds
            assert turn["notice"] == (
                f"The assistant is busy; please try again in {turn['retry_after']} seconds."
            )


def test_page_loads_during_a_chat_burst_are_served(crowd):
    chat, users = crowd
    chat_fn, load_fn = handlers(chat, users[0])
    events = [(user, chat_fn, [MESSAGE, None]) for user in users]
    events += [(user, load_fn, []) for user in users]
    outcomes = at_once(chat.url, events)

    assert Counter(o.joined for o in outcomes) == {200: 2 * USERS}  # no 503 "Queue is full"
    loads = outcomes[USERS:]
    assert all(o.success for o in loads)
    assert max(o.seconds for o in loads) < 60  # 13-19 s for all 150 on 2 cores shared with us


@pytest.mark.parametrize(
    ("locale", "notice"),
    [
        ("en", "The assistant is busy; please try again in 42 seconds."),
        ("zh-CN", "助手正忙，请在 42 秒后再试。"),
    ],
)
def test_a_busy_refusal_says_when_to_come_back(locale, notice):
    engine = FakeEngine(max_concurrent=1, max_queue=5, max_wait=0, seed=42)
    engine.gate.acquire()  # someone else's reply holds the only row, and no one may wait
    service = ChatService(engine, MemoryHistory(), MemoryAuditSink(), GenerationSettings())
    user = User(issuer="https://idp.test", subject="alice")
    [update] = service.reply(TurnContext(user, locale=locale), None, "hello")
    assert (update.status, update.retry_after, update.notice) == ("refused", 42, notice)
