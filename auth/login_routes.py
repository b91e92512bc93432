"""The login, callback, logout and back-channel logout endpoints of the OpenID relying party.

Each endpoint's session, login-state, audit and token-policy work is blocking I/O: it runs in one
worker thread per step (core.blocking_io), never on the event loop.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from auth.auth_pages import auth_page
from auth.login_policy import LoginRefusal, evaluate_login
from auth.login_state import LoginState, LoginStateStore
from auth.oidc_provider import OidcConfigurationError, OidcProvider
from auth.safe_redirect import safe_next_path
from auth.session_manager import SessionManager
from auth.settings import OidcSettings
from auth.token_checks import TokenRefused, TokenVerifier
from core.audit import (
    ACCESS_DENIED,
    LOGIN_REFUSED,
    LOGIN_SUCCESS,
    LOGOUT,
    SESSION_REVOKED,
    AuditEvent,
    AuditSink,
)
from core.blocking_io import run_blocking
from core.identity import User
from core.locale import LanguageCookie
from core.preferences import UserPreferences
from core.request_facts import RequestFacts, facts_of
from core.sessions import Session
from guards.origin_check import origin_of

log = logging.getLogger("chat.auth")

LOGIN_PATH = "/login"
CALLBACK_PATH = "/auth/callback"
LOGOUT_PATH = "/logout"
BACKCHANNEL_LOGOUT_PATH = "/auth/backchannel-logout"

# What a refused person reads for each protocol failure; policy refusals bring their own text.
_RETRY = "Please go back to the chat and sign in again."
_PROTOCOL_MESSAGES = {
    "state_missing": "This sign-in link is incomplete or was opened in another browser. " + _RETRY,
    "state_mismatch": "This sign-in response does not belong to this browser. " + _RETRY,
    "state_unknown": "This sign-in response has expired or was already used. " + _RETRY,
}


class TokenPolicy(Protocol):
    """Brings a verified person's API tokens in line with this login's decision (store.token_policy)."""

    def logged_in(
        self, user_key: str, is_admin: bool, ip: str | None, request_id: str | None
    ) -> None: ...

    def refused(self, user_key: str, ip: str | None, request_id: str | None) -> None: ...


class OidcLogin:
    """Holds the relying party's collaborators; `provider` and `verifier` arrive at start-up."""

    def __init__(
        self,
        *,
        oidc: OidcSettings,
        base_url: str,
        sessions: SessionManager,
        states: LoginStateStore,
        audit: AuditSink,
        clock: Callable[[], datetime],
        token_policy: TokenPolicy | None = None,
        preferences: UserPreferences | None = None,
        language_cookie: LanguageCookie | None = None,
    ) -> None:
        self._oidc = oidc
        self._base_url = base_url
        self._origin = origin_of(base_url)
        self._sessions = sessions
        self._states = states
        self._audit = audit
        self._clock = clock
        self._token_policy = token_policy
        self._preferences = preferences
        self._language_cookie = language_cookie or LanguageCookie()
        self.provider: OidcProvider | None = None
        self.verifier: TokenVerifier | None = None

    def routes(self) -> list[Route]:
        return [
            Route(LOGIN_PATH, self.login, methods=["GET"]),
            Route(CALLBACK_PATH, self.callback, methods=["GET"]),
            Route(LOGOUT_PATH, self.logout, methods=["POST"]),
            Route(BACKCHANNEL_LOGOUT_PATH, self.backchannel_logout, methods=["POST"]),
            Route(self._oidc.post_logout_path, self.logged_out, methods=["GET"]),
        ]

    @property
    def redirect_uri(self) -> str:
        return self._base_url + CALLBACK_PATH

    async def login(self, request: Request) -> Response:
        next_path = safe_next_path(request.query_params.get("next"))
        if self.provider is None:
            return await self._unavailable(request, "not_started")
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        try:
            authz = await self.provider.authorization_request(
                self.redirect_uri, state=state, nonce=nonce
            )
        except OidcConfigurationError as exc:
            log.error("login unavailable: %s", exc)
            return await self._unavailable(request, "idp_misconfigured")
        ttl = self._oidc.login_state_ttl_seconds
        pending = LoginState(
            state=authz.state,
            nonce=authz.nonce,
            code_verifier=authz.code_verifier,
            redirect_uri=self.redirect_uri,
            next_path=next_path,
            expires_at=self._clock() + timedelta(seconds=ttl),
        )
        await run_blocking(self._states.put, pending)
        response = RedirectResponse(authz.url, 302)
        response.headers["Cache-Control"] = "no-store"
        self._sessions.cookie.set_login_state(response, authz.state, ttl)
        return response

    async def callback(self, request: Request) -> Response:
        if self.provider is None or self.verifier is None:
            return await self._unavailable(request, "not_started")
        params = request.query_params
        returned = params.get("state")
        bound = self._sessions.cookie.login_state(
            request.cookies.get(self._sessions.cookie.login_name)
        )
        if not returned or not bound:
            return await self._refuse(request, "state_missing", status=400)
        if not secrets.compare_digest(returned, bound):
            return await self._refuse(request, "state_mismatch", status=400)
        pending = await run_blocking(self._states.pop, returned, self._clock())
        if pending is None:
            return await self._refuse(request, "state_unknown", status=400)
        if params.get("error"):
            error = params[
                "error"
            ]  # RFC 6749 codes are [a-z_]; anything else is not logged verbatim
            detail = error if re.fullmatch(r"[a-z_]{1,64}", error) else "unrecognised"
            return await self._refuse(request, "idp_error", status=400, detail=detail)
        # RFC 9207: when the IdP names itself in the response, it must be our issuer (mix-up defence).
        if params.get("iss") is not None and params.get("iss") != self.provider.issuer:
            return await self._refuse(request, "issuer_mismatch", status=400)
        code = params.get("code")
        if not code:
            return await self._refuse(request, "missing_code", status=400)
        try:
            token = await self.provider.exchange_code(
                code, redirect_uri=pending.redirect_uri, code_verifier=pending.code_verifier
            )
            claims = await self.verifier.verify_id_token(token["id_token"], nonce=pending.nonce)
            if self._oidc.fetch_userinfo:
                claims = await self._with_userinfo(token, claims)
        except TokenRefused as refused:
            return await self._refuse(request, refused.reason, status=400)
        decision = evaluate_login(self.provider.issuer, claims, self._oidc)
        if isinstance(decision, LoginRefusal):
            actor = User(issuer=self.provider.issuer, subject=str(claims.get("sub"))).key
            return await self._refuse(
                request, decision.reason, status=403, message=decision.message, actor=actor
            )
        # Read before the session starts: a database that cannot answer fails the sign-in cleanly.
        chosen = await self._chosen_language(decision.key)
        sid = claims.get("sid")
        session = await run_blocking(
            self._sign_in,
            decision,
            facts_of(request),
            request.headers.get("user-agent"),
            sid if isinstance(sid, str) else None,
            token["id_token"],
        )
        log.info("login success", extra={"actor": decision.key, "admin": decision.is_admin})
        response = RedirectResponse(self._base_url + pending.next_path, 302)
        response.headers["Cache-Control"] = "no-store"
        self._sessions.cookie.clear_login_state(response)
        self._sessions.cookie.set(response, session.id)
        if self._preferences is not None:
            # The person's own choice on every browser they use; none: the browser's language,
            # never the choice of whoever used this browser before.
            if chosen is not None:
                self._language_cookie.set(response, chosen)
            else:
                self._language_cookie.clear(response)
        return response

    async def _chosen_language(self, user_key: str) -> str | None:
        """The page language the person saved (core.preferences), if any."""
        if self._preferences is None:
            return None
        return await run_blocking(self._preferences.language, user_key)

    def _sign_in(
        self,
        user: User,
        facts: RequestFacts,
        user_agent: str | None,
        idp_session_id: str | None,
        id_token: str,
    ) -> Session:
        """A new session (the browser's old one ends: a new id at every login), audited, and the
        person's API tokens brought in line with this login (blocking)."""
        if facts.session_id:
            self._sessions.end(facts.session_id)
        session = self._sessions.start(
            user,
            ip=facts.client_ip,
            user_agent=user_agent,
            idp_session_id=idp_session_id,
            id_token=id_token,
        )
        outcome = "admin" if user.is_admin else "user"
        self._audit.record(_event(facts, LOGIN_SUCCESS, actor=user.key, outcome=outcome))
        if self._token_policy is not None:
            self._token_policy.logged_in(user.key, user.is_admin, facts.client_ip, facts.request_id)
        return session

    async def _with_userinfo(self, token: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any]:
        assert self.provider is not None
        info = await self.provider.userinfo(token)
        if not info:
            return claims
        if info.get("sub") != claims["sub"]:
            raise TokenRefused("userinfo_sub_mismatch")  # OIDC Core 5.3.2: a token substitution
        return {**info, **claims}  # the signed ID token wins on any conflict

    async def logout(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != self._origin:
            await self._record(
                request, ACCESS_DENIED, outcome="logout_foreign_origin", target=LOGOUT_PATH
            )
            return auth_page(
                "Sign-out refused", "This sign-out request came from another site.", status=403
            )
        facts = facts_of(request)
        session_id = facts.session_id
        if not session_id:
            response: Response = RedirectResponse(self._base_url + self._oidc.post_logout_path, 303)
            self._sessions.cookie.clear(response)
            return response
        async with request.form(max_files=0, max_fields=10) as form:
            sent = form.get("csrf_token")
        sent = sent if isinstance(sent, str) else request.headers.get("x-csrf-token")
        if not self._sessions.cookie.check_csrf(session_id, sent):
            await self._record(
                request, ACCESS_DENIED, outcome="logout_bad_csrf", target=LOGOUT_PATH
            )
            return auth_page(
                "Sign-out not confirmed",
                "We could not verify this sign-out request. Reload the chat page and try again.",
                status=403,
            )
        event = _event(facts, LOGOUT, actor=facts.user_key)
        ended = await run_blocking(self._sign_out, session_id, event)
        response = RedirectResponse(
            await self._after_logout_url(ended.id_token if ended else None), 303
        )
        response.headers["Cache-Control"] = "no-store"
        self._sessions.cookie.clear(response)
        return response

    def _sign_out(self, session_id: str, event: AuditEvent) -> Session | None:
        """End the session, audited; the ended session (its ID token names it to the IdP)."""
        session = self._sessions.store.get(session_id)
        self._sessions.end(session_id)
        self._audit.record(event)
        return session

    async def _after_logout_url(self, id_token: str | None) -> str:
        local = self._base_url + self._oidc.post_logout_path
        if self.provider is None:
            return local
        try:
            endpoint = await self.provider.end_session_endpoint()
        except OidcConfigurationError:
            return local
        if not endpoint:
            return local
        return self.provider.logout_url(
            endpoint, id_token_hint=id_token, post_logout_redirect_uri=local
        )

    async def backchannel_logout(self, request: Request) -> Response:
        headers = {"Cache-Control": "no-store"}
        if self.verifier is None or self.provider is None:
            return JSONResponse({"error": "temporarily_unavailable"}, 503, headers=headers)
        async with request.form(max_files=0, max_fields=10) as form:
            token = form.get("logout_token")
        try:
            claims = await self.verifier.verify_logout_token(
                token if isinstance(token, str) else ""
            )
        except TokenRefused as refused:
            log.warning("back-channel logout refused: %s", refused.reason)
            await self._record(
                request, ACCESS_DENIED, outcome=refused.reason, target=BACKCHANNEL_LOGOUT_PATH
            )
            return JSONResponse({"error": "invalid_request"}, 400, headers=headers)
        ended = await run_blocking(self._end_idp_sessions, claims, facts_of(request))
        log.info("back-channel logout ended %d session(s)", ended)
        return Response(status_code=200, headers=headers)

    def _end_idp_sessions(self, claims: dict[str, Any], facts: RequestFacts) -> int:
        """End the sessions a logout token names (its `sid`, else every session of its `sub`),
        audited; how many ended."""
        assert self.provider is not None
        issuer = self.provider.issuer
        sid, sub = claims.get("sid"), claims.get("sub")
        if isinstance(sid, str) and sid:
            ended = self._sessions.store.revoke_idp_session(issuer, sid)
        else:
            ended = self._sessions.store.revoke_user(User(issuer=issuer, subject=str(sub)).key)
        actor = User(issuer=issuer, subject=str(sub)).key if sub else None
        outcome, details = "backchannel_logout", {"sessions": ended}
        self._audit.record(
            _event(facts, SESSION_REVOKED, actor=actor, outcome=outcome, details=details)
        )
        return ended

    async def logged_out(self, request: Request) -> Response:
        return auth_page(
            "You are signed out",
            "Your chat session has ended.",
            link=(self._base_url + LOGIN_PATH, "Sign in again"),
        )

    async def _refuse(
        self,
        request: Request,
        reason: str,
        *,
        status: int,
        message: str | None = None,
        actor: str | None = None,
        detail: str | None = None,
    ) -> Response:
        """No session; an audit record and a log line; a page that says why."""
        facts = facts_of(request)
        await run_blocking(
            self._record_refusal, _event(facts, LOGIN_REFUSED, actor=actor, outcome=reason)
        )
        log.warning("login refused: %s", reason, extra={"reason": reason, "idp_error": detail})
        text = message or _PROTOCOL_MESSAGES.get(
            reason, f"The sign-in could not be verified ({reason}). " + _RETRY
        )
        response = auth_page(
            "Sign-in refused",
            text,
            status=status,
            link=(self._base_url + LOGIN_PATH, "Try again"),
            reference=facts.request_id,
        )
        self._sessions.cookie.clear_login_state(response)
        return response

    def _record_refusal(self, event: AuditEvent) -> None:
        self._audit.record(event)
        if event.actor is not None and self._token_policy is not None:  # a verified person
            self._token_policy.refused(event.actor, event.ip, event.request_id)

    async def _unavailable(self, request: Request, reason: str) -> Response:
        await self._record(request, LOGIN_REFUSED, outcome=reason)
        return auth_page(
            "Sign-in unavailable",
            "The company sign-in service cannot be reached right now. Please try again in a few minutes.",
            status=503,
            reference=facts_of(request).request_id,
        )

    async def _record(self, request: Request, event_type: str, **fields: Any) -> None:
        await run_blocking(self._audit.record, _event(facts_of(request), event_type, **fields))


def _event(facts: RequestFacts, event_type: str, **fields: Any) -> AuditEvent:
    """An audit event about this request: its client address and request id filled in."""
    return AuditEvent(type=event_type, ip=facts.client_ip, request_id=facts.request_id, **fields)
