"""Settings sections for the HTTP server and the page."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, field_validator, model_validator


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=1, le=65535)
    # The URL users type; decides cookie security and OIDC redirect URIs. Never derived from headers.
    public_url: str = ""  # "" = http://<host>:<port>, fine for local use; set it behind a proxy
    # Sub-path when served behind a proxy under a prefix ("" or "/chat"); never taken from X-Forwarded-*.
    root_path: str = ""
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _default_public_url(self) -> ServerSettings:
        if not self.public_url:
            host = f"[{self.host}]" if ":" in self.host else self.host
            object.__setattr__(self, "public_url", f"http://{host}:{self.port}")
        return self

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
