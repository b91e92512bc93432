"""Settings sections for OIDC login and sessions. Secrets come from the environment only."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

# Asymmetric algorithms only: "none" and HMAC (which a public key could be abused to forge) are refused.
ALLOWED_SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OidcSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # "embedded": an in-process development provider on loopback (refused on non-loopback binds).
    issuer: str = "embedded"
    client_id: str = "company-chat"
    client_secret: SecretStr | None = None  # CHAT_OIDC__CLIENT_SECRET
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    id_token_algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")
    clock_skew_seconds: int = Field(default=60, ge=0, le=600)
    fetch_userinfo: bool = True  # merge userinfo claims (its sub must equal the ID token's)
    # Claim names; dots descend into objects, e.g. "realm_access.roles" for Keycloak.
    email_claim: str = "email"
    name_claim: str = "name"
    groups_claim: str = "groups"
    # Login policy, re-evaluated at every login. Empty = anyone the IdP authenticates.
    allowed_groups: tuple[str, ...] = ()
    allowed_email_domains: tuple[str, ...] = ()
    admin_groups: tuple[str, ...] = ("chat-admins",)
    login_state_ttl_seconds: int = Field(default=600, ge=30, le=3600)
    logout_token_max_age_seconds: int = Field(default=300, ge=30, le=3600)
    post_logout_path: str = "/logged-out"  # register public_url + root_path + this at the IdP
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Fixed by default: the dev issuer URL (and so every demo user's key and history) includes it.
    embedded_port: int = Field(default=7871, ge=0, le=65535)

    @field_validator("id_token_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = [alg for alg in value if alg not in ALLOWED_SIGNING_ALGORITHMS]
        if refused or not value:
            raise ValueError(
                f"only asymmetric algorithms are accepted ({', '.join(sorted(ALLOWED_SIGNING_ALGORITHMS))}); "
                f"refused: {refused or 'empty list'}"
            )
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("https://", "http://")):
            raise ValueError('must be "embedded" or the IdP\'s issuer URL')
        return value

    @field_validator("post_logout_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith("//"):
            raise ValueError('must be a path like "/logged-out"')
        return value

    @property
    def embedded(self) -> bool:
        return self.issuer == "embedded"


class SessionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Newest first; sign with the first, accept all (rotation). CHAT_SESSION__SECRET_KEYS='["..."]'
    secret_keys: tuple[SecretStr, ...] = ()
    idle_timeout_minutes: int = Field(default=60, ge=1)
    absolute_timeout_hours: int = Field(default=12, ge=1)
    cookie_name: str = Field(default="chat_session", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # How long a Gradio session hash stays bound to the user who first used it.
    gradio_binding_ttl_hours: int = Field(default=24, ge=1)


@dataclass(frozen=True)
class Site:
    """What auth needs to know of the deployment, taken from [server] and `environment` by the root."""

    base_url: str  # public_url + root_path: where the IdP sends the browser back
    host: str  # the bind address: the development login refuses anything but loopback
    https: bool  # session cookies are Secure
    production: bool
