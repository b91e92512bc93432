"""OIDC Back-Channel Logout 1.0: the IdP ends a user's sessions here; forgeries change nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from auth import redis_state
from tests.auth.conftest import login
from tests.auth.fake_idp import DROP, LoginPlan
from tests.backends import REDIS_URL, redis_namespace

ENDPOINT = "/auth/backchannel-logout"


def logged_in(chat, fake_idp, sid: str | None = None):
    if sid is not None:
        fake_idp.next_login = LoginPlan(
            claims={"sub": "alice-sub", "email": "a@corp.example", "groups": ["staff"], "sid": sid}
        )
    client = chat.client()
    assert login(client).status_code == 200
    return client


def test_logout_token_for_the_user_ends_all_their_sessions(chat_app, fake_idp):
    chat = chat_app()
    laptop, phone = logged_in(chat, fake_idp), logged_in(chat, fake_idp)
    response = chat.client().post(ENDPOINT, data={"logout_token": fake_idp.logout_token()})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert laptop.get("/whoami").status_code == 401
    assert phone.get("/whoami").status_code == 401
    revoked = chat.audit.of_type("session.revoked")[-1]
    assert revoked.details == {"sessions": 2} and revoked.outcome == "backchannel_logout"


def test_logout_token_with_sid_ends_only_that_idp_session(chat_app, fake_idp):
    chat = chat_app()
    one, two = logged_in(chat, fake_idp, sid="sid-1"), logged_in(chat, fake_idp, sid="sid-2")
    token = fake_idp.logout_token(sid="sid-1", sub=DROP)
    assert chat.client().post(ENDPOINT, data={"logout_token": token}).status_code == 200
    assert one.get("/whoami").status_code == 401
    assert two.get("/whoami").status_code == 200


def ago(seconds: int) -> Callable[[], int]:
    """A token time `seconds` before the moment the test runs (negative: after it)."""
    return lambda: int(time.time()) - seconds


@pytest.mark.parametrize(
    ("signing", "overrides", "reason"),
    [
        ("other_key", {}, "bad_signature"),
        ("none", {}, "algorithm_not_allowed"),
        ("hs256_public", {}, "algorithm_not_allowed"),
        ("good", {"aud": "another-client"}, "audience_mismatch"),
        ("good", {"iss": "https://evil.example"}, "issuer_mismatch"),
        ("good", {"events": DROP}, "missing_logout_event"),
        ("good", {"events": {"http://example.com/other": {}}}, "missing_logout_event"),
        ("good", {"nonce": "n"}, "nonce_in_logout_token"),
        ("good", {"sub": DROP}, "missing_sid_and_sub"),
        ("good", {"iat": DROP}, "missing_iat"),
        (
            "good",
            {"iat": ago(3600), "exp": ago(-60)},
            "stale_logout_token",
        ),
        ("good", {"exp": ago(600)}, "expired"),
        ("good", {"jti": DROP}, "missing_jti"),
    ],
)
def test_forged_or_malformed_logout_token_changes_nothing(
    chat_app, fake_idp, signing, overrides, reason
):
    chat = chat_app()
    browser = logged_in(chat, fake_idp)
    # Times are taken now, not when the cases were collected (a long run outlives a minute).
    overrides = {k: v() if callable(v) else v for k, v in overrides.items()}
    token = fake_idp.logout_token(signing, **overrides)
    response = chat.client().post(ENDPOINT, data={"logout_token": token})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request"}
    assert browser.get("/whoami").status_code == 200
    assert chat.audit.of_type("access.denied")[-1].outcome == reason


def test_replayed_logout_token_is_refused(chat_app, fake_idp):
    chat = chat_app()
    token = fake_idp.logout_token()
    logged_in(chat, fake_idp)
    assert chat.client().post(ENDPOINT, data={"logout_token": token}).status_code == 200
    again = logged_in(chat, fake_idp)
    assert chat.client().post(ENDPOINT, data={"logout_token": token}).status_code == 400
    assert again.get("/whoami").status_code == 200


def test_a_logout_token_used_on_one_replica_is_refused_on_another(chat_app, fake_idp):
    client = redis_state.connect(REDIS_URL)
    with redis_namespace("test") as prefix:
        shared = {"logout_token_ids": redis_state.RedisOneTimeIds(client, prefix)}
        one, two = chat_app(auth_kwargs=shared), chat_app(auth_kwargs=shared)
        token = fake_idp.logout_token()
        assert one.client().post(ENDPOINT, data={"logout_token": token}).status_code == 200
        assert two.client().post(ENDPOINT, data={"logout_token": token}).status_code == 400
        assert two.audit.of_type("access.denied")[-1].outcome == "replayed_logout_token"
    client.close()


def test_missing_logout_token_is_a_bad_request(chat_app):
    chat = chat_app()
    assert chat.client().post(ENDPOINT, data={}).status_code == 400
