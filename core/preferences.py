"""What a person chose for themselves, kept with their account (store.user_preferences implements it).

Keyed by User.key like everything a person owns, so a choice follows them to any browser or device.
"""

from __future__ import annotations

from typing import Protocol


class UserPreferences(Protocol):
    def language(self, owner_key: str) -> str | None:
        """The page language `owner_key` chose (a supported locale), or None to follow the browser."""
        ...

    def set_language(self, owner_key: str, locale: str | None) -> None:
        """Keep `locale` (a supported locale; None: follow the browser again) as their choice."""
        ...
