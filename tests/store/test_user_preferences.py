"""The saved page language, on SQLite and PostgreSQL: per owner, replaced in place, cleared, and
never anything but a supported locale."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, update

from store.database import Database
from store.schema import UserPreferenceRow
from store.user_preferences import SqlUserPreferences
from tests.store.conftest import FakeClock

ALICE = "https://idp.example|alice"
BOB = "https://idp.example|bob"


@pytest.fixture
def preferences(database: Database, clock: FakeClock) -> SqlUserPreferences:
    return SqlUserPreferences(database, clock)


def rows(database: Database) -> list[UserPreferenceRow]:
    with database.read() as session:
        return list(session.scalars(select(UserPreferenceRow).order_by(UserPreferenceRow.user_key)))


def test_no_choice_until_one_is_made(preferences: SqlUserPreferences):
    assert preferences.language(ALICE) is None


def test_a_choice_is_kept_per_owner_and_replaced_in_place(
    preferences: SqlUserPreferences, database: Database, clock: FakeClock
):
    preferences.set_language(ALICE, "zh-CN")
    assert preferences.language(ALICE) == "zh-CN"
    assert preferences.language(BOB) is None  # another person's choice is theirs alone

    clock.advance(minutes=5)
    preferences.set_language(ALICE, "en")
    assert preferences.language(ALICE) == "en"
    (row,) = rows(database)
    assert row.user_key == ALICE and row.updated_at == clock.now


def test_clearing_the_choice_follows_the_browser_again(preferences: SqlUserPreferences):
    preferences.set_language(ALICE, "zh-CN")
    preferences.set_language(ALICE, None)
    assert preferences.language(ALICE) is None


@pytest.mark.parametrize("bad", ["fr", "zh", "", "zh-CN; drop table", "x" * 200])
def test_only_a_supported_locale_is_stored(preferences: SqlUserPreferences, database, bad):
    with pytest.raises(ValueError):
        preferences.set_language(ALICE, bad)
    assert rows(database) == []


def test_a_stored_value_we_do_not_support_reads_as_no_choice(
    preferences: SqlUserPreferences, database: Database
):
    preferences.set_language(ALICE, "zh-CN")
    with database.write() as session:  # an edited row, or a language a later release dropped
        session.execute(update(UserPreferenceRow).values(locale="klingon"))
    assert preferences.language(ALICE) is None


def test_a_long_owner_key_fits(preferences: SqlUserPreferences):
    key = "https://login.example.com/realms/" + "r" * 400 + "|" + "s" * 500
    preferences.set_language(key, "zh-CN")
    assert preferences.language(key) == "zh-CN"


def test_two_tabs_choosing_at_once_leave_one_row(
    preferences: SqlUserPreferences, database: Database
):
    choices = ["zh-CN", "en"] * 10
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda locale: preferences.set_language(ALICE, locale), choices))
    (row,) = rows(database)
    assert row.locale in ("zh-CN", "en")
