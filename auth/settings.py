"""Settings sections for OIDC login and sessions. Secrets come from the environment only."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class OidcSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # "embedded": an in-process development provider on loopback (refused on non-loopback binds).
    issuer: str = "embedded"
    client_id: str = "company-chat"
    client_secret: SecretStr | None = None  # CHAT_OIDC__CLIENT_SECRET


class SessionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Newest first; sign with the first, accept all (rotation). CHAT_SESSION__SECRET_KEYS='["..."]'
    secret_keys: tuple[SecretStr, ...] = ()
    idle_timeout_minutes: int = Field(default=60, ge=1)
    absolute_timeout_hours: int = Field(default=12, ge=1)
