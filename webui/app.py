"""The app factory: FastAPI with the hardened Gradio page mounted, built from settings and services."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import gradio as gr
from fastapi import FastAPI
from starlette.middleware import Middleware

from auth.bearer_tokens import CredentialRefusalMiddleware
from auth.body_limit import BodyLimitMiddleware
from auth.client_ip import ClientAddressMiddleware
from auth.gradio_binding import MemorySessionHashBindings, SessionHashBindings
from auth.gradio_doors import guard_gradio_mount
from auth.install import install_auth
from auth.ip_allowlist import AccessRules, IPAllowlistMiddleware
from auth.login_state import LoginStateStore
from auth.origin_check import OriginCheckMiddleware, allowed_origins, cors_middleware
from auth.rate_limit_middleware import RateLimitMiddleware
from auth.route_gate import RequestAuthenticator
from auth.security_headers import SecurityHeadersMiddleware
from auth.session_store import MemorySessionStore, SessionStore
from auth.shared_state_outage import SharedStateOutageMiddleware
from auth.token_checks import OneTimeIds
from config import Settings
from model.engine import Engine
from store.events import AuditSink
from webui.admin_service import AdminService
from webui.chat_page import PageOptions, build_chat_page, page_theme
from webui.chat_service import ChatService, History, TurnGuards
from webui.export_routes import export_router
from webui.health import health_router
from webui.i18n import build_i18n
from webui.metrics import Metrics, MetricsMiddleware, metrics_router
from webui.metrics_tap import MetricsAuditTap
from webui.request_id import RequestIdMiddleware
from webui.session_watch import session_watch_head, session_watch_router
from webui.signout_page import signout_router
from webui.tokens_service import TokensService
from webui.unexpected_errors import log_gradio_tracebacks, unexpected_error

log = logging.getLogger("chat.app")
_SAVE_TIMEOUT = 10.0  # seconds for stopped replies to be written after the engine closes


@dataclass(frozen=True)
class Services:
    """Everything the app needs, built by launch.py (or a test) and closed by the app's lifespan."""

    engine: Engine
    history: History
    audit: AuditSink
    sessions: SessionStore = field(default_factory=MemorySessionStore)
    audit_log: Any = None  # store.audit_log.AuditLog, for the admin tab
    limiter: Any = None  # auth.rate_limits.RateLimiter
    concurrency: Any = None  # auth.user_concurrency.UserConcurrency
    policy: Any = None  # store.prompt_policy.PromptPolicy
    access: AccessRules | None = None
    authenticators: tuple[RequestAuthenticator, ...] = ()
    api_tokens: Any = None  # store.api_tokens.ApiTokenStore, for the API tokens tab
    # Shared by replicas (auth.redis_state) when [limits] storage is Redis; None: in memory.
    login_states: LoginStateStore | None = None
    bindings: SessionHashBindings | None = None
    logout_token_ids: OneTimeIds | None = None
    on_start: tuple[Callable[[], None], ...] = ()  # e.g. reply recovery, the retention job
    on_close: tuple[Callable[[], None], ...] = ()


def create_app(settings: Settings, services: Services) -> FastAPI:
    """Build the whole ASGI app; no I/O happens until uvicorn starts it."""
    metrics = Metrics()
    # One owner store for session hashes and events, shared by the auth install and the Gradio door.
    bindings = services.bindings or MemorySessionHashBindings(
        timedelta(hours=settings.session.gradio_binding_ttl_hours)
    )
    services = replace(services, audit=MetricsAuditTap(services.audit, metrics), bindings=bindings)
    _track(metrics, services)

    chat = _chat_service(settings, services)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for start in services.on_start:
            # Before serving (e.g. replies a crash left "streaming" are marked interrupted); in a
            # thread, as these may run SQL.
            await anyio.to_thread.run_sync(start)
        yield
        # uvicorn has already stopped accepting connections and let open streams run for
        # server.shutdown_grace_seconds; what still runs now is stopped and saved as stopped.
        chat.start_draining()
        log.info("shutting down: stopping running generations")
        services.engine.close()
        if not await anyio.to_thread.run_sync(chat.wait_idle, _SAVE_TIMEOUT):
            log.warning("shutdown: some replies were still running and may not be saved")
        for close in services.on_close:
            close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(health_router(services.engine))
    app.include_router(metrics_router(metrics))  # public to the gate; the metrics IP list guards it
    access = services.access or AccessRules.from_settings(settings.access)
    admin = None
    if services.audit_log is not None:
        admin = AdminService(
            services.audit_log,
            services.audit,
            services.sessions,
            lambda ip: access.require_admin_ip(ip, services.audit),
            tokens=services.api_tokens,
        )
    tokens = None
    if services.api_tokens is not None:
        tokens = TokensService(
            services.api_tokens,
            services.audit,
            settings.api,
            lambda ip: access.require_admin_ip(ip, services.audit),
        )
    app.include_router(export_router(services.history, admin))
    base_url = settings.server.public_url + settings.server.root_path
    app.include_router(signout_router(base_url))
    app.include_router(session_watch_router(base_url))
    _mount_page(app, settings, services, chat, admin, tokens, bindings)
    _install_middleware(app, settings, services, access, metrics)
    return app


