"""A small OpenID provider of our own that can sign bad tokens on purpose (wrong aud/iss, other key,
alg none, HS256 keyed with the RSA public key, expired, wrong nonce, missing sub...).

It implements just enough of the code flow for our relying party: discovery, JWKS, an authorize
endpoint that approves at once, a token endpoint that checks PKCE S256, userinfo and end_session.
Tests set `idp.next_login` to choose who logs in and how the ID token is spoiled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

DROP = object()  # a claim override that removes the claim


@dataclass
class LoginPlan:
    """Who logs in next, and how their tokens are spoiled."""

    claims: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "alice-sub",
            "email": "alice@corp.example",
            "name": "Alice",
            "groups": ["staff"],
        }
    )
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    signing: str = "good"  # good | other_key | none | hs256_public | unknown_kid
    userinfo_overrides: dict[str, Any] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeIdp:
    def __init__(self, client_id: str = "company-chat") -> None:
        self.client_id = client_id
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"}, private=True)
        # Same kid, different key: a forged signature that looks like ours.
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
        self._original_key = self.key
        self.published = [self.key]
        self.issuer = ""  # set by the test once the server listens
        self.discovery_issuer: str | None = None  # when set, discovery lies about the issuer
        self.next_login = LoginPlan()
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.jwks_fetches = 0
        self.end_session_calls: list[dict[str, str]] = []

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo),
                Route("/end_session", self._end_session),
            ]
        )

    # -- token minting, also used directly by tests (back-channel logout) --

    def sign(self, claims: dict[str, Any], signing: str = "good", typ: str = "JWT") -> str:
        if signing == "none":
            header = _b64(json.dumps({"alg": "none", "typ": typ}).encode())
            return f"{header}.{_b64(json.dumps(claims).encode())}."
        if signing == "hs256_public":
            # The classic confusion attack: HMAC keyed with the RSA public key everyone can fetch.
            header = _b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": typ}).encode())
            payload = _b64(json.dumps(claims).encode())
            secret = self.key.as_pem(private=False)
            sig = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            return f"{header}.{payload}.{_b64(sig)}"
        key = {"good": self.key, "other_key": self.other_key}.get(signing)
        if signing == "unknown_kid":
            key = RSAKey.generate_key(2048, parameters={"kid": "k-unknown"}, private=True)
        assert key is not None, signing
        return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": typ}, claims, key)

    def logout_token(self, signing: str = "good", **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_hex(8),
            "sub": "alice-sub",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        }
        _apply(claims, overrides)
        return self.sign(claims, signing, typ="logout+jwt")

    def reset(self) -> None:
        """Honest behaviour again, for the next test."""
        self.key = self._original_key
        self.published = [self.key]
        self.next_login = LoginPlan()
        self.discovery_issuer = None
        self.end_session_calls.clear()

    def rotate_key(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k2", "use": "sig"}, private=True)
        self.published = [self.key]

    # -- endpoints --

    async def _discovery(self, request: Request) -> Response:
        base = self.issuer
        return JSONResponse(
            {
                "issuer": self.discovery_issuer or base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/userinfo",
                "jwks_uri": f"{base}/jwks",
                "end_session_endpoint": f"{base}/end_session",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        self.jwks_fetches += 1
        return JSONResponse(KeySet(self.published).as_dict(private=False))

    async def _authorize(self, request: Request) -> Response:
        q = request.query_params
        assert q["response_type"] == "code" and q["client_id"] == self.client_id
        assert q["code_challenge_method"] == "S256" and q.get("code_challenge")
        assert q.get("nonce") and q.get("state")
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": q["nonce"],
            "challenge": q["code_challenge"],
            "redirect_uri": q["redirect_uri"],
            "plan": self.next_login,
        }
        return RedirectResponse(
            f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302
        )

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, 400)
        verifier = str(form.get("code_verifier", ""))
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        plan: LoginPlan = grant["plan"]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **plan.claims,
        }
        _apply(claims, plan.id_token_overrides)
        access_token = secrets.token_urlsafe(16)
        info = dict(plan.claims)
        _apply(info, plan.userinfo_overrides)
        self.access_tokens[access_token] = info
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.sign(claims, plan.signing),
            }
        )

    async def _userinfo(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        info = self.access_tokens.get(token)
        if info is None:
            return JSONResponse({"error": "invalid_token"}, 401)
        return JSONResponse(info)

    async def _end_session(self, request: Request) -> Response:
        self.end_session_calls.append(dict(request.query_params))
        return JSONResponse({"ended": True})


def _apply(claims: dict[str, Any], overrides: dict[str, Any]) -> None:
    for name, value in overrides.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
