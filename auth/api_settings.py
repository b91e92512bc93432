"""Settings section for script access ([api]): personal API tokens and IdP service accounts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from auth.settings import ALLOWED_SIGNING_ALGORITHMS


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Personal tokens: every token expires; users pick a lifetime up to token_max_days.
    token_max_days: int = Field(default=90, ge=1, le=3650)
    token_default_days: int = Field(default=30, ge=1, le=3650)
    max_tokens_per_user: int = Field(default=20, ge=1, le=1000)
    # "last used" and "last IP" are written at most this often per token (not on every request).
    last_used_interval_seconds: int = Field(default=60, ge=0, le=3600)
    # Service accounts (client-credentials JWTs from [oidc] issuer); None = not accepted.
    service_audience: str | None = None
    service_algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")
    # Client ids (the token's client_id / azp) allowed in; empty = any the IdP issues our audience to.
    service_allowed_clients: tuple[str, ...] = ()

    @field_validator("service_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = [alg for alg in value if alg not in ALLOWED_SIGNING_ALGORITHMS]
        if refused or not value:
            raise ValueError(
                f"only asymmetric algorithms are accepted; refused: {refused or 'none'}"
            )
        return value

    @field_validator("service_audience")
    @classmethod
    def _audience(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("leave unset to turn service accounts off, or name the API audience")
        return value

    @property
    def default_days(self) -> int:
        return min(self.token_default_days, self.token_max_days)
