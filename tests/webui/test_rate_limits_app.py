"""Per-address limits in the whole app (real auth gate, real login, real token store), as an attacker
and a colleague behind the same address meet them.

The app trusts 127.0.0.1 as its reverse proxy here, so each client picks its address with
X-Forwarded-For, as a proxy in front of the app would write it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core.audit import RATE_LIMITED
from core.identity import User

PROXIED = {"trusted_proxies": ["127.0.0.1/32"]}
GATED = "/gradio_api/info"  # needs a session or a token; answers scripts with JSON


def from_address(chat, address: str, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=chat.url,
        timeout=30,
        headers={"X-Forwarded-For": address, "Accept": "application/json", **headers},
    )


def rate_limited(chat, limit: str) -> list:
    return [
        r for r in chat.services.audit_log.query(type=RATE_LIMITED).records if r.outcome == limit
    ]


@pytest.fixture
def chat_limited(chat_server):
    return chat_server(server=PROXIED, limits={"unauthenticated_per_minute_per_ip": 4})


def test_anonymous_requests_get_401_until_the_address_limit_then_429(chat_limited):
    chat = chat_limited
    attacker = from_address(chat, "10.0.0.66")
    assert [attacker.get(GATED).status_code for _ in range(4)] == [401] * 4
    refused = attacker.get(GATED)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "Too many requests" in refused.json()["detail"]
    # A made-up session cookie does not get past the limit, and neither does a browser.
    forged = attacker.get(GATED, headers={"Cookie": f"{chat.settings.session.cookie_name}=x"})
    assert forged.status_code == 429
    page = attacker.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 429 and "Too many requests" in page.text
    # Another address is not affected.
    assert from_address(chat, "10.0.0.67").get(GATED).status_code == 401
    # The trail holds the refusals of the address once, not once per refused request.
    [event] = rate_limited(chat, "unauthenticated_per_minute_per_ip")
    assert event.ip == "10.0.0.66"


def test_a_signed_in_user_behind_the_flooded_address_is_still_served(chat_limited):
    chat = chat_limited
    alice = chat.login("alice")  # from 127.0.0.1, the proxy itself
    alice.headers["X-Forwarded-For"] = "10.0.0.66"
    attacker = from_address(chat, "10.0.0.66")
    while attacker.get(GATED).status_code != 429:
        pass
    for _ in range(10):
        assert alice.get(GATED).status_code == 200
    assert alice.get("/config").status_code == 200


def valid_token(chat, subject: str) -> str:
    user = User(chat.issuer, subject, f"{subject}@example.com", subject, ("staff",))
    expires = datetime.now(UTC) + timedelta(days=1)
    return chat.services.api_tokens.create(user, "script", expires).secret


def test_invalid_bearer_tokens_trip_the_guard_before_any_lookup(chat_server, monkeypatch):
    chat = chat_server(server=PROXIED, limits={"failed_tokens_per_minute_per_ip": 3})
    store = chat.services.api_tokens
    lookups = []
    find = store.find
    monkeypatch.setattr(store, "find", lambda secret: lookups.append(1) or find(secret))
    good = valid_token(chat, "alice")
    guesser = from_address(chat, "10.0.0.99")

    guesses = [
        guesser.get(GATED, headers={"Authorization": f"Bearer chat_pat_guess{n}"}) for n in range(3)
    ]
    assert [r.status_code for r in guesses] == [401] * 3
    assert guesses[0].json()["error"] == "invalid_token"
    assert len(lookups) == 3
    refused = guesser.get(GATED, headers={"Authorization": "Bearer chat_pat_guess4"})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "invalid API tokens" in refused.json()["detail"]
    # From that address even a valid token waits; nothing more is looked up.
    assert guesser.get(GATED, headers={"Authorization": f"Bearer {good}"}).status_code == 429
    assert len(lookups) == 3

    # The token's owner, from another address, is served.
    owner = from_address(chat, "10.0.0.100", Authorization=f"Bearer {good}")
    assert owner.get(GATED).status_code == 200
    # So is a signed-in browser behind the guesser's address: it sends no Bearer token.
    bob = chat.login("bob")
    bob.headers["X-Forwarded-For"] = "10.0.0.99"
    assert bob.get(GATED).status_code == 200
    [event] = rate_limited(chat, "failed_tokens_per_minute_per_ip")
    assert event.ip == "10.0.0.99"


def test_without_trusted_proxies_a_forwarded_address_changes_nothing(chat_server):
    """The limit counts the real peer: a client cannot rotate X-Forwarded-For to dodge it."""
    chat = chat_server(limits={"unauthenticated_per_minute_per_ip": 3})
    codes = [from_address(chat, f"10.0.1.{n}").get(GATED).status_code for n in range(4)]
    assert codes == [401, 401, 401, 429]
