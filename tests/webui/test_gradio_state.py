"""Gradio's per-tab state on the whole app: it expires after [page] state_ttl_minutes, at most
[page] max_sessions tabs are held, and a tab whose reply is running keeps its state and its result.

Tabs are driven as the browser drives them (the page's per-user part loaded through queue/join,
then its Send button); expiry is tested by sweeping with a clock moved past the TTL, not by waiting.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from app_factory import create_app
from model.fake_engine import FakeEngine
from tests.gradio_queue import completed, join, messages, render_page
from tests.webui import conftest
from webui.gradio_state import (
    WRITTEN_FOR,
    PageSessions,
    SessionCounts,
    UnsupportedGradio,
    check_supported,
)
from webui.page_settings import PageSettings

SLOW_WORDS = " ".join(f"word{i}" for i in range(40))  # 41 words at 0.05 s: about 2 s of reply


@pytest.fixture
def page_server(chat_server, monkeypatch) -> Callable[..., tuple[Any, PageSessions]]:
    """Start the app with a [page] section; returns it and the app's PageSessions."""
    built = []

    def create_and_keep(settings, services):
        app = create_app(settings, services)
        built.append(app)
        return app

    monkeypatch.setattr(conftest, "create_app", create_and_keep)

    def start(engine: FakeEngine | None = None, **page: Any) -> tuple[Any, PageSessions]:
        chat = chat_server(engine or FakeEngine(delay=0.05), page=page)
        return chat, built[-1].state.page_sessions

    return start


class Tab:
    """One browser tab: the page's per-user part, loaded as the browser loads it."""

    def __init__(self, client: httpx.Client, session_hash: str) -> None:
        self.client, self.session_hash = client, session_hash
        rendered = render_page(client, session_hash)
        [send] = [c["id"] for c in rendered["components"] if c["props"].get("elem_id") == "send"]
        [self.send_fn] = [
            d["id"] for d in rendered["dependencies"] if [send, "click"] in d["targets"]
        ]
        [search] = [
            c["id"] for c in rendered["components"] if c["props"].get("elem_id") == "history-search"
        ]
        [self.search_fn] = [
            d["id"] for d in rendered["dependencies"] if [search, "change"] in d["targets"]
        ]

    def send(self, text: str) -> httpx.Response:
        return join(self.client, self.session_hash, self.send_fn, [text, None])

    def search(self, text: str) -> httpx.Response:
        """Type in the history's search box: the list's choices are replaced for this tab."""
        return join(self.client, self.session_hash, self.search_fn, [text, None])


class Streaming:
    """A reply sent from a tab, read through queue/data in a background thread."""

    def __init__(self, tab: Tab, text: str) -> None:
        joined = tab.send(text)
        assert joined.status_code == 200, joined.text
        self.received: list[dict[str, Any]] = []
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(tab,), daemon=True)
        self._thread.start()
        assert self.started.wait(10), "the reply did not start"

    def _read(self, tab: Tab) -> None:
        for message in messages(tab.client, tab.session_hash):
            self.received.append(message)
            if message.get("msg") == "process_generating":
                self.started.set()

    def final(self) -> dict[str, Any]:
        self._thread.join(30)
        [done] = [m for m in self.received if m.get("msg") == "process_completed"]
        return done


def per_tab(counts: SessionCounts) -> tuple[int, int, int, int]:
    return counts.states, counts.last_used, counts.message_queues, counts.event_id_sets


def last_bubble(chatbot: list[dict[str, Any]]) -> str:
    """The text of the chat window's last message (Gradio sends content as typed parts)."""
    return "".join(part["text"] for part in chatbot[-1]["content"])


def on_loop(sessions: PageSessions, call: Callable[[], Any]) -> Any:
    """Run `call` on the server's event loop, where Gradio changes these structures."""

    async def run() -> Any:
        return call()

    return asyncio.run_coroutine_threadsafe(run(), sessions.loop).result(10)


def sweep_at(sessions: PageSessions, later: timedelta) -> int:
    return on_loop(sessions, lambda: sessions.sweep(datetime.now() + later))


def settled(sessions: PageSessions) -> None:
    """Wait until no event is queued or running (Gradio forgets one just after its last message)."""
    deadline = time.monotonic() + 10
    while sessions.counts().events:
        assert time.monotonic() < deadline, "an event is still held"
        time.sleep(0.02)


def test_an_idle_tab_is_dropped_after_the_ttl_and_starts_afresh(page_server):
    chat, sessions = page_server(state_ttl_minutes=1, max_sessions=10)
    alice = chat.login("alice")
    tab = Tab(alice, "alice-tab")
    assert tab.send("hello").status_code == 200
    assert completed(alice, "alice-tab")["success"]
    settled(sessions)
    assert sessions.counts().states == 1 and sessions.holds("alice-tab")

    assert sweep_at(sessions, timedelta(seconds=50)) == 0
    assert sweep_at(sessions, timedelta(seconds=61)) == 1
    assert not sessions.holds("alice-tab")
    assert per_tab(sessions.counts()) == (0, 0, 0, 0)

    # The expired tab's page is gone: its Send is refused with what to do, never a 5xx ...
    stale = tab.send("hello again")
    assert stale.status_code == 404
    assert "Reload the page" in stale.json()["message"]
    # ... and the same session hash loads the page afresh and chats.
    again = Tab(alice, "alice-tab")
    assert again.send("hello again").status_code == 200
    final = completed(alice, "alice-tab")["output"]["data"][0]
    assert last_bubble(final) == "You said: hello again"


