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
    # A connection that has not sent a whole request's headers this long after connecting (or after
    # its previous response) is closed: slow clients cannot hold sockets (guards/connection_limits.py).
    request_header_timeout_seconds: float = Field(default=15.0, ge=1, le=300)
    # Open connections per source address; trusted_proxies are exempt. A browser holds at most 6
    # per host (event streams included), so 64 lets ~10 browsers share one NAT address.
    max_connections_per_address: int = Field(default=64, ge=8, le=65536)

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
    # Gradio runs an event (a chat turn, a page load, a history refresh) in one of its workers;
    # a chat turn holds one from the moment the engine admits it until its reply ends, waiting in
    # the engine's line included. The page gets [generation] max_concurrent + max_queue workers
    # for chat turns plus these for everything else, so loads and refreshes never queue behind
    # waiting turns (Gradio's default is 40 workers in all).
    handler_workers: int = Field(default=32, ge=1, le=1000)
    # Events waiting for a worker; past it a caller gets Gradio's 503 "Queue is full". A waiting
    # event is its request's data only (a few KB).
    queue_size: int = Field(default=1000, ge=1, le=100_000)
