"""Refuse to start with auth settings that would be unsafe, with one line that says what to fix."""

from __future__ import annotations

from pydantic import SecretStr

from auth.embedded_idp import is_loopback_host
from auth.settings import OidcSettings, SessionSettings, Site

MIN_CLIENT_SECRET_CHARS = 16
MIN_SESSION_KEY_CHARS = 32
# Words from guides and templates (6+ letters, so a random key hits one about never).
_PLACEHOLDERS = (
    "changeme",
    "change-me",
    "change_me",
    "secret",
    "a_very_secret_key",
    "password",
    "placeholder",
    "example",
    "your-",
    "your_",
    "xxxxxx",
    "replace",
    "dummy",
    "default",
)


def _weak(secret: SecretStr | None, minimum: int) -> str | None:
    """Why the secret is unusable, or None if it looks like a real random value."""
    if secret is None or not secret.get_secret_value():
        return "missing"
    value = secret.get_secret_value()
    if len(value) < minimum:
        return f"shorter than {minimum} characters"
    lowered = value.lower()
    if any(word in lowered for word in _PLACEHOLDERS) or len(set(value)) < 8:
        return "a placeholder or low-entropy value"
    return None


def validate_auth_settings(oidc: OidcSettings, session: SessionSettings, site: Site) -> None:
    """Raise ValueError (one line) if these auth settings must not run in this environment."""
    production = site.production
    if oidc.embedded:
        if production:
            raise ValueError(
                'oidc.issuer = "embedded" is a development login; set CHAT_OIDC__ISSUER to your IdP in production'
            )
        if not is_loopback_host(site.host):
            raise ValueError(
                f'oidc.issuer = "embedded" refuses to run on non-loopback server.host {site.host!r}; '
                "bind 127.0.0.1 or configure a real IdP"
            )
        return
    if not production:
        return
    if not oidc.issuer.startswith("https://"):
        raise ValueError("oidc.issuer must be an https:// URL in production")
    if not site.https:
        raise ValueError(
            "server.public_url must be https:// in production (session cookies would travel in clear)"
        )
    if not oidc.client_id.strip():
        raise ValueError("oidc.client_id is empty; set CHAT_OIDC__CLIENT_ID")
    problem = _weak(oidc.client_secret, MIN_CLIENT_SECRET_CHARS)
    if problem:
        raise ValueError(f"oidc.client_secret is {problem}; set CHAT_OIDC__CLIENT_SECRET")
    if not session.secret_keys:
        raise ValueError(
            "session.secret_keys is missing; set CHAT_SESSION__SECRET_KEYS='[\"<random 32+ chars>\"]' "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    for index, key in enumerate(session.secret_keys):
        problem = _weak(key, MIN_SESSION_KEY_CHARS)
        if problem:
            raise ValueError(f"session.secret_keys[{index}] is {problem}; use a random value")
