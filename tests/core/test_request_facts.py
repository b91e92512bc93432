"""Request facts: handlers get what the middlewares established from a Starlette request or a
gr.Request, pickled or not; routes get the user as a typed dependency."""

from __future__ import annotations

import pickle

import gradio as gr
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.testclient import TestClient

from core.request_facts import (
    CurrentUser,
    NotAuthenticated,
    RequestFacts,
    csrf_token,
    current_user,
    facts_of,
    not_authenticated,
    set_caller,
)
from tests.auth.conftest import ALICE, BOB


def starlette_request(state: dict) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("chat.test", 80),
        "client": ("127.0.0.1", 5000),
        "path": "/",
        "query_string": b"",
        "headers": [],
        "state": state,
    }
    return Request(scope)


def test_user_from_starlette_and_gradio_requests():
    raw = starlette_request({"user": ALICE, "csrf_token": "t"})
    assert current_user(raw) is ALICE
    assert current_user(gr.Request(request=raw)) is ALICE
    assert csrf_token(gr.Request(request=raw)) == "t"


def test_user_survives_gradio_pickling_the_request():
    wrapped = pickle.loads(pickle.dumps(gr.Request(request=starlette_request({"user": ALICE}))))
    assert wrapped.request is None
    assert current_user(wrapped) == ALICE


@pytest.mark.parametrize(
    "request_",
    [
        starlette_request({}),
        starlette_request({"user": "alice"}),  # a string is never a user
        gr.Request(request=starlette_request({})),
        gr.Request(username="alice"),  # Gradio's own username counts for nothing
    ],
)
def test_no_user_raises(request_):
    with pytest.raises(NotAuthenticated):
        current_user(request_)


def test_facts_survive_gradio_pickling_and_fall_back_to_the_peer():
    state = {"user": ALICE, "client_ip": "203.0.113.7", "request_id": "r1", "session_id": "s"}
    live = starlette_request(state)
    pickled = pickle.loads(pickle.dumps(gr.Request(request=starlette_request(dict(state)))))
    expected = RequestFacts(ALICE, "203.0.113.7", "127.0.0.1", "r1", "s", None)
    assert facts_of(live) == facts_of(live.scope) == facts_of(gr.Request(request=live)) == expected
    assert facts_of(pickled) == RequestFacts(ALICE, "203.0.113.7", None, "r1", "s", None)
    # No middleware ran: the socket peer is the client, and nothing else is known.
    assert facts_of(starlette_request({})) == RequestFacts(None, "127.0.0.1", "127.0.0.1")


def test_the_gates_decision_replaces_whatever_was_there():
    scope: dict = {"state": {"user": BOB, "session_id": "old", "csrf_token": "old"}}
    set_caller(scope, ALICE)  # a bearer token: no session, no CSRF token
    assert (facts_of(scope).user, facts_of(scope).session_id, facts_of(scope).csrf_token) == (
        ALICE,
        None,
        None,
    )
    set_caller(scope, None)
    assert facts_of(scope).user is None


def test_a_route_taking_current_user_answers_401_without_one():
    app = FastAPI(exception_handlers={NotAuthenticated: not_authenticated})

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"key": user.key}

    @app.middleware("http")
    async def gate(request, call_next):
        if request.headers.get("x-user") == "alice":
            set_caller(request.scope, ALICE)
        return await call_next(request)

    client = TestClient(app)
    assert client.get("/me", headers={"x-user": "alice"}).json() == {"key": ALICE.key}
    refused = client.get("/me")
    assert (refused.status_code, refused.json()) == (401, {"error": "Log in first."})
