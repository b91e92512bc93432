"""The Gradio queue protocol in random sequences, as a signed-in user and as a token.

Each case is a sequence of joins (any function index, data shape, session hash and extra fields),
queue/data reads, heartbeats, cancels and resets, mixing the caller's own tabs and events with the
victim's and with made-up ones. Every answer, streams included, is checked by
tests.fuzz.invariants.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import SERVER_IN_PROCESS, examples, fuzz_settings
from tests.fuzz.gradio_protocol import GradioTab, exchange_of
from tests.fuzz.invariants import Exchange
from tests.fuzz.strategies import (
    Handler,
    event_ids,
    fn_indexes,
    handler_inputs,
    handlers,
    join_extras,
    json_values,
    session_hashes,
)
from tests.fuzz.target import FuzzTarget

pytestmark = SERVER_IN_PROCESS
CALLERS = ("session", "bearer")
STEPS = ("join", "join", "read", "heartbeat", "cancel", "reset")  # joins twice as often
_runs = itertools.count()


@dataclass
class Sequence:
    """One case: a caller's client, its fresh tabs (the first one rendered, so that its
    per-user functions exist), and the event ids it was handed."""

    target: FuzzTarget
    caller: str
    client: httpx.Client
    page: dict[int, Handler]
    tabs: list[str]
    issued: list[str] = field(default_factory=list)
    joined: set[str] = field(default_factory=set)  # tabs with an event queued

    @property
    def victim_hashes(self) -> list[str]:
        return [self.target.victim.session_hash]

    @property
    def victim_ids(self) -> list[str]:
        victim = self.target.victim
        return [victim.conversation_id, victim.event_id, victim.session_hash]

    def hash(self, data: st.DataObject) -> Any:
        return data.draw(session_hashes(self.tabs, self.victim_hashes), "session_hash")

    def join(self, data: st.DataObject) -> Exchange:
        """Half the time as the page joins (a function of the rendered tab, one value per input,
        of any type); otherwise with any fields, of any shape, some left out."""
        if data.draw(st.booleans(), "as the page does"):
            handler = data.draw(st.sampled_from(list(self.page.values())), "handler")
            body: dict[str, Any] = {
                "data": data.draw(handler_inputs(handler, self.victim_ids), "data"),
                "fn_index": handler.fn_index,
                "session_hash": self.tabs[0],
                **data.draw(join_extras(self.victim_ids), "extras"),
            }
        else:
            body = {
                "data": data.draw(st.lists(json_values(self.victim_ids), max_size=6), "data"),
                "fn_index": data.draw(fn_indexes(list(self.page)), "fn_index"),
                "session_hash": self.hash(data),
                **data.draw(join_extras(self.victim_ids), "extras"),
            }
            for name in data.draw(st.sets(st.sampled_from(sorted(body)), max_size=2), "left out"):
                body.pop(name)
        response = self.client.post("/gradio_api/queue/join", json=body)
        if response.status_code == 200:
            self.issued.append(response.json()["event_id"])
            self.joined.add(body["session_hash"])
        return exchange_of(self.caller, response)

    def read(self, data: st.DataObject) -> Exchange:
        return GradioTab(self.client, str(self.hash(data)), self.caller).read_stream()

    def heartbeat(self, data: st.DataObject) -> Exchange:
        return GradioTab(self.client, str(self.hash(data)), self.caller).heartbeat()

    def cancel(self, data: st.DataObject) -> Exchange:
        fields = {
            "session_hash": session_hashes(self.tabs, self.victim_hashes),
            "fn_index": fn_indexes(list(self.page)),
            "event_id": event_ids(self.issued, [self.target.victim.event_id]),
        }
        body = data.draw(st.fixed_dictionaries({}, optional=fields), "body")
        return exchange_of(self.caller, self.client.post("/gradio_api/cancel", json=body))

    def reset(self, data: st.DataObject) -> Exchange:
        event_id = event_ids(self.issued, [self.target.victim.event_id])
        body = data.draw(
            st.fixed_dictionaries({}, optional={"event_id": event_id}) | json_values(), "body"
        )
        return exchange_of(self.caller, self.client.post("/gradio_api/reset", json=body))


def page_of(target: FuzzTarget, caller: str) -> dict[int, Handler]:
    """The caller's page functions: /config's and those its render adds."""
    with target.client(target.callers[caller]) as client:
        tab = GradioTab(client, f"fuzz-{caller}-page", caller)
        return {h.fn_index: h for h in handlers(tab.config(), tab.render())}


@pytest.mark.parametrize("caller_name", CALLERS)
def test_queue_protocol_sequences_are_answered_soundly(fuzz_target, caller_name):
    observer = fuzz_target.observer
    page = page_of(fuzz_target, caller_name)

    @fuzz_settings(examples(15))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        run_id = next(_runs)
        tabs = [f"fuzz-{caller_name}-{run_id}-{n}" for n in range(2)]
        with fuzz_target.client(fuzz_target.callers[caller_name]) as client:
            GradioTab(client, tabs[0], caller_name).render()  # as the page does when it loads
            sequence = Sequence(fuzz_target, caller_name, client, page, tabs)
            steps = data.draw(st.lists(st.sampled_from(STEPS), min_size=3, max_size=8), "steps")
            done: list[str] = []
            for step in steps:
                since = observer.start()
                exchange = getattr(sequence, step)(data)
                done.append(f"{step}: {exchange.method} {exchange.url} -> {exchange.status}")
                observer.check(exchange, since, "after:\n  " + "\n  ".join(done[:-1]))
            for tab in sorted(sequence.joined):  # read what is left: late log lines show here
                since = observer.start()
                observer.check(GradioTab(client, tab, caller_name).read_stream(), since)

    run()
