"""The login, callback, logout and back-channel logout endpoints of the OpenID relying party."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

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
from core.identity import User
from guards.client_ip import client_ip

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


def _state(request: Request) -> dict[str, Any]:
    """What the route gate (and the request-id middleware) put in the scope for this request."""
    return request.scope.setdefault("state", {})


def _request_id(request: Request) -> str | None:
    return _state(request).get("request_id")


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
    ) -> None:
        self._oidc = oidc
        self._base_url = base_url
        self._origin = "{0.scheme}://{0.netloc}".format(urlsplit(base_url))
        self._sessions = sessions
        self._states = states
        self._audit = audit
        self._clock = clock
        self._token_policy = token_policy
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
            return self._unavailable(request, "not_started")
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        try:
            authz = await self.provider.authorization_request(
                self.redirect_uri, state=state, nonce=nonce
            )
        except OidcConfigurationError as exc:
            log.error("login unavailable: %s", exc)
            return self._unavailable(request, "idp_misconfigured")
        ttl = self._oidc.login_state_ttl_seconds
        self._states.put(
            LoginState(
                state=authz.state,
                nonce=authz.nonce,
                code_verifier=authz.code_verifier,
                redirect_uri=self.redirect_uri,
                next_path=next_path,
                expires_at=self._clock() + timedelta(seconds=ttl),
            )
        )
        response = RedirectResponse(authz.url, 302)
        response.headers["Cache-Control"] = "no-store"
        self._sessions.cookie.set_login_state(response, authz.state, ttl)
        return response

    async def callback(self, request: Request) -> Response:
        if self.provider is None or self.verifier is None:
            return self._unavailable(request, "not_started")
        params = request.query_params
        returned = params.get("state")
        bound = self._sessions.cookie.login_state(
            request.cookies.get(self._sessions.cookie.login_name)
        )
        if not returned or not bound:
            return self._refuse(request, "state_missing", status=400)
        if not secrets.compare_digest(returned, bound):
            return self._refuse(request, "state_mismatch", status=400)
        pending = self._states.pop(returned, self._clock())
        if pending is None:
            return self._refuse(request, "state_unknown", status=400)
        if params.get("error"):
            error = params[
                "error"
            ]  # RFC 6749 codes are [a-z_]; anything else is not logged verbatim
            detail = error if re.fullmatch(r"[a-z_]{1,64}", error) else "unrecognised"
            return self._refuse(request, "idp_error", status=400, detail=detail)
        # RFC 9207: when the IdP names itself in the response, it must be our issuer (mix-up defence).
        if params.get("iss") is not None and params.get("iss") != self.provider.issuer:
            return self._refuse(request, "issuer_mismatch", status=400)
        code = params.get("code")
        if not code:
            return self._refuse(request, "missing_code", status=400)
        try:
            token = await self.provider.exchange_code(
                code, redirect_uri=pending.redirect_uri, code_verifier=pending.code_verifier
            )
            claims = await self.verifier.verify_id_token(token["id_token"], nonce=pending.nonce)
            if self._oidc.fetch_userinfo:
                claims = await self._with_userinfo(token, claims)
        except TokenRefused as refused:
            return self._refuse(request, refused.reason, status=400)
        decision = evaluate_login(self.provider.issuer, claims, self._oidc)
        if isinstance(decision, LoginRefusal):
            actor = User(issuer=self.provider.issuer, subject=str(claims.get("sub"))).key
            return self._refuse(
                request, decision.reason, status=403, message=decision.message, actor=actor
            )
        previous = _state(request).get("session_id")
        if previous:
            self._sessions.end(previous)  # a new id at every login, the old one dies
        session = self._sessions.start(
            decision,
            ip=client_ip(request.scope),
            user_agent=request.headers.get("user-agent"),
            idp_session_id=claims.get("sid") if isinstance(claims.get("sid"), str) else None,
            id_token=token["id_token"],
        )
        self._record(
            request,
            LOGIN_SUCCESS,
            actor=decision.key,
            outcome="admin" if decision.is_admin else "user",
        )
        if self._token_policy is not None:
            self._token_policy.logged_in(
                decision.key, decision.is_admin, client_ip(request.scope), _request_id(request)
            )
        log.info("login success", extra={"actor": decision.key, "admin": decision.is_admin})
        response = RedirectResponse(self._base_url + pending.next_path, 302)
        response.headers["Cache-Control"] = "no-store"
        self._sessions.cookie.clear_login_state(response)
        self._sessions.cookie.set(response, session.id)
        return response

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
            self._record(
                request, ACCESS_DENIED, outcome="logout_foreign_origin", target=LOGOUT_PATH
            )
            return auth_page(
                "Sign-out refused", "This sign-out request came from another site.", status=403
            )
        state = _state(request)
        session_id = state.get("session_id")
        if not session_id:
            response: Response = RedirectResponse(self._base_url + self._oidc.post_logout_path, 303)
            self._sessions.cookie.clear(response)
            return response
        async with request.form(max_files=0, max_fields=10) as form:
            sent = form.get("csrf_token")
        sent = sent if isinstance(sent, str) else request.headers.get("x-csrf-token")
        if not self._sessions.cookie.check_csrf(session_id, sent):
            self._record(request, ACCESS_DENIED, outcome="logout_bad_csrf", target=LOGOUT_PATH)
            return auth_page(
                "Sign-out not confirmed",
                "We could not verify this sign-out request. Reload the chat page and try again.",
                status=403,
            )
        session = self._sessions.store.get(session_id)
        self._sessions.end(session_id)
        user = state.get("user")
        self._record(request, LOGOUT, actor=user.key if user else None)
        response = RedirectResponse(
            await self._after_logout_url(session.id_token if session else None), 303
        )
        response.headers["Cache-Control"] = "no-store"
        self._sessions.cookie.clear(response)
        return response

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
            self._record(
                request, ACCESS_DENIED, outcome=refused.reason, target=BACKCHANNEL_LOGOUT_PATH
            )
            return JSONResponse({"error": "invalid_request"}, 400, headers=headers)
        issuer = self.provider.issuer
        sid, sub = claims.get("sid"), claims.get("sub")
        if isinstance(sid, str) and sid:
            ended = self._sessions.store.revoke_idp_session(issuer, sid)
        else:
            ended = self._sessions.store.revoke_user(User(issuer=issuer, subject=str(sub)).key)
        actor = User(issuer=issuer, subject=str(sub)).key if sub else None
        self._record(
            request,
            SESSION_REVOKED,
            actor=actor,
            outcome="backchannel_logout",
            details={"sessions": ended},
        )
        log.info("back-channel logout ended %d session(s)", ended)
        return Response(status_code=200, headers=headers)

    async def logged_out(self, request: Request) -> Response:
        return auth_page(
            "You are signed out",
            "Your chat session has ended.",
            link=(self._base_url + LOGIN_PATH, "Sign in again"),
        )

    def _refuse(
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
        self._record(request, LOGIN_REFUSED, actor=actor, outcome=reason)
        if actor is not None and self._token_policy is not None:  # a verified person was refused
            self._token_policy.refused(actor, client_ip(request.scope), _request_id(request))
        log.warning("login refused: %s", reason, extra={"reason": reason, "idp_error": detail})
        text = message or _PROTOCOL_MESSAGES.get(
            reason, f"The sign-in could not be verified ({reason}). " + _RETRY
        )
        response = auth_page(
            "Sign-in refused",
            text,
            status=status,
            link=(self._base_url + LOGIN_PATH, "Try again"),
            reference=_state(request).get("request_id"),
        )
        self._sessions.cookie.clear_login_state(response)
        return response

    def _unavailable(self, request: Request, reason: str) -> Response:
        self._record(request, LOGIN_REFUSED, outcome=reason)
        return auth_page(
            "Sign-in unavailable",
            "The company sign-in service cannot be reached right now. Please try again in a few minutes.",
            status=503,
            reference=_state(request).get("request_id"),
        )

    def _record(self, request: Request, event_type: str, **fields: Any) -> None:
        self._audit.record(
            AuditEvent(
                type=event_type,
                ip=client_ip(request.scope),
                request_id=_state(request).get("request_id"),
                **fields,
            )
        )
