"""The chat app as the journeys meet it: built by `app_factory.build_services` from settings that point
at the node IdP, a throw-away PostgreSQL schema, a Redis key namespace and the tiny random model.

The same wiring launch.py uses, served by uvicorn on a loopback port; the one change is the pace
at which the engine's tokens are handed to the page (see PacedEngine).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app_factory import Services, build_services, create_app
from config import Settings
from model.engine import Engine, GenerationStream
from model.types import GenerationRequest, TextDelta
from tests.backends import REDIS_URL, postgres_schema, postgres_url, redis_namespace
from tests.e2e.harness import IdpAccount, IdpClient
from tests.live_server import live_server
from tests.server_errors import ServerErrorWatch

SCOPES = ("openid", "email", "profile", "groups")
POST_LOGOUT_PATH = "/logged-out"
# The tiny model never emits end-of-sequence, so every reply is exactly this long; at
# TOKENS_PER_SECOND that is a few seconds, long enough to see it grow and to press Stop mid-way.
MAX_NEW_TOKENS = 120
# The tiny model decodes ~300 tokens/s here; the browser re-rendering the chatbot that often takes
# the whole renderer (a click waits seconds). The real model streams 8-30 tokens/s: pace like it.
TOKENS_PER_SECOND = 40.0


class PacedStream:
    """A generation stream whose text deltas are handed out no faster than `interval` apart."""

    def __init__(self, stream: GenerationStream, interval: float) -> None:
        self._stream = stream
        self._interval = interval
        self._cancelled = False

    @property
    def final(self):
        return self._stream.final

    def queue_place(self):
        return self._stream.queue_place()

    def __iter__(self) -> Iterator[TextDelta]:
        for delta in self._stream:
            if not self._cancelled:  # what the fast model already made drains at once on a stop
                time.sleep(self._interval)
            yield delta

    def cancel(self) -> None:
        self._cancelled = True
        self._stream.cancel()


class PacedEngine:
    """The real engine from build_services, its replies paced like a production-sized model."""

    def __init__(self, engine: Engine, tokens_per_second: float) -> None:
        self._engine = engine
        self._interval = 1.0 / tokens_per_second

    def stream(self, request: GenerationRequest) -> PacedStream:
        return PacedStream(self._engine.stream(request), self._interval)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)  # ready(), close(), the admission gate for metrics


@dataclass(frozen=True)
class ChatApp:
    """The running app, with its services so a journey can check what the server recorded."""

    url: str
    settings: Settings
    services: Services

    @property
    def issuer(self) -> str:
        return self.settings.oidc.issuer

    def user_key(self, account: IdpAccount) -> str:
        """The key the app stores for `account` (issuer and subject, never the e-mail)."""
        return f"{self.issuer}|{account.login}"

    def active_sessions(self, account: IdpAccount) -> list[object]:
        return self.services.sessions.list_active(datetime.now(UTC), self.user_key(account))


def app_client(port: int) -> IdpClient:
    """The chat app's registration at the IdP: its callback, /logged-out and back-channel logout."""
    return IdpClient(
        rp_port=port,
        client_id="company-chat-e2e",
        client_secret=secrets.token_urlsafe(24),
        post_logout_path=POST_LOGOUT_PATH,
    )


def chat_settings(
    issuer: str, client: IdpClient, *, database_url: str, key_prefix: str, model_cache: Path
) -> Settings:
    """Settings as an operator would write them for this deployment (development environment)."""
    return Settings(
        environment="development",
        server={"host": "127.0.0.1", "port": client.rp_port, "public_url": client.rp_base_url},
        # One torch thread: the other core is the browser's.
        model={"source": "tiny-random", "cache_dir": str(model_cache), "threads": 1},
        generation={"max_new_tokens": MAX_NEW_TOKENS},
        oidc={
            "issuer": issuer,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "scopes": SCOPES,
            "allowed_groups": ["staff"],
            "admin_groups": ["chat-admins"],
            "post_logout_path": POST_LOGOUT_PATH,
        },
        session={"secret_keys": [secrets.token_urlsafe(48)]},
        database={"url": database_url},
        # Every browser here comes from 127.0.0.1: per-IP limits must not trip across journeys.
        limits={
            "storage": REDIS_URL,
            "key_prefix": key_prefix,
            "chat_per_minute": 60,
            "login_per_minute_per_ip": 600,
            "unauthenticated_per_minute_per_ip": 6000,
        },
    )


@contextlib.contextmanager
def run_chat_app(issuer: str, client: IdpClient, model_cache: Path) -> Iterator[ChatApp]:
    """Build the services from settings (migrating the fresh schema), serve the app, tear it all down."""
    with postgres_schema("e2e") as schema, redis_namespace("e2e") as key_prefix:
        settings = chat_settings(
            issuer,
            client,
            database_url=postgres_url(schema),
            key_prefix=key_prefix,
            model_cache=model_cache,
        )
        built = build_services(settings)
        services = replace(built, engine=PacedEngine(built.engine, TOKENS_PER_SECOND))
        watch = ServerErrorWatch(create_app(settings, services))
        with live_server(watch, port=client.rp_port) as url:
            yield ChatApp(url=url, settings=settings, services=services)
        assert not watch.errors, f"the app answered internal errors: {watch.errors}"
