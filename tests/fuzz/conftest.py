"""One live server for the whole fuzz package (tests.fuzz.target), watched for what it logs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest

from app_factory import create_app
from tests.event_loop_io import watch_event_loop_io
from tests.fuzz.invariants import LogWatch, Observer
from tests.fuzz.target import (
    FOREIGN_ORIGIN,
    Caller,
    FuzzTarget,
    bearer_token,
    build,
    login,
    plant,
)
from tests.live_server import free_port, live_server
from tests.server_errors import ServerErrorWatch


@pytest.fixture(scope="package")
def fuzz_target(tmp_path_factory) -> Iterator[FuzzTarget]:
    """The live app; at teardown, no blocking I/O may have run on its event loop."""
    tmp_path = tmp_path_factory.mktemp("fuzz")
    log = LogWatch()
    with (
        pytest.MonkeyPatch.context() as env,
        watch_event_loop_io() as blocking,
        contextlib.ExitStack() as stack,
    ):
        env.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
        env.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        port = free_port()
        settings, services = build(tmp_path, port)
        watch = ServerErrorWatch(create_app(settings, services))
        url = stack.enter_context(live_server(watch, port=port))
        # After uvicorn configured its loggers (it resets their handlers): "uvicorn" does not
        # propagate to the root logger, so it is watched separately.
        for name in ("", "uvicorn"):
            logging.getLogger(name).addHandler(log)
            stack.callback(logging.getLogger(name).removeHandler, log)
        issuer = f"http://127.0.0.1:{settings.oidc.embedded_port}"
        victim = plant(url, login(url, "alice"))
        bob = login(url, "bob")
        own_origin = {"Origin": settings.server.public_url}
        callers = {
            "anonymous": Caller("anonymous", {}, own_origin),
            "session": Caller("session", {"Cookie": bob}, own_origin),
            "bearer": Caller(
                "bearer", {"Authorization": f"Bearer {bearer_token(services, issuer, 'bob')}"}, {}
            ),
            "foreign-origin": Caller(
                "foreign-origin", {"Cookie": bob, "Origin": FOREIGN_ORIGIN}, {}
            ),
            "admin": Caller("admin", {"Cookie": login(url, "admin1")}, own_origin),
        }
        observer = Observer(watch, log, {name: victim.hidden_from(name) for name in callers})
        yield FuzzTarget(url, watch, services, observer, victim, callers)
    assert not blocking, "blocking calls on the event loop:\n" + "\n".join(blocking)
    assert not watch.errors, f"the app answered internal errors: {watch.errors}"


@pytest.fixture(autouse=True)
def no_printed_traceback(capfd) -> Iterator[None]:
    """Nothing the server prints (outside its log) may be a traceback."""
    yield
    printed = "".join(capfd.readouterr())
    assert "Traceback" not in printed, printed[-3000:]
