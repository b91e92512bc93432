"""Per-user preferences in SQL (user_preferences): one row per person, written by an upsert.

Every query names the owner's key. A stored value that is not a supported locale (an edited row, a
language dropped in a later release) reads as no choice, so the page then follows the browser.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.dialects import postgresql, sqlite

from core.locale import chosen_locale
from store.database import Database
from store.schema import UserPreferenceRow

_DIALECTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class SqlUserPreferences:
    def __init__(
        self, database: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._db = database
        self._clock = clock
        self._insert = _DIALECTS[database.dialect]

    def language(self, owner_key: str) -> str | None:
        with self._db.read() as session:
            row = session.get(UserPreferenceRow, owner_key)
            return chosen_locale(row.locale) if row is not None else None

    def set_language(self, owner_key: str, locale: str | None) -> None:
        if locale is not None and chosen_locale(locale) is None:
            raise ValueError(f"not a supported locale: {locale[:20]!r}")
        values = {"locale": locale, "updated_at": self._clock()}
        # One statement either way, so two tabs choosing at once never collide on the key.
        statement = self._insert(UserPreferenceRow).values(user_key=owner_key, **values)
        statement = statement.on_conflict_do_update(index_elements=["user_key"], set_=values)
        with self._db.write() as session:
            session.execute(statement)
