"""The in-process owner store for Gradio session hashes and event ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from auth.gradio_binding import MemorySessionHashBindings

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_a_session_hash_belongs_to_its_first_user_until_it_expires():
    bindings = MemorySessionHashBindings(HOUR)
    assert bindings.claim("tab", "alice", NOW)
    assert bindings.claim("tab", "alice", NOW + timedelta(minutes=50))  # use slides the expiry
    assert not bindings.claim("tab", "bob", NOW + timedelta(minutes=100))
    assert bindings.claim("tab", "bob", NOW + timedelta(minutes=200))


def test_an_event_has_the_owner_it_was_handed_to_and_unknown_events_have_none():
    bindings = MemorySessionHashBindings(HOUR)
    assert bindings.event_owner("e1", NOW) is None
    bindings.bind_event("e1", "alice", NOW)
    assert bindings.event_owner("e1", NOW) == "alice"
    assert bindings.claim("e1", "bob", NOW)  # a session hash of the same text is another thing
    assert bindings.event_owner("e1", NOW) == "alice"
    assert bindings.event_owner("e1", NOW + 2 * HOUR) is None


def test_when_full_of_live_owners_new_hashes_are_refused_rather_than_owners_forgotten():
    bindings = MemorySessionHashBindings(HOUR, max_entries=2)
    assert bindings.claim("a", "alice", NOW) and bindings.claim("b", "alice", NOW)
    assert not bindings.claim("c", "bob", NOW)
    assert not bindings.claim("a", "bob", NOW)
    assert bindings.claim("c", "bob", NOW + 2 * HOUR)  # expired owners are swept first
