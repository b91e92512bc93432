"""The whole app, wired as launch.py wires it, through an outage of PostgreSQL or of Redis mid-reply.

Both run behind proxies the test cuts and restores, so the shared servers keep serving other tests.
While a dependency is down: no 5xx, /readyz says 503, a signed-in request gets a retryable 503; a
reply already streaming ends cleanly; afterwards everything recovers without a restart, and the
reply that finished during a database outage is saved with its audit record, the chain intact.
The longest case: a 30-second outage of either while four users stream.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from gradio_client import Client

from app_factory import Services, build_services, create_app
from config import Settings
from core.audit import CHAT_REPLY
from model.fake_engine import FakeEngine
from tests.backends import postgres_schema, redis_namespace
from tests.faults.tcp_proxy import TcpProxy, tcp_proxy
from tests.live_server import free_port, live_server
from tests.server_errors import ServerErrorWatch

QUESTION = " ".join(f"word{n}" for n in range(80))  # the fake engine echoes it word by word
EXPECTED = "You said: " + QUESTION
OUTAGE_SECONDS = 30
LONG_QUESTION = " ".join(f"long{n}" for n in range(400))  # 0.1 s a word: outlasts the outage


@dataclass
class Deployment:
    url: str
    services: Services
    database: TcpProxy
    redis: TcpProxy

    def login(self, user: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30)
        page = client.get("/login", follow_redirects=True)
        client.post(page.url, data={"sub": user}, follow_redirects=True)
        return client

    def script(self, client: httpx.Client) -> Client:
        cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
        return Client(self.url, headers={"Cookie": cookie}, verbose=False)

    def ready(self) -> int:
        return httpx.get(self.url + "/readyz", timeout=30).status_code


@pytest.fixture
def deployment(monkeypatch) -> Iterator[Deployment]:
    with deployed(monkeypatch, word_delay=0.05) as deployment:
        yield deployment


@pytest.fixture
def slow_deployment(monkeypatch) -> Iterator[Deployment]:
    with deployed(monkeypatch, word_delay=0.1) as deployment:
        yield deployment


@contextlib.contextmanager
def deployed(monkeypatch, word_delay: float) -> Iterator[Deployment]:
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    with contextlib.ExitStack() as stack:
        schema = stack.enter_context(postgres_schema("faults"))
        prefix = stack.enter_context(redis_namespace("faults"))
        database = stack.enter_context(tcp_proxy("127.0.0.1", 5432))
        redis = stack.enter_context(tcp_proxy("127.0.0.1", 6379))
        port = free_port()
        settings = Settings(
            server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
            oidc={"issuer": "embedded", "embedded_port": free_port()},
            session={"secret_keys": ["f" * 40]},
            database={
                "url": f"postgresql+psycopg://postgres@127.0.0.1:{database.port}/test"
                f"?options=-csearch_path%3D{schema}"
            },
            limits={"storage": f"redis://127.0.0.1:{redis.port}/0", "key_prefix": prefix},
        )
        services = build_services(settings, engine=FakeEngine(delay=word_delay))
        watch = ServerErrorWatch(create_app(settings, services))
        url = stack.enter_context(live_server(watch, port=port))
        yield Deployment(url, services, database, redis)
    assert not watch.errors, f"the app answered internal errors: {watch.errors}"


def stream_in_background(
    client: Client, question: str = QUESTION
) -> tuple[list[dict], threading.Thread]:
    updates: list[dict] = []
    job = client.submit(question, None, api_name="/chat")
    reader = threading.Thread(target=lambda: updates.extend(job), daemon=True)
    reader.start()
    wait_for(lambda: len(updates) >= 5, "the reply did not start streaming")
    return updates, reader


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(what)
        time.sleep(0.2)


def test_a_database_outage_mid_reply_loses_nothing_and_heals_by_itself(deployment):
    alice = deployment.login("alice")
    updates, reader = stream_in_background(deployment.script(alice))

    deployment.database.cut()
    assert deployment.ready() == 503  # a load balancer stops sending traffic here
    refused = alice.get("/gradio_api/info")  # needs the session, which lives in the database
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert "database" in refused.json()["detail"]
    reader.join(timeout=60)
    assert updates[-1]["status"] == "complete" and updates[-1]["reply"] == EXPECTED

    deployment.database.restore()
    wait_for(lambda: deployment.ready() == 200, "the app did not become ready again")
    assert alice.get("/gradio_api/info").status_code == 200  # no restart, the same session
    audit = deployment.services.audit_log
    wait_for(lambda: _saved_reply(deployment) == (EXPECTED, "complete"), "the reply was lost")
    assert [r.outcome for r in audit.query(type=CHAT_REPLY).records] == ["complete"]
    assert audit.verify().ok


def test_a_redis_outage_mid_reply_ends_the_reply_cleanly_and_heals_by_itself(deployment):
    alice = deployment.login("alice")
    updates, reader = stream_in_background(deployment.script(alice))

    deployment.redis.cut()
    assert deployment.ready() == 503
    reader.join(timeout=60)
    assert updates[-1]["status"] == "complete" and updates[-1]["reply"] == EXPECTED

    deployment.redis.restore()
    wait_for(lambda: deployment.ready() == 200, "the app did not become ready again")
    again = deployment.script(alice).predict("hello again", None, api_name="/chat")
    assert again["status"] == "complete"  # the one-at-a-time lock was released after all


@pytest.mark.parametrize("dependency", ["database", "redis"])
def test_a_30_second_outage_while_four_users_stream_loses_nothing(slow_deployment, dependency):
    users = [slow_deployment.login(name) for name in ("ann", "bob", "cho", "dev")]
    streams = [stream_in_background(slow_deployment.script(u), LONG_QUESTION) for u in users]

    proxy = getattr(slow_deployment, dependency)
    proxy.cut()
    cut_at = time.monotonic()
    while time.monotonic() - cut_at < OUTAGE_SECONDS:
        assert slow_deployment.ready() == 503, "/readyz must tell the truth all along"
        # Sessions live in the database: without it, a signed-in request is a retryable 503.
        # This request needs nothing from Redis, so without Redis it is simply served.
        answer = users[0].get("/gradio_api/info")
        if dependency == "database" or answer.status_code != 200:
            assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
        time.sleep(1)
    assert all(reader.is_alive() for _, reader in streams), "the replies outlast the outage"
    proxy.restore()

    expected = "You said: " + LONG_QUESTION
    for updates, reader in streams:
        reader.join(timeout=60)
        assert updates[-1]["status"] == "complete" and updates[-1]["reply"] == expected
    wait_for(lambda: slow_deployment.ready() == 200, "the app did not become ready again")
    wait_for(
        lambda: _saved_replies(slow_deployment) == [(expected, "complete")] * 4,
        "a turn was lost",
    )
    audit = slow_deployment.services.audit_log
    assert [r.outcome for r in audit.query(type=CHAT_REPLY).records] == ["complete"] * 4
    assert audit.verify().ok
    for user in users:  # no restart: the same sessions, and each one-at-a-time lock is free
        again = slow_deployment.script(user).predict("hello again", None, api_name="/chat")
        assert again["status"] == "complete"


def _saved_replies(deployment: Deployment) -> list[tuple[str, str]] | None:
    """Each signed-in user's last saved message (content, status)."""
    history = deployment.services.history
    if not deployment.services.readiness["database"]():
        return None
    saved = []
    for owner in _owners(deployment):
        for summary in history.list_conversations(owner):
            message = history.get_conversation(owner, summary.id).messages[-1]
            saved.append((message.content, message.status))
    return saved


def _saved_reply(deployment: Deployment) -> tuple[str, str] | None:
    history = deployment.services.history
    database_up = deployment.services.readiness["database"]
    if not database_up():
        return None
    for owner in _owners(deployment):
        for summary in history.list_conversations(owner):
            messages = history.get_conversation(owner, summary.id).messages
            return messages[-1].content, messages[-1].status
    return None


def _owners(deployment: Deployment) -> list[str]:
    return [s.user.key for s in deployment.services.sessions.list_active(_now())]


def _now() -> datetime:
    return datetime.now(UTC)
