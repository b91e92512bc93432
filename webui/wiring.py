"""Build the real services from settings (model, database, limits); launch.py's one place for wiring."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime, timedelta

from config import Settings
from webui.app import Services

log = logging.getLogger("chat.wiring")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StartupError(Exception):
    """An expected start-up failure: one line for the operator, no stack trace."""


def build_services(settings: Settings) -> Services:
    """Everything the app needs; slow steps (model download and load) happen here, before serving."""
    from auth.bearer_tokens import PersonalTokenAuthenticator
    from auth.ip_allowlist import AccessRules
    from auth.rate_limits import RateLimiter
    from auth.redis_state import shared_auth_state
    from auth.service_accounts import service_account_authenticator
    from auth.startup_checks import validate_audit_settings, validate_auth_settings
    from auth.user_concurrency import UserConcurrency
    from store.api_tokens import ApiTokenStore
    from store.audit_keys import audit_keys
    from store.audit_log import AuditLog
    from store.chat_history import ChatHistory
    from store.masking import Masker
    from store.prompt_policy import PromptPolicy
    from store.reply_recovery import ReplyRecovery
    from store.retention_job import RetentionJob
    from store.sql_session_store import SqlSessionStore
    from store.token_policy_tap import TokenPolicyTap

    try:
        validate_auth_settings(settings)
        validate_audit_settings(settings)
        keys = audit_keys(settings.audit)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    if keys.signer is None and settings.audit.checkpoint_file is not None:
        raise StartupError("audit.checkpoint_file needs a signing key (audit.signing_keys)")
    if keys.signer is None:
        log.warning("audit records are written unsigned: no audit signing key (docs/audit.md)")
    database = _database(settings)
    audit = AuditLog(database, Masker(settings.policy.mask_patterns), signer=keys.signer)
    checkpoints = _checkpoint_job(settings, audit, keys.signer)
    engine = _engine(settings)
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
    limiter = RateLimiter(settings.limits, audit)
    concurrency = UserConcurrency.from_settings(settings.limits)
    history = ChatHistory(database, audit)
    sessions = SqlSessionStore(database)
    retention = RetentionJob(settings.retention, history, audit, sessions)
    # Replies a killed server left "streaming" become "interrupted" (store/reply_recovery.py).
    recovery = ReplyRecovery(
        database,
        audit,
        history.live_replies,
        timedelta(seconds=settings.generation.interrupted_after_seconds),
    )
    shared = shared_auth_state(
        settings.limits.storage,
        settings.limits.key_prefix,
        settings.session.gradio_binding_ttl_hours,
    )
    # The checkpoint job stops after the jobs that write audit records: its last checkpoint covers them.
    closers = (
        recovery.stop,
        retention.stop,
        *(job.stop for job in checkpoints),
        concurrency.close,
        database.dispose,
    )
    return Services(
        engine=engine,
        history=history,
        # Logins go through here: a refused login or a lost admin role also revokes tokens.
        audit=TokenPolicyTap(audit, tokens),
        sessions=sessions,
        audit_log=audit,
        limiter=limiter,
        concurrency=concurrency,
        policy=PromptPolicy(settings.policy.block_keywords, settings.policy.block_patterns),
        access=AccessRules.from_settings(settings.access),
        authenticators=(personal, service) if service else (personal,),
        api_tokens=tokens,
        login_states=shared.login_states if shared else None,
        bindings=shared.bindings if shared else None,
        logout_token_ids=shared.logout_token_ids if shared else None,
        on_start=(recovery.start, retention.start, *(job.start for job in checkpoints)),
        on_close=(*closers, shared.close) if shared else closers,
    )


def _checkpoint_job(settings: Settings, audit, signer) -> tuple:
    """The job that signs the chain head now and then (none without a signing key)."""
    from store.checkpoint_job import CheckpointJob

    if signer is None:
        return ()
    job = CheckpointJob(
        audit,
        signer,
        settings.audit.checkpoint_file,
        interval_seconds=settings.audit.checkpoint_interval_seconds,
        every_records=settings.audit.checkpoint_every_records,
    )
    return (job,)


def _engine(settings: Settings):
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


def _database(settings: Settings, force_migrate: bool = False):
    from store.database import create_database, migrate

    database = create_database(settings.database.url)
    try:
        if settings.database.migrate_on_start or force_migrate:
            migrate(database)
        elif not database.has_schema():
            raise StartupError("the database has no tables: run `python launch.py migrate` first")
    except StartupError:
        raise
    except Exception as exc:  # connection refused, bad credentials, ...
        log.debug("database start-up failed", exc_info=True)
        raise StartupError(
            f"cannot use the database ({type(exc).__name__}); check [database] url "
            "(or CHAT_DATABASE__URL) and that the server is reachable"
        ) from None
    return database


def migrate_command(settings: Settings) -> int:
    try:
        database = _database(settings, force_migrate=True)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    database.dispose()
    print("database schema is up to date")
    return 0
