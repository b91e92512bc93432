"""Personal API tokens in SQL (SQLite and PostgreSQL): only a hash is stored, revoke is per owner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from core.api_tokens import TOKEN_PREFIX, looks_like_token
from core.identity import User
from store.api_tokens import ApiTokenStore, secret_hash

ALICE = User("https://idp.example", "alice", "alice@example.com", "Alice", ("staff",))
BOB = User("https://idp.example", "bob", groups=("staff",))


@pytest.fixture
def tokens(database, clock) -> ApiTokenStore:
    return ApiTokenStore(database, clock)


def test_a_new_token_is_prefixed_and_found_by_its_secret_only(tokens, clock):
    made = tokens.create(ALICE, "nightly report", clock() + timedelta(days=30), ("10.0.0.0/8",))

    assert made.secret.startswith(TOKEN_PREFIX) and looks_like_token(made.secret)
    found = tokens.find(made.secret)
    assert found is not None and found.id == made.token.id
    assert found.owner.key == ALICE.key and found.owner.via_token == "nightly report"
    assert found.owner.groups == ("staff",) and not found.owner.is_admin
    assert found.source_cidrs == ("10.0.0.0/8",)
    assert tokens.find(made.secret + "x") is None
    assert tokens.find(TOKEN_PREFIX + "A" * 43) is None


def test_the_database_holds_a_hash_never_the_secret(tokens, database, clock):
    made = tokens.create(ALICE, "ci", clock() + timedelta(days=1))

    with database.read() as session:
        dumped = " ".join(
            str(v) for row in session.execute(text("SELECT * FROM api_tokens")) for v in row
        )
    assert made.secret not in dumped
    assert secret_hash(made.secret) in dumped


def test_two_tokens_never_share_a_secret(tokens, clock):
    first = tokens.create(ALICE, "a", clock() + timedelta(days=1))
    second = tokens.create(ALICE, "b", clock() + timedelta(days=1))
    assert first.secret != second.secret and first.token.id != second.token.id


def test_an_owner_cannot_revoke_someone_elses_token(tokens, clock):
    mine = tokens.create(ALICE, "mine", clock() + timedelta(days=1)).token

    assert tokens.revoke(mine.id, by=BOB.key, owner_key=BOB.key) is None
    assert tokens.get(mine.id).revoked_at is None

    revoked = tokens.revoke(mine.id, by=ALICE.key, owner_key=ALICE.key)
    assert revoked is not None and revoked.status(clock()) == "revoked"
    assert revoked.revoked_by == ALICE.key
    assert tokens.revoke(mine.id, by=ALICE.key) is None  # already revoked


def test_status_follows_the_clock(tokens, clock):
    token = tokens.create(ALICE, "short", clock() + timedelta(days=1)).token
    assert token.status(clock()) == "active"
    clock.advance(days=1)
    assert tokens.get(token.id).status(clock()) == "expired"


def test_listing_is_per_owner_newest_first_and_everyone_for_admins(tokens, clock):
    tokens.create(ALICE, "old", clock() + timedelta(days=5))
    clock.advance(minutes=1)
    tokens.create(ALICE, "new", clock() + timedelta(days=5))
    tokens.create(BOB, "bobs", clock() + timedelta(days=5))

    assert [t.name for t in tokens.list_tokens(ALICE.key)] == ["new", "old"]
    assert {t.name for t in tokens.list_tokens()} == {"old", "new", "bobs"}


def test_mark_used_records_time_and_address(tokens, clock):
    token = tokens.create(ALICE, "ci", clock() + timedelta(days=5)).token
    clock.advance(hours=2)
    tokens.mark_used(token.id, clock(), "10.1.2.3")
    found = tokens.get(token.id)
    assert found.last_used_at == clock() and found.last_ip == "10.1.2.3"
