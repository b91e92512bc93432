"""Two app replicas as real processes sharing PostgreSQL, Redis and an OpenID provider on loopback.

Both replicas are configured with the same public URL (replica A's), as they would be behind one
load balancer: the browser and the IdP only ever see that URL, and tests send each request to the
replica of their choice. Cookies are host-scoped, not port-scoped, so one cookie jar serves both.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import oidc_provider_mock
import werkzeug.serving

from store.audit_keys import generate_private_key_text, load_private_key, public_key_text
from store.database import create_database, migrate
from tests.backends import REDIS_URL, postgres_schema, postgres_url, redis_namespace
from tests.live_server import free_port
from tests.scaleout.replica import ReplicaConfig

ROOT = Path(__file__).resolve().parents[2]
STAFF = ("rita", "lou", "carol", "dave", "erin")
START_TIMEOUT = 60.0


@dataclass
class Cluster:
    a: str  # replica A's own URL (also the public URL of both)
    b: str  # replica B's own URL
    issuer: str
    database_url: str
    schema: str
    audit_public_key: str
    checkpoint_files: tuple[Path, ...]

    def key(self, user: str) -> str:
        return f"{self.issuer}|{user}"

    def browser(self) -> httpx.Client:
        return httpx.Client(timeout=30)

    def login(self, client: httpx.Client, user: str, *, start: str, finish: str) -> str:
        """Start the login on replica `start`, let the callback land on `finish`; the session id."""
        begun = client.get(start + "/login")
        assert begun.status_code == 302, begun.text[:300]
        page = client.get(begun.headers["location"], follow_redirects=True)
        assert "Authorize" in page.text, page.text[:300]
        approved = client.post(page.url, data={"sub": user})
        callback = urlsplit(approved.headers["location"])
        assert f"{callback.scheme}://{callback.netloc}" == self.a  # the IdP knows one public URL
        # The load balancer sends the callback to the other replica.
        landed = client.get(urlunsplit(callback._replace(netloc=urlsplit(finish).netloc)))
        assert landed.status_code == 302, landed.text[:500]
        assert landed.headers["location"] == self.a + "/"
        return client.cookies["chat_session"]

    def fn_index(self, client: httpx.Client, replica: str, api: str) -> int:
        """Gradio's index of the named API, as gradio_client reads it from /config."""
        config = client.get(f"{replica}/config")
        assert config.status_code == 200, config.text[:300]
        return next(d["id"] for d in config.json()["dependencies"] if d.get("api_name") == api)

    def call(self, client: httpx.Client, replica: str, api: str, *data: object) -> Any:
        """One call of a named script API on `replica` as gradio_client makes it (queue/join, then
        queue/data for a session hash of the call's own); its result."""
        config = client.get(f"{replica}/config")
        assert config.status_code == 200, config.text[:300]
        fn_index = next(d["id"] for d in config.json()["dependencies"] if d.get("api_name") == api)
        session_hash = secrets.token_hex(8)
        joined = client.post(
            f"{replica}/gradio_api/queue/join",
            json={"data": list(data), "fn_index": fn_index, "session_hash": session_hash},
        )
        assert joined.status_code == 200, joined.text[:300]
        stream = client.get(
            f"{replica}/gradio_api/queue/data", params={"session_hash": session_hash}
        )
        assert stream.status_code == 200, stream.text[:300]
        return _final_output(stream.text)

    def chat(self, client: httpx.Client, replica: str, message: str) -> dict[str, Any]:
        """One new conversation through the `chat` API of `replica`; the final update."""
        return self.call(client, replica, "chat", message, None)


def _final_output(sse: str) -> Any:
    for line in sse.splitlines():
        if line.startswith("data:"):
            message = json.loads(line.split(":", 1)[1])
            if message.get("msg") == "process_completed":
                assert message["success"], f"the call failed: {message}"
                return message["output"]["data"][0]
    raise AssertionError(sse[:500])


@contextlib.contextmanager
def identity_provider() -> Iterator[str]:
    """oidc-provider-mock as an ordinary external issuer, in a thread of the test process."""
    users = [
        oidc_provider_mock.User(
            sub=name,
            claims={"email": f"{name}@corp.example", "name": name.title(), "groups": ["staff"]},
        )
        for name in STAFF
    ]
    app = oidc_provider_mock.app(require_nonce=True, issue_refresh_token=False, user_claims=users)
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def migrated_schema() -> Iterator[str]:
    """A throw-away schema, migrated once (as `launch.py migrate` would be before the replicas)."""
    with postgres_schema("scaleout") as schema:
        database = create_database(postgres_url(schema))
        migrate(database)
        database.dispose()
        yield schema


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env.update(HF_HUB_DISABLE_IMPLICIT_TOKEN="1", GRADIO_ANALYTICS_ENABLED="False")
    return env


@contextlib.contextmanager
def replica(config: ReplicaConfig, log_path: Path) -> Iterator[subprocess.Popen]:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.scaleout.replica", config.to_json()],
            cwd=ROOT,
            env=_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_ready(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"replica exited:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"replica at {url} did not start:\n{log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def two_replicas(log_dir: Path, chat_per_minute: int) -> Iterator[Cluster]:
    """PostgreSQL schema + Redis namespace + IdP + replicas A and B; all removed afterwards."""
    port_a, port_b = free_port(), free_port()
    a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    with contextlib.ExitStack() as stack:
        schema = stack.enter_context(migrated_schema())
        database_url = postgres_url(schema)
        prefix = stack.enter_context(redis_namespace("scaleout"))
        issuer = stack.enter_context(identity_provider())
        audit_key = generate_private_key_text()
        checkpoint_files = {name: log_dir / f"checkpoints-{name}.jsonl" for name in ("a", "b")}
        shared = {
            "audit_key": audit_key,
            "public_url": a,
            "issuer": issuer,
            "client_secret": secrets.token_urlsafe(24),
            "session_key": secrets.token_urlsafe(48),
            "database_url": database_url,
            "redis_url": REDIS_URL,
            "key_prefix": prefix,
            "chat_per_minute": chat_per_minute,
        }
        started = []
        for name, port, url in (("a", port_a, a), ("b", port_b, b)):
            log_path = log_dir / f"replica-{name}.log"
            config = ReplicaConfig(port=port, checkpoint_file=str(checkpoint_files[name]), **shared)
            process = stack.enter_context(replica(config, log_path))
            started.append((url, process, log_path))
        for url, process, log_path in started:
            wait_until_ready(url, process, log_path)
        public = public_key_text(load_private_key(audit_key, "test").public_key())
        yield Cluster(
            a=a,
            b=b,
            issuer=issuer,
            database_url=database_url,
            schema=schema,
            audit_public_key=public,
            checkpoint_files=tuple(checkpoint_files.values()),
        )
