"""The composition root: the services built from settings, and the app built from the services.

This is the one place where the packages meet (docs/architecture.md): core holds the shared types;
auth, guards, store and model depend on core only; webui depends on those; only this module (and
launch.py, which calls it) knows them all. The middleware stack is written once, below, outermost
first. Nothing here does I/O until `build_services` is called or uvicorn starts the app.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from starlette.middleware import Middleware

from auth.assembly import AuthParts, build_auth
from auth.bearer_tokens import CredentialRefusalMiddleware
from auth.gradio_binding import SessionHashBindings
from auth.login_routes import CALLBACK_PATH, LOGIN_PATH, TokenPolicy
from auth.login_state import LoginStateStore
from auth.route_gate import RequestAuthenticator
from auth.settings import Site
from auth.startup_checks import validate_auth_settings
from auth.token_checks import OneTimeIds
from config import Settings
from core.audit import AuditSink
from core.blocking_io import run_blocking
from core.history import History
from core.locale import LanguageCookie
from core.preferences import UserPreferences
from core.request_facts import NotAuthenticated, not_authenticated
from core.sessions import MemorySessionStore, SessionStore
from core.store_outage import Writes
from guards.body_limit import BodyLimitMiddleware
from guards.client_ip import ClientAddressMiddleware
from guards.ip_allowlist import AccessRules, IPAllowlistMiddleware
from guards.origin_check import (
    OriginCheckMiddleware,
    allowed_origins,
    cors_middleware,
    origin_of,
)
from guards.outages import OutageMiddleware
from guards.rate_limit_middleware import RateLimitMiddleware
from guards.rate_limits import RateLimiter
from guards.security_headers import SecurityHeadersMiddleware
from guards.stop_requests import MemoryStopCounters, StopRequests
from guards.user_concurrency import UserConcurrency
from model.engine import Engine
from store.api_tokens import ApiTokenStore
from store.audit_log import AuditLog
from store.prompt_policy import PromptPolicy
from webui.admin_service import AdminService
from webui.chat_page import PageOptions, build_chat_page
from webui.chat_service import ChatService, TurnGuards
from webui.export_routes import export_router
from webui.health import health_router
from webui.language_switch import language_router
from webui.metrics import Metrics, MetricsMiddleware, metrics_router
from webui.metrics_tap import MetricsAuditTap
from webui.page_language import PageLanguageMiddleware, page_language_router
from webui.page_mount import mount_chat_page
from webui.request_id import RequestIdMiddleware
from webui.session_watch import session_watch_router
from webui.signout_page import signout_router
from webui.theme import page_theme
from webui.tokens_service import TokensService

log = logging.getLogger("chat.app")
_SAVE_TIMEOUT = 10.0  # seconds for stopped replies to be written after the engine closes
_UNGATED = ("/healthz", "/readyz")


class StartupError(Exception):
    """An expected start-up failure: one line for the operator, no stack trace."""


@dataclass(frozen=True)
class Services:
    """Everything the app needs, built by `build_services` (or a test) and closed by the app's lifespan."""

    engine: Engine
    history: History
    audit: AuditSink
    sessions: SessionStore = field(default_factory=MemorySessionStore)
    audit_log: AuditLog | None = None  # the admin tab reads it
    limiter: RateLimiter | None = None
    concurrency: UserConcurrency | None = None
    stops: StopRequests | None = None  # Stop from any tab or replica; None: this process only
    policy: PromptPolicy | None = None
    access: AccessRules | None = None
    authenticators: tuple[RequestAuthenticator, ...] = ()
    api_tokens: ApiTokenStore | None = None  # the API tokens tab
    preferences: UserPreferences | None = None  # a chosen page language; None: cookie only
    token_policy: TokenPolicy | None = None  # called by the login flow
    writes: Writes | None = None  # holds a reply's final save through a database outage
    readiness: Mapping[str, Callable[[], bool]] = field(default_factory=dict)  # /readyz probes
    # Shared by replicas (Redis, auth.redis_state) when [limits] storage is Redis; None: in memory.
    login_states: LoginStateStore | None = None
    bindings: SessionHashBindings | None = None
    logout_token_ids: OneTimeIds | None = None
    on_start: tuple[Callable[[], None], ...] = ()  # e.g. reply recovery, the retention job
    on_close: tuple[Callable[[], None], ...] = ()


