"""How the admin and token tabs name a user: as people know them, not by the internal key."""

from __future__ import annotations

from core.identity import User


def person(user: User) -> str:
    """Name and e-mail where the IdP gave them, else whichever it gave, else the key."""
    if user.name and user.email:
        return f"{user.name} ({user.email})"
    return user.name or user.email or user.key
