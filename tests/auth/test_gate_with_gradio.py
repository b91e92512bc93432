"""The route gate in front of a real Gradio Blocks mounted at "/": every registered route refuses
anonymous callers, handlers see the server-side user, and one user cannot use another's session hash."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr
import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from auth.assembly import PUBLIC_ROUTES, AuthParts
from auth.gradio_doors import guard_gradio_mount
from core.audit import MemoryAuditSink
from core.request_facts import current_user
from core.sessions import MemorySessionStore
from tests.auth.conftest import ALICE, BOB, auth_app, make_settings
from tests.gradio_queue import completed
from tests.live_server import free_port, live_server

BROWSER = {"accept": "text/html,application/xhtml+xml", "sec-fetch-mode": "navigate"}
SCRIPT = {"accept": "application/json"}


@dataclass
class GradioChat:
    base: str
    app: FastAPI
    auth: AuthParts
    audit: MemoryAuditSink

    def client_for(self, user) -> httpx.Client:
        session = self.auth.sessions.start(
            user, ip=None, user_agent=None, idp_session_id=None, id_token=None
        )
        cookie = self.auth.sessions.cookie
        return httpx.Client(
            base_url=self.base, cookies={cookie.name: cookie.sign(session.id)}, timeout=10
        )


def whoami(text: str, request: gr.Request) -> str:
    return f"{current_user(request).key}: {text}"


@pytest.fixture(scope="module")
def gradio_chat(fake_idp_server) -> Iterator[GradioChat]:
    port = free_port()
    settings = make_settings(port, fake_idp_server.issuer)
    audit = MemoryAuditSink()
    app, auth = auth_app(settings, sessions=MemorySessionStore(), audit=audit)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    with gr.Blocks() as page:
        box = gr.Textbox()
        out = gr.Textbox()
        box.submit(whoami, box, out, api_name="whoami")
    page.queue(api_open=False)
    gr.mount_gradio_app(app, page, path="/", ssr_mode=False, root_path=settings.server.public_url)
    guard_gradio_mount(app, page, bindings=auth.bindings, audit=audit, clock=auth.clock)
    with live_server(app, port=port) as base:
        yield GradioChat(base, app, auth, audit)


def all_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, concrete path) for every route, descending into mounts (the Gradio app included)."""
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's lazily included router (Gradio's API)
            yield from all_routes(
                route.original_router.routes, prefix + route.include_context.prefix
            )
        elif isinstance(route, Mount):
            inner = getattr(route.app, "routes", None) or getattr(route, "routes", None)
            if inner:
                yield from all_routes(list(inner), prefix + route.path)
            else:  # a static-files mount: any file under it
                yield "GET", prefix + route.path + "/anything.js"
        elif isinstance(route, WebSocketRoute):
            yield "WEBSOCKET", prefix + route.path
        elif isinstance(route, Route) or hasattr(route, "methods"):
            path = re.sub(r"\{[^}]+\}", "x", prefix + route.path) or "/"
            for method in sorted(route.methods or {"GET"}):
                yield method, path


def test_every_registered_route_refuses_anonymous_callers(gradio_chat):
    routes = sorted(set(all_routes(gradio_chat.app.routes)))
    paths = {path for _, path in routes}
    assert {
        "/gradio_api/queue/join",
        "/gradio_api/heartbeat/x",
        "/config",
        "/gradio_api/upload",
    } <= paths
    assert len(routes) > 60
    checked = 0
    with httpx.Client(base_url=gradio_chat.base, timeout=10) as client:
        for method, path in routes:
            if method in {**PUBLIC_ROUTES, "/logged-out": ("GET", "HEAD")}.get(path, ()):
                continue
            if method == "WEBSOCKET":
                continue  # none registered today; the gate closes them with 1008
            response = client.request(method, path, headers=SCRIPT)
            assert response.status_code == 401, (method, path, response.status_code)
            if method == "GET":
                browser = client.request(method, path, headers=BROWSER)
                assert browser.status_code == 302, (method, path)
                assert browser.headers["location"].startswith(gradio_chat.base + "/login?next=")
            checked += 1
    assert checked > 60