def site_of(settings: Settings) -> Site:
    """What auth needs of [server] and `environment`."""
    server = settings.server
    return Site(
        base_url=server.public_url + server.root_path,
        host=server.host,
        https=server.https,
        production=settings.environment == "production",
    )


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    """Everything the app needs; slow steps (model download and load) happen here, before serving.

    `engine`: one already built (tests); by default the one the settings name is loaded."""
    from auth.bearer_tokens import PersonalTokenAuthenticator
    from auth.redis_state import shared_auth_state
    from auth.service_accounts import service_account_authenticator
    from core.shared_state import RedisProbe
    from store.audit_keys import audit_keys, validate_audit_settings
    from store.chat_history import ChatHistory
    from store.database import DatabaseUnavailable, open_database
    from store.held_writes import HeldAuditSink, HeldWrites
    from store.masking import Masker
    from store.reply_recovery import ReplyRecovery
    from store.retention_job import RetentionJob
    from store.sql_session_store import SqlSessionStore
    from store.token_policy import TokenPolicy
    from store.user_preferences import SqlUserPreferences

    try:
        validate_auth_settings(settings.oidc, settings.session, site_of(settings))
        validate_audit_settings(settings.audit, production=settings.environment == "production")
        keys = audit_keys(settings.audit)
        if keys.signer is None and settings.audit.checkpoint_file is not None:
            raise ValueError("audit.checkpoint_file needs a signing key (audit.signing_keys)")
        database = open_database(settings.database)
    except (ValueError, DatabaseUnavailable) as exc:
        raise StartupError(str(exc)) from None
    audit_log = AuditLog(database, Masker(settings.policy.mask_patterns), signer=keys.signer)
    # What finishes during a database outage (a reply's save, audit records) waits here, in order.
    held = HeldWrites(settings.database.held_writes_max)
    held_job = held.job()
    audit = HeldAuditSink(audit_log, held)
    checkpoints = _checkpoint_jobs(settings, audit_log, keys.signer)
    engine = engine or _engine(settings)
    tokens = ApiTokenStore(database, _utc_now)
    try:
        service = service_account_authenticator(settings.api, settings.oidc, audit, _utc_now)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    personal = PersonalTokenAuthenticator(
        tokens,
        audit,
        _utc_now,
        touch_interval=timedelta(seconds=settings.api.last_used_interval_seconds),
        jwts_handled_elsewhere=service is not None,
    )
    concurrency = UserConcurrency.from_settings(settings.limits)
    stops = StopRequests.from_settings(settings.limits)
    history = ChatHistory(database, audit)
    sessions = SqlSessionStore(database)
    retention = RetentionJob(settings.retention, history, audit_log, sessions)
    # Replies a killed server left "streaming" become "interrupted" (store/reply_recovery.py).
    recovery = ReplyRecovery(
        database,
        audit,
        history.live_replies,
        timedelta(seconds=settings.generation.interrupted_after_seconds),
    )
    limits = settings.limits
    readiness: dict[str, Callable[[], bool]] = {"database": database.reachable}
    redis_probe = None if limits.storage.startswith("memory://") else RedisProbe(limits.storage)
    if redis_probe is not None:
        readiness["redis"] = redis_probe
    shared = shared_auth_state(
        limits.storage, limits.key_prefix, settings.session.gradio_binding_ttl_hours
    )
    # The checkpoint job stops after the jobs that write audit records: its last checkpoint covers them.
    closers = (
        recovery.stop,
        retention.stop,
        held_job.stop,
        held.flush,  # a last try for what an outage still holds
        *(job.stop for job in checkpoints),
        concurrency.close,
        stops.close,
        *((redis_probe.close,) if redis_probe else ()),
        database.dispose,
    )
    return Services(
        engine=engine,
        history=history,
        audit=audit,
        sessions=sessions,
        audit_log=audit_log,
        writes=held,
        readiness=readiness,
        limiter=RateLimiter(limits, audit),
        concurrency=concurrency,
        stops=stops,
        policy=PromptPolicy(settings.policy.block_keywords, settings.policy.block_patterns),
        access=AccessRules.from_settings(settings.access),
        authenticators=(personal, service) if service else (personal,),
        api_tokens=tokens,
        preferences=SqlUserPreferences(database),
        # A refused login or a lost admin role also revokes the person's tokens.
        token_policy=TokenPolicy(tokens, audit),
        login_states=shared.login_states if shared else None,
        bindings=shared.bindings if shared else None,
        logout_token_ids=shared.logout_token_ids if shared else None,
        on_start=(
            recovery.start,
            retention.start,
            held_job.start,
            *(job.start for job in checkpoints),
        ),
        on_close=(*closers, shared.close) if shared else closers,
    )


