"""Wire the relying party and the route gate into the FastAPI app: the one call the app factory makes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from auth.embedded_idp import EmbeddedIdp
from auth.gradio_binding import MemorySessionHashBindings, SessionHashBindings
from auth.login_routes import (
    BACKCHANNEL_LOGOUT_PATH,
    CALLBACK_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    OidcLogin,
)
from auth.login_state import LoginStateStore, MemoryLoginStateStore
from auth.oidc_provider import OidcProvider
from auth.route_gate import AuthGate, RequestAuthenticator
from auth.session_cookie import SessionCookie, session_keys
from auth.session_manager import SessionManager
from auth.session_store import SessionStore
from auth.startup_checks import validate_auth_settings
from auth.token_checks import OneTimeIds, TokenVerifier
from config import Settings
from store.events import AuditSink

log = logging.getLogger("chat.auth")

_READ = ("GET", "HEAD")
# The only (path, methods) reachable without a session, matched exactly. The auth pages need no assets.
PUBLIC_ROUTES: dict[str, tuple[str, ...]] = {
    "/healthz": _READ,
    "/readyz": _READ,
    LOGIN_PATH: _READ,
    CALLBACK_PATH: _READ,
    LOGOUT_PATH: ("POST",),  # so an expired session can still sign out; CSRF-checked inside
    BACKCHANNEL_LOGOUT_PATH: ("POST",),  # called by the IdP, authenticated by the signed token
}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AuthComponents:
    """What install_auth built; `start()` runs at app start-up (the app's lifespan calls it)."""

    settings: Settings
    sessions: SessionManager
    login: OidcLogin
    login_states: LoginStateStore
    bindings: SessionHashBindings
    clock: Callable[[], datetime]
    logout_token_ids: OneTimeIds | None = None  # None: this process's memory
    embedded: EmbeddedIdp | None = None
    _started: bool = field(default=False, repr=False)

    @property
    def dev_login(self) -> bool:
        """True when the embedded development provider is in use: the page should say so."""
        return self.embedded is not None

    @property
    def issuer(self) -> str | None:
        return self.login.provider.issuer if self.login.provider else None

    async def start(self) -> None:
        """Start the embedded IdP if configured, load discovery and check its issuer (fails loudly)."""
        if self._started:
            return
        oidc = self.settings.oidc
        issuer, secret = oidc.issuer, oidc.client_secret
        client_secret = secret.get_secret_value() if secret else None
        if self.embedded is not None:
            issuer = self.embedded.start()
            client_secret = client_secret or "embedded-development-client"  # the mock accepts any
        provider = OidcProvider(
            issuer=issuer,
            client_id=oidc.client_id,
            client_secret=client_secret,
            scopes=oidc.scopes,
            timeout_seconds=oidc.http_timeout_seconds,
        )
        await provider.discover()  # raises OidcConfigurationError: start-up stops with its message
        self.login.verifier = TokenVerifier(
            issuer=issuer,
            client_id=oidc.client_id,
            algorithms=oidc.id_token_algorithms,
            leeway_seconds=oidc.clock_skew_seconds,
            fetch_jwks=provider.fetch_jwks,
            clock=self.clock,
            logout_token_max_age_seconds=oidc.logout_token_max_age_seconds,
            seen_ids=self.logout_token_ids,
        )
        self.login.provider = provider
        self._started = True
        log.info("OpenID provider ready (issuer checked against discovery)")

    async def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
        self._started = False


def install_auth(
    app: FastAPI,
    settings: Settings,
    *,
    sessions: SessionStore,
    audit: AuditSink,
    clock: Callable[[], datetime] = utc_now,
    login_states: LoginStateStore | None = None,
    bindings: SessionHashBindings | None = None,
    logout_token_ids: OneTimeIds | None = None,
    authenticators: Iterable[RequestAuthenticator] = (),
    extra_public_paths: Iterable[str] = (),
) -> AuthComponents:
    """Add the login/callback/logout/back-channel routes and the gate middleware to `app`.

    The routes go first in the router so a Gradio app mounted at "/" cannot shadow them; the gate is
    added as the outermost middleware at the time of the call. The app's lifespan is wrapped so
    `AuthComponents.start()` runs at start-up.
    """
    validate_auth_settings(settings)
    server = settings.server
    base_url = server.public_url + server.root_path
    cookie = SessionCookie(
        session_keys(settings),
        https=server.https,
        name=settings.session.cookie_name,
        max_age_seconds=settings.session.absolute_timeout_hours * 3600,
    )
    manager = SessionManager(
        sessions,
        cookie,
        idle=timedelta(minutes=settings.session.idle_timeout_minutes),
        absolute=timedelta(hours=settings.session.absolute_timeout_hours),
        clock=clock,
    )
    states = login_states or MemoryLoginStateStore()
    bound = bindings or MemorySessionHashBindings(
        timedelta(hours=settings.session.gradio_binding_ttl_hours)
    )
    login = OidcLogin(
        oidc=settings.oidc,
        base_url=base_url,
        sessions=manager,
        states=states,
        audit=audit,
        clock=clock,
    )
    components = AuthComponents(
        settings=settings,
        sessions=manager,
        login=login,
        login_states=states,
        bindings=bound,
        clock=clock,
        logout_token_ids=logout_token_ids,
        embedded=EmbeddedIdp(settings.oidc.embedded_port) if settings.oidc.embedded else None,
    )
    new_routes = login.routes()
    app.router.routes[:0] = new_routes
    app.add_middleware(
        AuthGate,
        sessions=manager,
        public_routes={
            **PUBLIC_ROUTES,
            settings.oidc.post_logout_path: _READ,
            **dict.fromkeys(extra_public_paths, _READ),
        },
        login_url=base_url + LOGIN_PATH,
        authenticators=tuple(authenticators),
    )
    _run_at_startup(app, components)
    return components


def _run_at_startup(app: FastAPI, components: AuthComponents) -> None:
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(asgi_app: FastAPI) -> AsyncIterator[object]:
        await components.start()
        try:
            async with inner(asgi_app) as state:
                yield state
        finally:
            await components.stop()

    app.router.lifespan_context = lifespan
