"""The development login: oidc-provider-mock served in-process on a loopback port with demo users.

For laptops and demos only. It accepts any client secret and lets anyone pick a user, so it refuses
to run unless the chat server itself binds a loopback address, and never in production.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from datetime import timedelta

import oidc_provider_mock
import werkzeug.serving

from auth.dev_login_pages import install_pages

log = logging.getLogger("chat.auth")

DEMO_GROUP = "staff"
DEMO_ADMIN_GROUP = "chat-admins"
DEMO_USERS = (
    oidc_provider_mock.User(
        sub="alice",
        claims={
            "email": "alice@example.com",
            "email_verified": True,
            "name": "Alice (staff)",
            "groups": [DEMO_GROUP],
        },
    ),
    oidc_provider_mock.User(
        sub="bob",
        claims={
            "email": "bob@example.com",
            "email_verified": True,
            "name": "Bob (staff)",
            "groups": [DEMO_GROUP],
        },
    ),
    oidc_provider_mock.User(
        sub="admin1",
        claims={
            "email": "admin1@example.com",
            "email_verified": True,
            "name": "Admin One",
            "groups": [DEMO_GROUP, DEMO_ADMIN_GROUP],
        },
    ),
    oidc_provider_mock.User(
        sub="outsider",
        claims={
            "email": "outsider@contractor.example",
            "email_verified": True,
            "name": "Outside Contractor",
            "groups": ["contractors"],
        },
    ),
)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class EmbeddedIdp:
    """Start/stop the development provider; `issuer` is known once it listens."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: werkzeug.serving.BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.issuer: str | None = None

    def start(self) -> str:
        if self._server is not None:
            assert self.issuer is not None
            return self.issuer
        app = oidc_provider_mock.app(
            require_nonce=True,
            issue_refresh_token=False,
            access_token_max_age=timedelta(minutes=10),
            user_claims=DEMO_USERS,
        )
        install_pages(app, {user.sub: str(user.claims["name"]) for user in DEMO_USERS})
        self._server = werkzeug.serving.make_server("127.0.0.1", self._port, app, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="embedded-idp", daemon=True
        )
        self._thread.start()
        # The mock names itself after the Host it is reached at; we always reach it at this URL.
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        log.warning("development login is ON: embedded OpenID provider at %s", self.issuer)
        return self.issuer

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
