"""Explicit checks of the IdP's JWTs (ID tokens and back-channel logout tokens).

joserfc verifies the signature against the IdP's JWKS with an algorithm allowlist we pass in (never
the IdP's own list, never "none" or HMAC). Every claim check is written out here rather than left to a
library default: Authlib, for one, does not require `aud` to contain our client id.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    DecodeError,
    InvalidKeyIdError,
    InvalidKeyTypeError,
    JoseError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet

from core.blocking_io import run_blocking

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

JwksFetcher = Callable[[bool], Awaitable[dict[str, Any]]]  # force re-fetch -> JWKS document


class TokenRefused(Exception):
    """A token failed a check; `reason` is a short code for logs, audit records and the refusal page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OneTimeIds(Protocol):
    """Ids (a logout token's `jti`) that may be used once; shared across replicas in production."""

    def first_use(self, value: str, ttl_seconds: int) -> bool:
        """True the first time `value` is seen within `ttl_seconds`; False for a replay."""
        ...


class MemoryOneTimeIds:
    """One process's memory of used ids; enough for a single replica."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._expiry: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def first_use(self, value: str, ttl_seconds: int) -> bool:
        now = self._clock()
        with self._lock:
            self._expiry = {k: v for k, v in self._expiry.items() if v > now}
            if value in self._expiry:
                return False
            self._expiry[value] = now + timedelta(seconds=ttl_seconds)
            return True


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        algorithms: Sequence[str],
        leeway_seconds: int,
        fetch_jwks: JwksFetcher,
        clock: Callable[[], datetime],
        logout_token_max_age_seconds: int = 300,
        refetch_interval_seconds: int = 30,
        seen_ids: OneTimeIds | None = None,
    ) -> None:
        self._issuer = issuer
        self._client_id = client_id
        self._algorithms = list(algorithms)
        self._leeway = leeway_seconds
        self._fetch_jwks = fetch_jwks
        self._clock = clock
        self._logout_max_age = logout_token_max_age_seconds
        # Unknown `kid`s can be sent by anyone to the public logout endpoint: re-fetch at most this often.
        self._refetch_interval = timedelta(seconds=refetch_interval_seconds)
        self._last_refetch: datetime | None = None
        self._seen_ids = seen_ids or MemoryOneTimeIds(clock)
        self._lock = threading.Lock()

    async def verify_id_token(self, token: str, *, nonce: str) -> dict[str, Any]:
        """Claims of a valid ID token for us, issued for this login (nonce), or TokenRefused."""
        claims = await self._verified_claims(token)
        self._check_common(claims)
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
            raise TokenRefused("nonce_mismatch")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenRefused("missing_sub")
        return claims

    async def verify_logout_token(self, token: str) -> dict[str, Any]:
        """Claims of a valid Back-Channel Logout 1.0 token, or TokenRefused."""
        claims = await self._verified_claims(token)
        self._check_common(claims, exp_required=False)
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(
            events.get(BACKCHANNEL_LOGOUT_EVENT), dict
        ):
            raise TokenRefused("missing_logout_event")
        if "nonce" in claims:
            raise TokenRefused("nonce_in_logout_token")  # an ID token replayed as a logout token
        if not claims.get("sid") and not claims.get("sub"):
            raise TokenRefused("missing_sid_and_sub")
        if claims["iat"] < (self._clock() - timedelta(seconds=self._logout_max_age)).timestamp():
            raise TokenRefused("stale_logout_token")
        await self._refuse_replayed_jti(claims)
        return claims

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token or len(token) > 16_384:
            raise TokenRefused("malformed")
        keys = await self._key_set(force=False)
        try:
            try:
                return dict(jwt.decode(token, keys, algorithms=self._algorithms).claims)
            except InvalidKeyIdError:
                if not self._may_refetch():
                    raise
                # The IdP may have rotated its keys since we fetched them: one re-fetch.
                keys = await self._key_set(force=True)
                return dict(jwt.decode(token, keys, algorithms=self._algorithms).claims)
        except InvalidKeyIdError:
            raise TokenRefused("unknown_key") from None
        except BadSignatureError:
            raise TokenRefused("bad_signature") from None
        except (UnsupportedAlgorithmError, InvalidKeyTypeError):
            raise TokenRefused("algorithm_not_allowed") from None
        except (DecodeError, ValueError, TypeError):
            raise TokenRefused("malformed") from None
        except JoseError:
            raise TokenRefused("invalid_token") from None

    async def _key_set(self, *, force: bool) -> KeySet:
        try:
            document = await self._fetch_jwks(force)
            return KeySet.import_key_set(document)
        except Exception:  # the IdP is down or sent garbage: a refusal, not a 500
            raise TokenRefused("jwks_unavailable") from None

    def _may_refetch(self) -> bool:
        now = self._clock()
        with self._lock:
            if self._last_refetch is not None and now - self._last_refetch < self._refetch_interval:
                return False
            self._last_refetch = now
            return True

    def _check_common(self, claims: dict[str, Any], *, exp_required: bool = True) -> None:
        if claims.get("iss") != self._issuer:
            raise TokenRefused("issuer_mismatch")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self._client_id not in audiences:
            raise TokenRefused("audience_mismatch")
        azp = claims.get("azp")
        # OIDC Core 3.1.3.7: several audiences need azp, and azp, when present, must be us.
        if (len(audiences) > 1 and azp is None) or (azp is not None and azp != self._client_id):
            raise TokenRefused("authorized_party_mismatch")
        now = self._clock().timestamp()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _is_number(iat):
            raise TokenRefused("missing_iat")
        if iat > now + self._leeway:
            raise TokenRefused("issued_in_future")
        if exp is None and not exp_required:
            return
        if not _is_number(exp):
            raise TokenRefused("missing_exp")
        if now >= exp + self._leeway:
            raise TokenRefused("expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf > now + self._leeway):
            raise TokenRefused("not_yet_valid")

    async def _refuse_replayed_jti(self, claims: dict[str, Any]) -> None:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise TokenRefused("missing_jti")
        # Remembered as long as a token carrying it could still pass the age check.
        ttl = self._logout_max_age + 2 * self._leeway
        if not await run_blocking(self._seen_ids.first_use, jti, ttl):
            raise TokenRefused("replayed_logout_token")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
