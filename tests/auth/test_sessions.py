"""Server-side sessions seen from the browser: tampered and foreign cookies, key rotation, idle and
absolute expiry on a travelling clock, and the https cookie attributes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from starlette.responses import Response

from core.audit import MemoryAuditSink
from core.sessions import MemorySessionStore
from tests.auth.conftest import ALICE, SESSION_KEY, build_app, make_settings, plant_session


def test_planted_session_reaches_the_protected_route(chat_app):
    chat = chat_app()
    with chat.client() as client:
        plant_session(chat, client, ALICE)
        assert client.get("/whoami").json()["key"] == ALICE.key


def test_tampered_cookie_is_refused(chat_app):
    chat = chat_app()
    with chat.client() as client:
        plant_session(chat, client, ALICE)
        value = client.cookies[chat.cookie_name()]
        session_id, signature = value.rsplit(".", 1)
        for forged in (
            session_id[:-1] + ("A" if session_id[-1] != "A" else "B") + "." + signature,
            session_id + "." + signature[:-2] + "xx",
            session_id,  # unsigned id
            "",
        ):
            client.cookies.set(chat.cookie_name(), forged)
            assert client.get("/whoami").status_code == 401, forged


def test_cookie_signed_with_an_unknown_key_is_refused(chat_app):
    chat = chat_app()
    other = chat_app(session={"secret_keys": ["another-deployment-key-0123456789abcdefgh"]})
    with other.client() as client:
        session_id = plant_session(other, client, ALICE)
    # The same id exists in our store, but the cookie was signed elsewhere.
    chat.store.create(other.store.get(session_id))
    with chat.client(
        cookies={chat.cookie_name(): other.auth.sessions.cookie.sign(session_id)}
    ) as c:
        assert c.get("/whoami").status_code == 401


def test_key_rotation_accepts_the_older_key_and_signs_with_the_newest(chat_app):
    old = chat_app()
    with old.client() as client:
        session_id = plant_session(old, client, ALICE)
        old_cookie = client.cookies[old.cookie_name()]
    new_key = "rotated-newest-key-0123456789abcdefghijklmnop"
    rotated = chat_app(session={"secret_keys": [new_key, SESSION_KEY]})
    rotated.store.create(old.store.get(session_id))
    with rotated.client(cookies={rotated.cookie_name(): old_cookie}) as client:
        assert client.get("/whoami").status_code == 200  # issued before the rotation
    assert rotated.auth.sessions.cookie.sign(session_id) != old_cookie  # newest key signs


def test_idle_session_expires(chat_app):
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=True) as traveller:
        chat = chat_app(session={"idle_timeout_minutes": 30})
        with chat.client() as client:
            plant_session(chat, client, ALICE)
            traveller.shift(timedelta(minutes=25))
            assert client.get("/whoami").status_code == 200  # activity slides the idle window
            traveller.shift(timedelta(minutes=25))
            assert client.get("/whoami").status_code == 200
            traveller.shift(timedelta(minutes=31))
            assert client.get("/whoami").status_code == 401
    assert chat.store.list_active(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)) == []  # removed


def test_absolute_lifetime_ends_even_an_active_session(chat_app):
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=True) as traveller:
        chat = chat_app(session={"idle_timeout_minutes": 60, "absolute_timeout_hours": 2})
        with chat.client() as client:
            plant_session(chat, client, ALICE)
            for _ in range(3):
                traveller.shift(timedelta(minutes=39))
                assert client.get("/whoami").status_code == 200
            traveller.shift(timedelta(minutes=5))  # 2 h 02 after login, last seen 5 min ago
            assert client.get("/whoami").status_code == 401


def test_https_public_url_gives_a_host_prefixed_secure_cookie():
    settings = make_settings(
        443, "https://idp.example", server={"public_url": "https://chat.example"}
    )
    _, auth = build_app(settings, MemoryAuditSink(), MemorySessionStore())
    cookie = auth.sessions.cookie
    assert cookie.name == "__Host-chat_session" and cookie.login_name.startswith("__Host-")
    sent = Response()
    cookie.set(sent, "some-session-id")
    header = sent.headers["set-cookie"]
    assert header.startswith("__Host-chat_session=")
    for attribute in ("Secure", "HttpOnly", "Path=/", "SameSite=lax"):
        assert attribute.lower() in header.lower()
    assert "domain=" not in header.lower()
