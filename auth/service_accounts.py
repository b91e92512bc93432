"""Service accounts: access tokens the IdP issues by the client-credentials grant, as bearer tokens.

Signature, key rotation and the algorithm allowlist come from token_checks.TokenVerifier; the claims
of an access token differ from an ID token's (aud is our API, azp is the calling client), so they are
checked here: iss, aud == the configured API audience, exp / nbf / iat, and no `nonce` (an ID token).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from starlette.requests import HTTPConnection

from auth.api_settings import ApiSettings
from auth.bearer_tokens import CredentialRefused, RefusalRecorder, bearer_credential, looks_like_jwt
from auth.login_policy import claim_at
from auth.oidc_provider import OidcProvider
from auth.settings import OidcSettings
from auth.token_checks import JwksFetcher, TokenRefused, TokenVerifier
from core.audit import AuditSink
from core.identity import User

_MESSAGES = {
    "expired": "This access token has expired. Request a new one from the identity provider.",
    "audience_mismatch": "This access token is not for this API (wrong audience).",
    "client_not_allowed": "This service account may not use the chat API.",
}
_DEFAULT_MESSAGE = "This access token is not valid for this service."


class AccessTokenVerifier(TokenVerifier):
    """Checks a client-credentials access token; `audience` is our API's identifier at the IdP."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str],
        leeway_seconds: int,
        fetch_jwks: JwksFetcher,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(
            issuer=issuer,
            client_id=audience,
            algorithms=algorithms,
            leeway_seconds=leeway_seconds,
            fetch_jwks=fetch_jwks,
            clock=clock,
        )
        self._audience = audience

    async def verify_access_token(self, token: str) -> dict[str, Any]:
        """Claims of a valid access token for our API, or TokenRefused."""
        claims = await self._verified_claims(token)
        if claims.get("iss") != self._issuer:
            raise TokenRefused("issuer_mismatch")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self._audience not in audiences:
            raise TokenRefused("audience_mismatch")
        if "nonce" in claims:
            raise TokenRefused("id_token_not_accepted")
        now = self._clock().timestamp()
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        if not _is_number(exp):
            raise TokenRefused("missing_exp")
        if now >= exp + self._leeway:
            raise TokenRefused("expired")
        if nbf is not None and (not _is_number(nbf) or nbf > now + self._leeway):
            raise TokenRefused("not_yet_valid")
        if iat is not None and (not _is_number(iat) or iat > now + self._leeway):
            raise TokenRefused("issued_in_future")
        return claims


class ServiceAccountAuthenticator:
    """A RequestAuthenticator for IdP-issued JWTs; identity is `sub` (else client_id / azp)."""

    def __init__(
        self,
        verifier: AccessTokenVerifier,
        *,
        issuer: str,
        groups_claim: str,
        admin_groups: Sequence[str],
        allowed_clients: Sequence[str],
        audit: AuditSink,
        clock: Callable[[], datetime],
    ) -> None:
        self._verifier = verifier
        self._issuer = issuer
        self._groups_claim = groups_claim
        self._admin_groups = frozenset(admin_groups)
        self._allowed_clients = frozenset(allowed_clients)
        self._refusals = RefusalRecorder(audit, clock)

    async def authenticate(self, connection: HTTPConnection) -> User | None:
        credential = bearer_credential(connection)
        if credential is None or not looks_like_jwt(credential):
            return None
        try:
            claims = await self._verifier.verify_access_token(credential)
            return self._user(claims)
        except TokenRefused as refused:
            await self._refusals.record(connection.scope, f"service:{refused.reason}")
            message = _MESSAGES.get(refused.reason, _DEFAULT_MESSAGE)
            status = 403 if refused.reason == "client_not_allowed" else 401
            raise CredentialRefused(refused.reason, message, status) from None

    def _user(self, claims: dict[str, Any]) -> User:
        client = _text(claims.get("client_id")) or _text(claims.get("azp"))
        subject = _text(claims.get("sub")) or client
        if subject is None:
            raise TokenRefused("missing_sub")
        if self._allowed_clients and (client or subject) not in self._allowed_clients:
            raise TokenRefused("client_not_allowed")
        groups = _groups(claim_at(claims, self._groups_claim))
        return User(
            issuer=self._issuer,
            subject=subject,
            name=f"service account {client or subject}",
            groups=groups,
            is_admin=bool(self._admin_groups & set(groups)),
            via_token=f"service:{client or subject}"[:128],
        )


def service_account_authenticator(
    api: ApiSettings, oidc: OidcSettings, audit: AuditSink, clock: Callable[[], datetime]
) -> ServiceAccountAuthenticator | None:
    """Built from settings; None when [api] service_audience is unset. Fetches nothing until used."""
    if api.service_audience is None:
        return None
    if oidc.embedded:
        raise ValueError("[api] service_audience needs a real [oidc] issuer, not the embedded one")
    if api.service_audience == oidc.client_id:
        raise ValueError("[api] service_audience must differ from [oidc] client_id (ID tokens)")
    secret = oidc.client_secret.get_secret_value() if oidc.client_secret else None
    provider = OidcProvider(
        issuer=oidc.issuer,
        client_id=oidc.client_id,
        client_secret=secret,
        scopes=oidc.scopes,
        timeout_seconds=oidc.http_timeout_seconds,
    )
    verifier = AccessTokenVerifier(
        issuer=oidc.issuer,
        audience=api.service_audience,
        algorithms=api.service_algorithms,
        leeway_seconds=oidc.clock_skew_seconds,
        fetch_jwks=provider.fetch_jwks,
        clock=clock,
    )
    return ServiceAccountAuthenticator(
        verifier,
        issuer=oidc.issuer,
        groups_claim=oidc.groups_claim,
        admin_groups=oidc.admin_groups,
        allowed_clients=api.service_allowed_clients,
        audit=audit,
        clock=clock,
    )


def _groups(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
