"""Schemathesis over every route the app mounts, against the live server, as five kinds of caller.

The document comes from the built app (tests.fuzz.app_openapi), with the victim's ids added as values
a caller may send. Each caller sends, for every operation, schemathesis' deterministic cases (valid
and boundary values, wrong types, missing fields, other methods and content types) and then random
ones. Every answer is checked by tests.fuzz.invariants: no 5xx, no traceback in the log, never the
victim's text.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode

from tests.fuzz.app_openapi import openapi_document
from tests.fuzz.budget import SERVER_IN_PROCESS, examples, fuzz_settings, long_run
from tests.fuzz.invariants import Exchange
from tests.fuzz.target import Caller, FuzzTarget, no_cookies

pytestmark = SERVER_IN_PROCESS
CALLERS = ("anonymous", "session", "bearer", "foreign-origin", "admin")
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
REQUEST_SECONDS = 10
# An event stream (queue/data, heartbeat) is read up to its first event: the heartbeat sends one
# every 15 s. tests/fuzz/test_queue_protocol.py reads the streams to their end.
CONFIG = {"request-timeout": REQUEST_SECONDS, "max-stream-events": 1}
SHOWN_FAILURES = 25


@pytest.fixture(scope="module")
def document(fuzz_target: FuzzTarget) -> dict:
    victim = fuzz_target.victim
    known = {
        "session_hash": [victim.session_hash],
        "event_id": [victim.event_id],
        "conversation_id": [victim.conversation_id],
    }
    return openapi_document(fuzz_target.app, known)


@pytest.fixture
def schema(document: dict) -> schemathesis.BaseSchema:
    """A fresh schema per test: schemathesis remembers which methods it already tried per schema."""
    return schemathesis.openapi.from_dict(document, config=schemathesis.Config.from_dict(CONFIG))


@pytest.fixture(scope="module")
def web() -> Iterator[requests.Session]:
    """A session that keeps no cookies: each request carries exactly its caller's credentials."""
    with requests.Session() as session:
        session.cookies = no_cookies()
        yield session


def send(target: FuzzTarget, caller: Caller, case, session: requests.Session) -> Exchange:
    response = case.call(
        base_url=target.url,
        session=session,
        headers=caller.headers_for(case.method),
        allow_redirects=False,  # the answer under test is ours, not the IdP's page
    )
    request = response.request
    body = request.body or b""
    return Exchange(
        caller=caller.name,
        method=request.method or case.method,
        url=request.url or "",
        request_headers={k: str(v) for k, v in request.headers.items()},
        request_body=body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body),
        status=response.status_code,
        response_body=response.content.decode("utf-8", "replace"),
        response_headers={k: ", ".join(v) for k, v in response.headers.items()},
    )


def boundary_cases(schema: schemathesis.BaseSchema, share: int) -> Iterator:
    """Schemathesis' deterministic cases of every operation. In the suite's short run each caller
    takes every len(CALLERS)-th case of each operation, starting at `share` (at least one case of
    each operation); the long run takes them all."""
    config = schema.config.generation
    for result in schema.get_all_operations():
        operation = result.ok()
        cases = list(
            schema.iter_coverage_cases(operation, generation_modes=MODES, generation_config=config)
        )
        if long_run():
            yield from cases
        else:
            start = share % len(cases)
            yield from cases[share :: len(CALLERS)] or cases[start : start + 1]


@pytest.mark.parametrize("caller_name", CALLERS)
def test_every_operation_answers_boundary_cases_soundly(fuzz_target, schema, web, caller_name):
    caller = fuzz_target.callers[caller_name]
    observer = fuzz_target.observer
    failures, sent, operations = [], 0, set()
    for case in boundary_cases(schema, CALLERS.index(caller_name)):
        since = observer.start()
        exchange = send(fuzz_target, caller, case, web)
        sent += 1
        operations.add(case.operation.label)
        problems = observer.problems(exchange, since)
        if problems:
            failures.append(exchange.describe() + "\n" + "\n".join(problems))
    assert len(operations) == len(list(schema.get_all_operations())), "an operation sent no case"
    assert not failures, f"{len(failures)} of {sent} answers broke a property:\n\n" + "\n\n".join(
        failures[:SHOWN_FAILURES]
    )


@pytest.mark.parametrize("caller_name", CALLERS)
def test_random_requests_to_any_operation_are_answered_soundly(
    fuzz_target, schema, web, caller_name
):
    caller = fuzz_target.callers[caller_name]
    observer = fuzz_target.observer
    strategy = schema.as_strategy(GenerationMode.POSITIVE) | schema.as_strategy(
        GenerationMode.NEGATIVE
    )

    @fuzz_settings(examples(30))
    @given(case=strategy)
    def run(case) -> None:
        since = observer.start()
        observer.check(send(fuzz_target, caller, case, web), since)

    run()
