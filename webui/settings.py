"""Settings sections for the HTTP server and the page."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, field_validator


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=1, le=65535)
    # The URL users type; decides cookie security and OIDC redirect URIs. Never derived from headers.
    public_url: str = "http://127.0.0.1:7860"
    # Sub-path when served behind a proxy under a prefix ("" or "/chat"); never taken from X-Forwarded-*.
    root_path: str = ""
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("root_path")
    @classmethod
    def _root_path(cls, value: str) -> str:
        if value and (not value.startswith("/") or value.endswith("/")):
            raise ValueError('must be "" or a path like "/chat" (leading slash, no trailing slash)')
        return value

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")


class UISettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = "Company Chat"