def test_dropped_tabs_leave_nothing_behind(page_server):
    """The queue's per-handler timings and queues, and the page's temp-file sets, which gr.render
    adds to for every tab (and every update of a rendered component's settings, which replaces it
    in the tab), shrink back with the tabs."""
    chat, sessions = page_server(state_ttl_minutes=1, max_sessions=10)
    alice = chat.login("alice")

    def chat_from_new_tabs(names: list[str]) -> SessionCounts:
        for name in names:
            tab = Tab(alice, name)
            assert tab.send("hello").status_code == 200
            assert completed(alice, name)["success"]
            assert tab.search("hel").status_code == 200  # updates the tab's own components
            assert completed(alice, name)["success"]
        settled(sessions)
        grown = sessions.counts()
        assert grown.states == len(names)
        assert sweep_at(sessions, timedelta(seconds=61)) == len(names)
        return replace(sessions.counts(), analytics=0)  # Gradio keeps the last 100 events'

    after_one = chat_from_new_tabs(["tab-0"])
    assert chat_from_new_tabs([f"tab-{i}" for i in range(1, 5)]) == after_one


def test_a_result_nobody_reads_does_not_keep_its_tab_beyond_the_ttl(page_server):
    chat, sessions = page_server(state_ttl_minutes=1, max_sessions=10)
    alice = chat.login("alice")
    config = alice.get("/config").json()
    api_chat = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")
    assert join(alice, "script-tab", api_chat, ["hi", None]).status_code == 200
    settled(sessions)  # finished, but queue/data was never read
    assert sessions.counts().event_id_sets == 1

    assert sweep_at(sessions, timedelta(seconds=61)) == 1
    assert not sessions.holds("script-tab")


def test_past_max_sessions_the_least_recently_used_idle_tabs_go(page_server):
    chat, sessions = page_server(state_ttl_minutes=60, max_sessions=3)
    alice = chat.login("alice")
    tabs = [Tab(alice, f"tab-{i}") for i in range(5)]
    settled(sessions)

    counts = sessions.counts()
    assert counts.states == 3 and counts.last_used == 3 and counts.message_queues == 3
    assert [sessions.holds(t.session_hash) for t in tabs] == [False, False, True, True, True]
    assert tabs[0].send("hi").status_code == 404  # "Reload the page"
    assert tabs[4].send("hi").status_code == 200
    assert completed(alice, "tab-4")["success"]


def test_a_tab_with_a_running_reply_keeps_its_state_and_gets_its_whole_reply(page_server):
    chat, sessions = page_server(state_ttl_minutes=1, max_sessions=2)
    alice, bob = chat.login("alice"), chat.login("bob")
    reply = Streaming(Tab(alice, "alice-tab"), SLOW_WORDS)

    # Past the TTL, and bob opening more fresh tabs than the capacity, while alice's reply runs.
    assert sweep_at(sessions, timedelta(days=1)) == 0
    for i in range(4):
        Tab(bob, f"bob-tab-{i}")
    assert sessions.holds("alice-tab")
    assert sessions.counts().states == 2  # alice's tab and bob's newest

    done = reply.final()
    assert done["success"], done
    chatbot = done["output"]["data"][0]
    assert last_bubble(chatbot) == "You said: " + SLOW_WORDS
    assert not [m for m in reply.received if m.get("msg") == "unexpected_error"]
    settled(sessions)
    sweep_at(sessions, timedelta(days=1))  # idle now: it goes like any other tab
    assert not sessions.holds("alice-tab")
    assert per_tab(sessions.counts()) == (0, 0, 0, 0)


@pytest.mark.parametrize("version", ["6.32.0", "6.31.1", "7.0.0", "not-a-version"])
def test_another_gradio_version_is_refused_at_start_up_with_what_to_do(version):
    with pytest.raises(UnsupportedGradio) as refused:
        check_supported(version)
    message = str(refused.value)
    assert f"gradio {version} is not supported" in message
    assert WRITTEN_FOR in message and "requirements.txt" in message


def test_the_installed_gradio_is_the_one_written_for():
    check_supported(WRITTEN_FOR)
    check_supported()


@pytest.mark.parametrize("bad", [{"state_ttl_minutes": 0}, {"max_sessions": 0}, {"other": 1}])
def test_page_settings_refuse_values_that_would_keep_nothing_or_are_unknown(bad):
    with pytest.raises(ValueError):
        PageSettings(**bad)
