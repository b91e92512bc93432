"""current_user(): handlers get the gate's User from a Starlette request or a gr.Request, pickled or not."""

from __future__ import annotations

import pickle

import gradio as gr
import pytest
from starlette.requests import Request

from core.request_facts import NotAuthenticated, csrf_token, current_user
from tests.auth.conftest import ALICE


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
