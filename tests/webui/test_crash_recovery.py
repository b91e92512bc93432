"""kill -9 during a streaming reply, then a restart: nothing that was saved is lost or changed.

The real server (launch.py, the tiny random model, the embedded login provider, SQLite) runs as a
subprocess, started from a settings file as an operator would. The database already holds two
finished conversations; the server is killed while a long reply streams; restarted on the same
database and settings, it must show the earlier conversations byte for byte, the killed turn as
question + partial reply marked "interrupted", and an audit trail that still verifies.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from store.audit_log import AuditLog
from store.chat_history import ChatHistory
from store.database import create_database, migrate
from tests.live_server import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0


@dataclass
class Run:
    process: subprocess.Popen
    url: str


@dataclass
class Deployment:
    """One installation: its settings file, database and ports, started as often as needed."""

    tmp_path: Path
    port: int = field(default_factory=free_port)
    idp_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.tmp_path / 'chat.db'}"

    @property
    def settings(self) -> Path:
        return self.tmp_path / "settings.toml"

    def user_key(self, user: str) -> str:
        return f"http://127.0.0.1:{self.idp_port}|{user}"

    def write_settings(self) -> None:
        # Replies as long as the tiny model allows (~1 minute at ~150 tokens/s): the test kills
        # the server long before one ends.
        self.settings.write_text(
            f"""
[server]
port = {self.port}
shutdown_grace_seconds = 1

[model]
source = "tiny-random"
cache_dir = "{self.tmp_path / "models"}"

[generation]
max_new_tokens = 8192
interrupted_after_seconds = 2

[oidc]
issuer = "embedded"
embedded_port = {self.idp_port}

[session]
secret_keys = ["{"c" * 40}"]

[database]
url = "{self.database_url}"
"""
        )

    def launch(self, *args: str, log_name: str = "server") -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
        env.update(HF_HUB_DISABLE_IMPLICIT_TOKEN="1", GRADIO_ANALYTICS_ENABLED="False")
        with open(self.tmp_path / f"{log_name}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "launch.py", "--settings", str(self.settings), *args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def start(self) -> Run:
        process = self.launch()
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = (self.tmp_path / "server.log").read_text()[-3000:]
                pytest.fail(f"launch.py exited early:\n{log}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return Run(process, url)
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail("the server did not become ready")

    def db(self, query: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.tmp_path / "chat.db") as connection:
            return connection.execute(query, params).fetchall()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path)
    deployment.write_settings()
    try:
        yield deployment
    finally:
        for process in deployment.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def finished_conversations(deployment: Deployment, count: int) -> list[str]:
    """Conversations of earlier days, written by the store the server uses; their ids."""
    database = create_database(deployment.database_url)
    try:
        migrate(database)
        audit = AuditLog(database)
        history = ChatHistory(database, audit)
        owner, ids = deployment.user_key("alice"), []
        for number in range(count):
            conversation = history.create_conversation(owner, f"earlier {number}")
            for question in ("first question", "second question"):
                reply = history.start_turn(owner, conversation.id, f"{question} {number}")
                history.update_message(
                    owner, conversation.id, reply, f"answer {number}", "complete"
                )
            ids.append(conversation.id)
        return ids
    finally:
        database.dispose()


def sign_in(url: str) -> tuple[httpx.Client, Client]:
    session = httpx.Client(base_url=url, timeout=30)
    page = session.get("/login", follow_redirects=True)
    landed = session.post(page.url, data={"sub": "alice"}, follow_redirects=True)
    assert landed.status_code == 200, landed.text[:300]
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies.jar)
    return session, Client(url, headers={"Cookie": cookie}, verbose=False)


def export(session: httpx.Client, conversation_id: str) -> bytes:
    response = session.get(f"/export/{conversation_id}.json")
    assert response.status_code == 200, response.text[:300]
    return response.content


def test_a_reply_killed_mid_stream_is_kept_as_interrupted_and_nothing_else_changes(deployment):
    earlier = finished_conversations(deployment, 2)
    run = deployment.start()
    session, client = sign_in(run.url)
    before = {conversation_id: export(session, conversation_id) for conversation_id in earlier}

    # A long reply streams until some of it is on disk; then the server is killed.
    client.submit("tell me a very long story", None, api_name="/chat")
    deadline = time.monotonic() + 60
    streaming: list[tuple] = []
    while not streaming and time.monotonic() < deadline:
        streaming = deployment.db(
            "SELECT conversation_id, content FROM messages "
            "WHERE status = 'streaming' AND length(content) > 0"
        )
        time.sleep(0.05)
    assert streaming, "no partial reply was saved"
    run.process.kill()  # SIGKILL: no shutdown code runs
    run.process.wait(timeout=30)
    [(crashed, seen_partial)] = streaming

    # Restarted with the same settings and database.
    run = deployment.start()
    session, client = sign_in(run.url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stored = client.predict(crashed, api_name="/get_conversation")["messages"]
        if stored[-1]["status"] != "streaming":
            break
        time.sleep(0.2)
    assert [(m["role"], m["content"], m["status"]) for m in stored][:1] == [
        ("user", "tell me a very long story", "complete")
    ]
    assert [(m["role"], m["status"]) for m in stored][1:] == [("assistant", "interrupted")]
    assert stored[1]["content"].startswith(seen_partial)  # at least what was seen on disk
    for conversation_id, exported in before.items():
        assert export(session, conversation_id) == exported  # byte for byte
    listed = {c["id"] for c in client.predict("", api_name="/list_conversations")}
    assert listed == {*earlier, crashed}

    # The trail says the turn was asked and how it ended, and its chain is intact.
    records = deployment.db(
        "SELECT type, actor, outcome FROM audit_log WHERE target = ? ORDER BY id", crashed
    )
    alice = deployment.user_key("alice")
    assert records == [("chat.request", alice, "started"), ("chat.reply", alice, "interrupted")]
    run.process.terminate()
    run.process.wait(timeout=60)
    verify = deployment.launch("audit", "verify", log_name="verify")
    assert verify.wait(timeout=120) == 0, (deployment.tmp_path / "verify.log").read_text()[-2000:]