def test_public_paths_are_exactly_the_short_list(gradio_chat):
    with httpx.Client(base_url=gradio_chat.base, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/logged-out").status_code == 200
        assert client.get("/login").status_code == 302
        for near_miss in (
            "/healthz/",
            "//healthz",
            "/login/../config",
            "/HEALTHZ",
            "/logged-out/x",
        ):
            assert client.get(near_miss, headers=SCRIPT).status_code == 401, near_miss


def test_login_redirect_keeps_where_the_user_was_going(gradio_chat):
    with httpx.Client(base_url=gradio_chat.base, timeout=10) as client:
        response = client.get("/?view=history", headers=BROWSER)
    assert response.headers["location"] == gradio_chat.base + "/login?next=%2F%3Fview%3Dhistory"


def fn_index(client: httpx.Client) -> int:
    config = client.get("/config").json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == "whoami")


def run_event(client: httpx.Client, session_hash: str, text: str) -> str:
    """Submit through queue/join and read the result from queue/data, as the browser does."""
    join = client.post(
        "/gradio_api/queue/join",
        json={
            "data": [text],
            "fn_index": fn_index(client),
            "session_hash": session_hash,
            "event_data": None,
        },
    )
    assert join.status_code == 200, join.text
    return completed(client, session_hash)["output"]["data"][0]


def test_handler_sees_the_server_side_user(gradio_chat):
    with gradio_chat.client_for(ALICE) as alice:
        assert run_event(alice, "alice-tab-1", "hello") == f"{ALICE.key}: hello"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/gradio_api/queue/data?session_hash=victim-hash", {}),
        ("GET", "/gradio_api/heartbeat/victim-hash", {}),
        (
            "POST",
            "/gradio_api/cancel",
            {"json": {"session_hash": "victim-hash", "fn_index": 0, "event_id": "e1"}},
        ),
        # Another user's hash in the query beside one's own in the body.
        (
            "POST",
            "/gradio_api/queue/join?session_hash=victim-hash",
            {"json": {"data": ["x"], "fn_index": 0, "session_hash": "bobs-own-hash"}},
        ),
        # The same body without a JSON content type, in case FastAPI parses it anyway.
        (
            "POST",
            "/gradio_api/cancel",
            {
                "content": b'{"session_hash": "victim-hash", "fn_index": 0, "event_id": "e1"}',
                "headers": {"content-type": "text/plain"},
            },
        ),
    ],
)
def test_another_user_cannot_use_a_session_hash(gradio_chat, method, path, kwargs):
    with gradio_chat.client_for(ALICE) as alice:
        run_event(alice, "victim-hash", "mine")  # alice's tab owns victim-hash
    with gradio_chat.client_for(BOB) as bob:
        response = bob.request(method, path, **kwargs)
        assert response.status_code == 403, response.text
    # The door answers first and writes its record just after (a refusal never waits on the store).
    deadline = time.monotonic() + 10
    while not (denied := gradio_chat.audit.of_type("access.denied")):
        assert time.monotonic() < deadline, "the refusal was not audited"
        time.sleep(0.02)
    refused = denied[-1]
    assert refused.actor == BOB.key and refused.outcome == "foreign_session_hash"


def test_the_owner_keeps_using_their_session_hash(gradio_chat):
    with gradio_chat.client_for(ALICE) as alice:
        assert run_event(alice, "alice-tab-2", "one") == f"{ALICE.key}: one"
        assert run_event(alice, "alice-tab-2", "two") == f"{ALICE.key}: two"
    with gradio_chat.client_for(BOB) as bob:
        assert run_event(bob, "bob-tab", "hi") == f"{BOB.key}: hi"


def test_signed_in_pages_and_data_are_never_cached_but_build_files_may_be(gradio_chat):
    """After sign-out, Back or a shared machine's cache must not show what a signed-in user saw."""
    with gradio_chat.client_for(ALICE) as alice:
        page = alice.get("/", headers=BROWSER)
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert alice.get("/config", headers=SCRIPT).headers["cache-control"] == "no-store"
        asset = re.search(r'src="[^"]*?(/assets/[^"]+\.js)"', page.text)
        assert asset, page.text[:500]
        build_file = alice.get(asset.group(1))
        assert build_file.status_code == 200
        assert build_file.headers.get("cache-control") != "no-store"