def _checkpoint_jobs(settings: Settings, audit: AuditLog, signer) -> tuple:
    """The job that signs the chain head now and then (none without a signing key)."""
    from store.checkpoint_job import CheckpointJob

    audit_settings = settings.audit
    if signer is None:
        log.warning("audit records are written unsigned: no audit signing key (docs/audit.md)")
        return ()
    job = CheckpointJob(
        audit,
        signer,
        audit_settings.checkpoint_file,
        interval_seconds=audit_settings.checkpoint_interval_seconds,
        every_records=audit_settings.checkpoint_every_records,
    )
    return (job,)


def _engine(settings: Settings) -> Engine:
    """A remote OpenAI-compatible server, or the model loaded here (downloaded first if needed)."""
    if settings.model.source == "openai":
        from model.openai_engine import OpenAIEngine

        return OpenAIEngine(settings.openai, settings.generation)
    from model.loader import ModelUnavailable, load_model, resolve_model_dir
    from model.threaded_engine import ThreadedEngine

    try:
        model_dir = resolve_model_dir(settings.model)
        return ThreadedEngine(load_model(model_dir, settings.model), settings.generation)
    except ModelUnavailable as exc:
        raise StartupError(str(exc)) from None


def create_app(settings: Settings, services: Services) -> FastAPI:
    """Build the whole ASGI app; no I/O happens until uvicorn starts it."""
    metrics = Metrics()
    access = services.access or AccessRules.from_settings(settings.access)
    services = replace(services, audit=MetricsAuditTap(services.audit, metrics), access=access)
    site = site_of(settings)
    auth = _auth(settings, site, services)
    chat = _chat_service(settings, services, metrics)
    _track(metrics, services)
    admin, tokens = _admin_services(settings, services, access)

    app = FastAPI(
        lifespan=_lifespan(services, auth, chat),
        middleware=middleware_stack(settings, services, auth, metrics),
        routes=auth.routes,  # first: the Gradio page mounted at "/" must not shadow them
        exception_handlers={NotAuthenticated: not_authenticated},  # a route's CurrentUser: 401
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.include_router(health_router(services.engine, services.readiness))
    app.include_router(metrics_router(metrics))  # public to the gate; the metrics IP list guards it
    app.include_router(export_router(services.history, admin))
    app.include_router(signout_router(site.base_url))
    app.include_router(session_watch_router(site.base_url))
    app.include_router(page_language_router(site.base_url))
    app.include_router(language_router(services.preferences, language_cookie(settings)))
    page = build_chat_page(
        chat,
        services.history,
        PageOptions(
            title=settings.ui.title,
            export_base=site.base_url,
            demo_model=settings.model.source == "tiny-random",
            dev_login=settings.oidc.embedded,
        ),
        admin,
        tokens,
    )
    mount_chat_page(
        app,
        page,
        base_url=site.base_url,
        theme=page_theme(),
        bindings=auth.bindings,
        audit=services.audit,
        limits=settings.page,
        ui=settings.ui,
        generation=settings.generation,
        join_limiter=services.limiter,
    )
    return app


def middleware_stack(
    settings: Settings, services: Services, auth: AuthParts, metrics: Metrics
) -> list[Middleware]:
    """Every layer a request passes, outermost first; the auth gate is the innermost."""
    server, access = settings.server, settings.access
    # Logout ends with a redirect to the IdP, which the CSP's form-action must allow.
    idp = "http://127.0.0.1:*" if settings.oidc.embedded else origin_of(settings.oidc.issuer)
    limits = []
    if services.limiter is not None:
        # Before the gate: it counts requests the gate does not identify, per real client
        # address, and refuses a flood before the gate looks up any session or token.
        limits.append(
            Middleware(
                RateLimitMiddleware,
                limiter=services.limiter,
                session_cookie=auth.sessions.cookie.name,
                login_paths=(LOGIN_PATH, CALLBACK_PATH),
                exempt_paths=_UNGATED,
            )
        )
    return [
        Middleware(RequestIdMiddleware),
        Middleware(ClientAddressMiddleware, trusted_proxies=server.trusted_proxies),
        Middleware(MetricsMiddleware, metrics=metrics),  # refusals by outer layers count too
        Middleware(SecurityHeadersMiddleware, https=server.https, form_action=[idp] if idp else []),
        # Inside the CSP's nonce pass: the page's language script joins the page's HTML first.
        Middleware(PageLanguageMiddleware, base_url=server.public_url + server.root_path),
        # Network rules run before the gate on purpose: refused traffic costs no session lookup,
        # so their audit records name an address, never a user.
        Middleware(IPAllowlistMiddleware, rules=services.access, audit=services.audit),
        Middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_body_bytes),
        cors_middleware(access.allow_origins),
        Middleware(
            OriginCheckMiddleware,
            allowed=allowed_origins(server.public_url, access.allow_origins),
            audit=services.audit,
        ),
        Middleware(OutageMiddleware),  # Redis or the database down: 503 "try again", not 500
        *limits,
        # Bad bearer tokens: a clear 401/403, not 500; inside the limits, which count them.
        Middleware(CredentialRefusalMiddleware),
        auth.gate,
    ]


