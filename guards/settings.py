"""Settings sections for network access rules and abuse limits ([access] and [limits])."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, field_validator

LOOPBACK = ("127.0.0.0/8", "::1/128")
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


class AccessSettings(BaseModel):
    """Source-address allowlists per route group; an empty list adds no restriction for its group."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    allow: tuple[IPvAnyNetwork, ...] = LOOPBACK + PRIVATE  # type: ignore[assignment]
    admin_allow: tuple[IPvAnyNetwork, ...] = LOOPBACK + PRIVATE  # type: ignore[assignment]
    api_allow: tuple[IPvAnyNetwork, ...] = LOOPBACK + PRIVATE  # type: ignore[assignment]
    metrics_allow: tuple[IPvAnyNetwork, ...] = LOOPBACK  # type: ignore[assignment]
    # Path prefixes (below root_path) served only to admin_allow; admin handlers re-check inside.
    admin_paths: tuple[str, ...] = ("/admin",)
    # Extra origins (scheme://host[:port]) allowed for CORS and state-changing requests;
    # the public_url's own origin is always allowed. Empty = same-origin only.
    allow_origins: tuple[str, ...] = ()

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalise_origin_setting(v) for v in values)

    @field_validator("admin_paths")
    @classmethod
    def _paths(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not value.startswith("/") or value.endswith("/"):
                raise ValueError(f"{value!r}: must look like /admin (leading slash, no trailing)")
        return values


class LimitSettings(BaseModel):
    """Rate limits (the `limits` library), request size, and the per-user generation lock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # "memory://" for one process; "redis://host:6379/0" shares counters across replicas.
    storage: str = "memory://"
    key_prefix: str = "chat"  # namespaces Redis keys when several apps share one Redis
    chat_per_minute: int = Field(default=10, ge=1)
    tokens_per_day: int = Field(default=200_000, ge=1)
    login_per_minute_per_ip: int = Field(default=20, ge=1)
    # Requests the auth gate did not identify (anonymous, refused credentials, public routes).
    unauthenticated_per_minute_per_ip: int = Field(default=120, ge=1)
    # Unknown, expired or revoked Bearer tokens; past it, Bearer requests get 429 before any lookup.
    failed_tokens_per_minute_per_ip: int = Field(default=10, ge=1)
    # Per user, on the Gradio queue: every join (a page load makes a few, a message one or two),
    # and every new browser tab (session hash), so one user cannot evict or starve others' results.
    gradio_joins_per_minute: int = Field(default=120, ge=1)
    gradio_sessions_per_hour: int = Field(default=120, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # A crashed replica's lock frees itself after this long; longer than any generation.
    generation_lock_seconds: int = Field(default=900, ge=10)

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError('must be "memory://" or a redis:// / rediss:// URL')
        return value


def normalise_origin_setting(value: str) -> str:
    """Return `scheme://host[:port]` lower-cased; refuse wildcards, "null" and URLs with paths."""
    if value in ("*", "null"):
        raise ValueError(f"{value!r} is never an acceptable origin")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r}: must be an origin like https://chat.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r}: an origin has no path, query or credentials")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    port = "" if parts.port in (None, default_port) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"
