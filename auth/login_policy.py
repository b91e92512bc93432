"""Turn verified claims into a User, or a refusal, by the login policy in settings.

Evaluated at every login, from claims the IdP signed or served; nothing the browser sends can set a
role. Users are keyed by (issuer, sub), never by e-mail or display name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auth.settings import OidcSettings
from core.identity import User


@dataclass(frozen=True)
class LoginRefusal:
    reason: str  # short code for audit and logs
    message: str  # what the refused person reads


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted claim path ("realm_access.roles"); a literal dotted name wins if present."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def evaluate_login(
    issuer: str, claims: Mapping[str, Any], policy: OidcSettings
) -> User | LoginRefusal:
    """Apply allowed_groups / allowed_email_domains / admin_groups to the merged claims."""
    subject = _text(claims.get("sub"))
    if subject is None:
        return LoginRefusal("missing_sub", "The identity provider did not say who you are.")
    email = _text(claim_at(claims, policy.email_claim))
    groups = _groups(claim_at(claims, policy.groups_claim))
    if policy.allowed_groups and not set(groups) & set(policy.allowed_groups):
        return LoginRefusal(
            "group_not_allowed",
            "Your account is not in a group that may use this chat. Ask your IT service desk for access.",
        )
    if policy.allowed_email_domains:
        domain = email.rsplit("@", 1)[-1].lower() if email and "@" in email else None
        allowed = {d.lower().lstrip("@") for d in policy.allowed_email_domains}
        # An address the IdP marks unverified proves nothing about the domain.
        if domain not in allowed or claims.get("email_verified") is False:
            return LoginRefusal(
                "email_domain_not_allowed",
                "Your e-mail address is not in a domain that may use this chat.",
            )
    return User(
        issuer=issuer,
        subject=subject,
        email=email,
        name=_text(claim_at(claims, policy.name_claim)),
        groups=groups,
        is_admin=bool(set(groups) & set(policy.admin_groups)),
    )