def _auth(settings: Settings, site: Site, services: Services) -> AuthParts:
    return build_auth(
        settings.oidc,
        settings.session,
        site,
        sessions=services.sessions,
        audit=services.audit,
        authenticators=services.authenticators,
        login_states=services.login_states,
        bindings=services.bindings,
        logout_token_ids=services.logout_token_ids,
        token_policy=services.token_policy,
        preferences=services.preferences,
        language_cookie=language_cookie(settings),
        extra_public_paths=("/metrics",),
    )


def language_cookie(settings: Settings) -> LanguageCookie:
    """The language cookie: the app's root path, Secure exactly when the session cookie is."""
    server = settings.server
    return LanguageCookie(path=server.root_path or "/", secure=server.https)


def _lifespan(services: Services, auth: AuthParts, chat: ChatService):
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await auth.start()  # the IdP's discovery is checked before serving; fails loudly
        try:
            for start in services.on_start:
                # Before serving (e.g. replies a crash left "streaming" are marked interrupted);
                # in a thread, as these may run SQL.
                await run_blocking(start)
            yield
            # uvicorn has already stopped accepting connections and let open streams run for
            # server.shutdown_grace_seconds; what still runs now is stopped and saved as stopped.
            chat.start_draining()
            log.info("shutting down: stopping running generations")
            await run_blocking(services.engine.close)
            if not await run_blocking(chat.wait_idle, _SAVE_TIMEOUT):
                log.warning("shutdown: some replies were still running and may not be saved")
            for close in services.on_close:
                await run_blocking(close)
        finally:
            await auth.stop()

    return lifespan


def _track(metrics: Metrics, services: Services) -> None:
    engine = services.engine
    metrics.track_queue_depth(lambda: engine.load.waiting)
    metrics.track_generations_in_flight(lambda: engine.load.running)
    metrics.track_active_sessions(lambda: len(services.sessions.list_active(_utc_now())))


def _chat_service(settings: Settings, services: Services, metrics: Metrics) -> ChatService:
    guards = TurnGuards(
        policy=services.policy,
        limiter=services.limiter,
        concurrency=services.concurrency,
        # Services built without one (tests) still stop across tabs of this one process.
        stops=services.stops or StopRequests(MemoryStopCounters()),
    )
    return ChatService(
        services.engine,
        services.history,
        services.audit,
        settings.generation,
        guards,
        observer=metrics,  # each turn's final stats, straight from the engine
        writes=services.writes,
    )


def _admin_services(
    settings: Settings, services: Services, access: AccessRules
) -> tuple[AdminService | None, TokensService | None]:
    def require_admin_ip(ip: str | None) -> None:
        access.require_admin_ip(ip, services.audit)

    admin = tokens = None
    if services.audit_log is not None:
        admin = AdminService(
            services.audit_log,
            services.audit,
            services.sessions,
            require_admin_ip,
            tokens=services.api_tokens,
        )
    if services.api_tokens is not None:
        tokens = TokensService(services.api_tokens, services.audit, settings.api, require_admin_ip)
    return admin, tokens


def _utc_now() -> datetime:
    return datetime.now(UTC)
