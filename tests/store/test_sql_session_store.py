"""SQL sessions: round-trip, revocation in all its forms, expiry filtering, and ids a database
reader cannot replay."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import text

from core.identity import User
from core.sessions import Session
from store.database import create_database
from store.sql_session_store import SqlSessionStore

ISSUER = "https://idp.example"
ALICE = User(ISSUER, "alice", "alice@corp.example", "Alice 张", ("staff", "chat-admins"), True)
BOB = User(ISSUER, "bob", groups=("staff",))


@pytest.fixture
def store(database, clock):
    return SqlSessionStore(database, clock)


def _session(clock, user=ALICE, sid=None, idp_sid=None, idle_minutes=60, hours=12) -> Session:
    return Session(
        id=secrets.token_urlsafe(32),
        user=user,
        created_at=clock.now,
        last_seen=clock.now,
        idle_expires_at=clock.now + timedelta(minutes=idle_minutes),
        absolute_expires_at=clock.now + timedelta(hours=hours),
        ip="10.0.0.7",
        user_agent="Mozilla/5.0",
        idp_session_id=idp_sid,
        id_token="eyJ.header.sig",
    )


def test_round_trip_keeps_every_field(store, clock):
    session = _session(clock, idp_sid="sid-1")
    store.create(session)
    assert store.get(session.id) == session


def test_a_database_reader_cannot_use_what_is_stored(store, database, clock, database_url):
    session = _session(clock)
    store.create(session)

    with database.read() as db:
        stored = db.execute(text("SELECT id_hash FROM sessions")).scalar_one()

    assert session.id not in stored
    assert store.get(stored) is None
    assert store.get("sha256:" + stored) is None  # the admin handle does not open a session


def test_another_replica_sees_the_session_and_its_revocation(store, clock, database_url):
    session = _session(clock)
    store.create(session)
    other_replica = create_database(database_url)
    try:
        other = SqlSessionStore(other_replica)
        assert other.get(session.id).user == ALICE
        assert store.revoke(session.id)
        assert other.get(session.id) is None
    finally:
        other_replica.dispose()


def test_touch_moves_the_idle_expiry(store, clock):
    session = _session(clock)
    store.create(session)
    clock.advance(minutes=30)
    store.touch(session.id, clock.now, clock.now + timedelta(minutes=60))

    loaded = store.get(session.id)
    assert loaded.last_seen == clock.now
    assert loaded.idle_expires_at == clock.now + timedelta(minutes=60)


def test_revoke_ends_one_session_once(store, clock):
    mine, other = _session(clock), _session(clock)
    store.create(mine)
    store.create(other)

    assert store.revoke(mine.id) is True
    assert store.revoke(mine.id) is False
    assert store.get(mine.id) is None
    assert store.get(other.id) is not None


def test_revoke_user_ends_all_of_that_users_sessions(store, clock):
    for _ in range(2):
        store.create(_session(clock, ALICE))
    bobs = _session(clock, BOB)
    store.create(bobs)

    assert store.revoke_user(ALICE.key) == 2
    assert [s.user for s in store.list_active(clock.now)] == [BOB]


def test_revoke_idp_session_matches_issuer_and_sid(store, clock):
    target = _session(clock, ALICE, idp_sid="sid-1")
    same_sid_other_issuer = _session(clock, User("https://other.example", "x"), idp_sid="sid-1")
    store.create(target)
    store.create(same_sid_other_issuer)

    assert store.revoke_idp_session(ISSUER, "sid-1") == 1
    assert store.get(target.id) is None
    assert store.get(same_sid_other_issuer.id) is not None


def test_list_active_filters_expired_sessions_and_gives_revocable_handles(store, clock):
    idle = _session(clock, ALICE, idle_minutes=10)
    long_lived = _session(clock, ALICE, idle_minutes=600, hours=1)
    clock.advance(minutes=1)
    fresh = _session(clock, BOB, idle_minutes=600)
    for session in (idle, long_lived, fresh):
        store.create(session)

    clock.advance(minutes=30)  # past the idle limit of the first
    listed = store.list_active(clock.now)
    assert [s.user for s in listed] == [BOB, ALICE]  # newest first
    assert [s.user for s in store.list_active(clock.now, user_key=BOB.key)] == [BOB]

    clock.advance(hours=1)  # past the absolute limit of the second
    assert [s.user for s in store.list_active(clock.now)] == [BOB]

    # An admin revokes from the list; the user's cookie id stops working.
    [handle] = [s.id for s in store.list_active(clock.now)]
    assert handle != fresh.id
    assert store.revoke(handle)
    assert store.get(fresh.id) is None


def test_purge_expired_removes_only_expired_rows(store, clock):
    stale, live = _session(clock, idle_minutes=5), _session(clock)
    store.create(stale)
    store.create(live)
    clock.advance(minutes=10)

    assert store.purge_expired() == 1
    assert store.get(stale.id) is None and store.get(live.id) is not None
