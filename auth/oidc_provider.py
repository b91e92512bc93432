"""The OpenID provider seen through Authlib's Starlette client: discovery, authorization URL with PKCE,
code exchange, userinfo and the JWKS. Token and claim checks live in token_checks.py, in our code."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.integrations.starlette_client import OAuth

from auth.token_checks import TokenRefused

log = logging.getLogger("chat.auth")


class OidcConfigurationError(Exception):
    """The IdP cannot be used as configured; the message is one line an operator can act on."""


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    code_verifier: str


class OidcProvider:
    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        scopes: tuple[str, ...],
        timeout_seconds: float,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        client_kwargs: dict[str, Any] = {
            "scope": " ".join(scopes),
            "code_challenge_method": "S256",
            "timeout": timeout_seconds,
        }
        if client_secret is None:
            client_kwargs["token_endpoint_auth_method"] = "none"  # noqa: S105 (public client: PKCE only)
        self._client = OAuth().register(
            name="corporate",
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
        )

    async def discover(self) -> dict[str, Any]:
        """Load the discovery document once; its `issuer` must equal ours exactly (OIDC Discovery 4.3)."""
        try:
            metadata = await self._client.load_server_metadata()
        except Exception as exc:
            raise OidcConfigurationError(
                f"cannot load the OpenID discovery document for issuer {self.issuer!r}: "
                f"{type(exc).__name__}"
            ) from None
        if metadata.get("issuer") != self.issuer:
            raise OidcConfigurationError(
                f"the discovery document's issuer {metadata.get('issuer')!r} does not equal the "
                f"configured issuer {self.issuer!r}; fix [oidc] issuer (exact match, trailing slash included)"
            )
        for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not metadata.get(endpoint):
                raise OidcConfigurationError(f"the discovery document has no {endpoint}")
        return metadata

    async def end_session_endpoint(self) -> str | None:
        return (await self.discover()).get("end_session_endpoint")

    async def authorization_request(
        self, redirect_uri: str, *, state: str, nonce: str
    ) -> AuthorizationRequest:
        await self.discover()
        created = await self._client.create_authorization_url(
            redirect_uri, state=state, nonce=nonce
        )
        return AuthorizationRequest(
            url=created["url"],
            state=created["state"],
            nonce=created["nonce"],
            code_verifier=created["code_verifier"],
        )

    async def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        await self.discover()
        try:
            token = await self._client.fetch_access_token(
                redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
            )
        except Exception as exc:
            log.warning("token exchange failed: %s", type(exc).__name__)
            raise TokenRefused("token_exchange_failed") from None
        if not isinstance(token.get("id_token"), str):
            raise TokenRefused("missing_id_token")
        return dict(token)

    async def userinfo(self, token: dict[str, Any]) -> dict[str, Any]:
        metadata = await self.discover()
        if not metadata.get("userinfo_endpoint"):
            return {}
        try:
            return dict(await self._client.userinfo(token=token))
        except Exception as exc:
            log.warning("userinfo request failed: %s", type(exc).__name__)
            raise TokenRefused("userinfo_failed") from None

    def logout_url(
        self, end_session_endpoint: str, *, id_token_hint: str | None, post_logout_redirect_uri: str
    ) -> str:
        """RP-Initiated Logout 1.0: where to send the browser so the IdP ends its session too."""
        params = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        return add_params_to_uri(end_session_endpoint, params)

    async def fetch_jwks(self, force: bool) -> dict[str, Any]:
        await self.discover()
        return await self._client.fetch_jwk_set(force=force)