def _track(metrics: Metrics, services: Services) -> None:
    gate = getattr(services.engine, "gate", None)
    if gate is not None:
        metrics.track_queue_depth(lambda: gate.waiting)
        metrics.track_generations_in_flight(lambda: gate.running)
    metrics.track_active_sessions(lambda: len(services.sessions.list_active(datetime.now(UTC))))


def _chat_service(settings: Settings, services: Services) -> ChatService:
    guards = TurnGuards(
        policy=services.policy, limiter=services.limiter, concurrency=services.concurrency
    )
    return ChatService(
        services.engine, services.history, services.audit, settings.generation, guards
    )


def _mount_page(
    app: FastAPI,
    settings: Settings,
    services: Services,
    chat: ChatService,
    admin: AdminService | None,
    tokens: TokensService | None,
    bindings: SessionHashBindings,
) -> None:
    base = settings.server.public_url + settings.server.root_path
    page = build_chat_page(
        chat,
        services.history,
        PageOptions(
            title=settings.ui.title,
            export_base=base,
            demo_model=settings.model.source == "tiny-random",
            dev_login=settings.oidc.embedded,
        ),
        admin,
        tokens,
    )
    # api_open=False: /gradio_api/run/* would otherwise bypass the queue and its limits.
    page.queue(api_open=False, max_size=64, default_concurrency_limit=1)
    gr.mount_gradio_app(
        app,
        page,
        path="/",
        # A full URL: Gradio would otherwise build links from X-Forwarded-Host sent by any client.
        root_path=base,
        ssr_mode=False,  # 6.31 has a Host-forgery advisory in SSR and run history
        run_history=False,
        enable_monitoring=False,
        mcp_server=False,
        show_error=False,
        max_file_size="1kb",  # no feature takes uploads
        footer_links=["api"],
        i18n=build_i18n(),
        theme=page_theme(),
        head=session_watch_head(base),
    )
    gradio_app = guard_gradio_mount(
        app, page, bindings=bindings, audit=services.audit, clock=_utc_now
    )
    log_gradio_tracebacks()
    for served in (app, gradio_app):
        served.add_exception_handler(Exception, unexpected_error)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _install_middleware(
    app: FastAPI, settings: Settings, services: Services, access: AccessRules, metrics: Metrics
) -> None:
    """The middleware stack, written outermost first; the auth gate is the innermost layer."""
    auth = install_auth(
        app,
        settings,
        sessions=services.sessions,
        audit=services.audit,
        authenticators=services.authenticators,
        login_states=services.login_states,
        bindings=services.bindings,
        logout_token_ids=services.logout_token_ids,
        extra_public_paths=("/metrics",),
    )
    app.state.auth = auth
    # Logout ends with a redirect to the IdP, which the CSP's form-action must allow.
    idp = "http://127.0.0.1:*" if settings.oidc.embedded else _origin(settings.oidc.issuer)
    limits = []
    if services.limiter is not None:
        # Before the gate: it counts requests the gate does not identify, per real client
        # address, and refuses a flood before the gate looks up any session or token.
        limits.append(
            Middleware(
                RateLimitMiddleware,
                limiter=services.limiter,
                session_cookie=auth.sessions.cookie.name,
                login_paths=("/login", "/auth/callback"),
                exempt_paths=("/healthz", "/readyz"),
            )
        )
    stack = [
        Middleware(RequestIdMiddleware),
        Middleware(ClientAddressMiddleware, trusted_proxies=settings.server.trusted_proxies),
        Middleware(MetricsMiddleware, metrics=metrics),  # refusals by outer layers count too
        Middleware(SecurityHeadersMiddleware, https=settings.server.https, form_action=[idp]),
        Middleware(IPAllowlistMiddleware, rules=access, audit=services.audit),
        Middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_body_bytes),
        cors_middleware(settings.access.allow_origins),
        Middleware(
            OriginCheckMiddleware,
            allowed=allowed_origins(settings.server.public_url, settings.access.allow_origins),
            audit=services.audit,
        ),
        Middleware(SharedStateOutageMiddleware),  # Redis down: 503 "try again", not 500
        *limits,
        # Bad bearer tokens: a clear 401/403, not 500; inside the limits, which count them.
        Middleware(CredentialRefusalMiddleware),
    ]
    for layer in reversed(stack):  # add_middleware wraps everything added before it
        app.add_middleware(layer.cls, *layer.args, **layer.kwargs)


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
