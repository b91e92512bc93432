"""The relying party and the route gate, built from the auth settings for the composition root to place."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from auth.embedded_idp import EmbeddedIdp
from auth.gradio_binding import MemorySessionHashBindings, SessionHashBindings
from auth.login_routes import (
    BACKCHANNEL_LOGOUT_PATH,
    CALLBACK_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    OidcLogin,
    TokenPolicy,
)
from auth.login_state import LoginStateStore, MemoryLoginStateStore
from auth.oidc_provider import OidcProvider
from auth.route_gate import AuthGate, RequestAuthenticator
from auth.session_cookie import SessionCookie, session_keys
from auth.session_manager import SessionManager
from auth.settings import OidcSettings, SessionSettings, Site
from auth.token_checks import OneTimeIds, TokenVerifier
from core.audit import AuditSink
from core.locale import LanguageCookie
from core.preferences import UserPreferences
from core.sessions import SessionStore

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
class AuthParts:
    """What build_auth built: routes and the gate to place, and `start()`/`stop()` for the lifespan."""

    oidc: OidcSettings
    routes: list[BaseRoute]
    gate: Middleware
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
        oidc = self.oidc
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


def build_auth(
    oidc: OidcSettings,
    session: SessionSettings,
    site: Site,
    *,
    sessions: SessionStore,
    audit: AuditSink,
    clock: Callable[[], datetime] = utc_now,
    login_states: LoginStateStore | None = None,
    bindings: SessionHashBindings | None = None,
    logout_token_ids: OneTimeIds | None = None,
    authenticators: Iterable[RequestAuthenticator] = (),
    token_policy: TokenPolicy | None = None,
    preferences: UserPreferences | None = None,
    language_cookie: LanguageCookie | None = None,
    extra_public_paths: Iterable[str] = (),
) -> AuthParts:
    """The login/callback/logout/back-channel routes and the gate middleware, for the caller to place.

    The routes must come before a Gradio app mounted at "/", which would otherwise shadow them; the
    gate is the innermost middleware. `start()` and `stop()` belong in the app's lifespan.
    """
    cookie = SessionCookie(
        session_keys(session, production=site.production),
        https=site.https,
        name=session.cookie_name,
        max_age_seconds=session.absolute_timeout_hours * 3600,
    )
    manager = SessionManager(
        sessions,
        cookie,
        idle=timedelta(minutes=session.idle_timeout_minutes),
        absolute=timedelta(hours=session.absolute_timeout_hours),
        clock=clock,
    )
    states = login_states or MemoryLoginStateStore()
    login = OidcLogin(
        oidc=oidc,
        base_url=site.base_url,
        sessions=manager,
        states=states,
        audit=audit,
        clock=clock,
        token_policy=token_policy,
        preferences=preferences,  # a stored language choice re-sets the language cookie
        language_cookie=language_cookie,
    )
    gate = Middleware(
        AuthGate,
        sessions=manager,
        public_routes={
            **PUBLIC_ROUTES,
            oidc.post_logout_path: _READ,
            **dict.fromkeys(extra_public_paths, _READ),
        },
        login_url=site.base_url + LOGIN_PATH,
        authenticators=tuple(authenticators),
    )
    return AuthParts(
        oidc=oidc,
        routes=login.routes(),
        gate=gate,
        sessions=manager,
        login=login,
        login_states=states,
        bindings=bindings
        or MemorySessionHashBindings(timedelta(hours=session.gradio_binding_ttl_hours)),
        clock=clock,
        logout_token_ids=logout_token_ids,
        embedded=EmbeddedIdp(oidc.embedded_port) if oidc.embedded else None,
    )
