"""Every function of the chat page, called through the queue with inputs of any type.

As a signed-in user, an admin and a token, on a tab rendered as the browser renders it. Besides
tests.fuzz.invariants' properties, a handler that refuses its input says why: Gradio then answers
`success: false` with the handler's message, never an empty error.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import SERVER_IN_PROCESS, examples, fuzz_settings
from tests.fuzz.gradio_protocol import GradioTab, exchange_of, stream_messages
from tests.fuzz.strategies import Handler, handler_inputs, handlers
from tests.fuzz.target import FuzzTarget

pytestmark = SERVER_IN_PROCESS
CALLERS = ("session", "admin", "bearer")
_tabs = itertools.count()


def completion(stream_body: str) -> dict[str, Any] | None:
    """The event's last message (process_completed), if the stream carried it."""
    done = [m for m in stream_messages(stream_body) if m.get("msg") == "process_completed"]
    return done[-1] if done else None


def unclear_error(completed: dict[str, Any] | None) -> str | None:
    """What is wrong with how the handler ended, if anything."""
    if completed is None:
        return "the event did not complete"
    if completed.get("success") is False:
        error = (completed.get("output") or {}).get("error")
        if not (isinstance(error, str) and error.strip()):
            return f"failed without a message for the user: {json.dumps(completed)[:300]}"
    return None


def call(target: FuzzTarget, tab: GradioTab, handler: Handler, data: list[Any]) -> None:
    """Join, read the event to its end, and check both answers and the handler's ending."""
    observer = target.observer
    since = observer.start()
    context = f"{handler.name} (fn_index {handler.fn_index}) with {json.dumps(data)[:300]}"
    joined = tab.join(handler.fn_index, data)
    observer.check(exchange_of(tab.caller, joined), since, context)
    if joined.status_code != 200:  # refused before Gradio runs it: a 4xx that says why
        assert 400 <= joined.status_code < 500, f"{context}: {joined.status_code}"
        assert joined.json().get("message"), f"{context}: {joined.text[:300]}"
        return
    stream = tab.read_stream(result_expected=True)
    observer.check(stream, since, context)
    problem = unclear_error(completion(stream.response_body))
    assert problem is None, f"{context}: {problem}"


Rendered = Callable[[str], tuple[GradioTab, list[Handler]]]


@pytest.fixture(scope="module")
def rendered(fuzz_target: FuzzTarget) -> Iterator[Rendered]:
    """Per caller, one tab rendered as the browser renders it, and its server-side functions."""
    tabs: dict[str, tuple[GradioTab, list[Handler]]] = {}
    with contextlib.ExitStack() as clients:

        def tab_of(caller: str) -> tuple[GradioTab, list[Handler]]:
            if caller not in tabs:
                client = clients.enter_context(fuzz_target.client(fuzz_target.callers[caller]))
                tab = GradioTab(client, f"handlers-{caller}-{next(_tabs)}", caller)
                page = handlers(tab.config(), tab.render())
                # "apply" is the render itself; a function without a backend runs in the browser.
                tabs[caller] = tab, [h for h in page if h.backend and h.name != "apply"]
            return tabs[caller]

        yield tab_of


@pytest.mark.parametrize("caller_name", CALLERS)
def test_every_handler_answers_inputs_of_any_type_clearly(fuzz_target, rendered, caller_name):
    victim = fuzz_target.victim
    known = [victim.conversation_id, victim.session_hash, victim.event_id]
    tab, page = rendered(caller_name)

    @fuzz_settings(examples(50))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        handler = data.draw(st.sampled_from(page), "handler")
        call(fuzz_target, tab, handler, data.draw(handler_inputs(handler, known), "data"))

    run()


# Inputs a script (or a page edited in the browser) can send, one per handler and kind of value.
WRONG_TYPES = {
    "chat: message null": ("session", "chat", [None, None]),
    "chat: message a number": ("bearer", "chat", [123, None]),
    "chat: conversation_id a list": ("bearer", "chat", ["hello", ["x"]]),
    "chat: conversation_id an object": ("session", "chat", ["hello", {"id": "x"}]),
    "list_conversations: search a number": ("bearer", "list_conversations", [5]),
    "list_conversations: search a list": ("bearer", "list_conversations", [["a"]]),
    "get_conversation: id a list": ("bearer", "get_conversation", [["x"]]),
    "delete_conversation: id an object": ("bearer", "delete_conversation", [{"id": "x"}]),
    "respond: message null": ("session", "respond", [None, None]),
    "refresh: search null": ("session", "refresh", [None, None]),
    "open_conversation: not one of the choices": ("session", "open_conversation", ["x"]),
    "on_create: name null": ("session", "on_create", [None, 30, "", False]),
    "on_create: days as text": ("session", "on_create", ["nightly", "5", "", False]),
    "on_create: days past the maximum": ("session", "on_create", ["nightly", 10**6, "", False]),
    "on_revoke: id null": ("session", "on_revoke", [None]),
    "revoke_any: id null": ("admin", "revoke_any", [None]),
    "end: target null": ("admin", "end", [None]),
    "first: user null": ("admin", "first", ["", "", None, "", "", 0]),
    "first: page as text": ("admin", "first", ["", "", "", "", "", "two"]),
    "first: type not one of the choices": ("admin", "first", ["", "", "", "nope", "", 0]),
}


def test_the_stop_buttons_function_joined_directly_is_answered_clearly(fuzz_target, rendered):
    """The Stop button only cancels (its click calls /cancel in the browser); a script can still
    join it."""
    tab, page = rendered("session")
    [stop] = [h for h in page if h.cancels and not h.python]
    call(fuzz_target, tab, stop, [])


@pytest.mark.parametrize(("caller_name", "name", "data"), WRONG_TYPES.values(), ids=WRONG_TYPES)
def test_a_handler_refuses_a_wrong_input_type_with_a_message(
    fuzz_target, rendered, caller_name, name, data
):
    tab, page = rendered(caller_name)
    [handler] = [h for h in page if h.name == name]
    call(fuzz_target, tab, handler, data)
