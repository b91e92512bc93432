"""Login against our own IdP: the honest path, then every way a token or a callback can be spoiled.

Each refusal must leave no session behind, show a page saying why, and write a LOGIN_REFUSED record.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from auth.oidc_provider import OidcConfigurationError, OidcProvider
from core.audit import MemoryAuditSink
from core.sessions import MemorySessionStore
from tests.auth.conftest import build_app, login, make_settings, run
from tests.auth.fake_idp import DROP, LoginPlan


def assert_refused(chat, response, reason: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert "Sign-in refused" in response.text
    assert chat.refusals()[-1] == reason
    assert chat.store.list_active(chat.auth.clock()) == []
    assert chat.cookie_name() not in response.cookies


def test_honest_login_creates_a_session_for_issuer_and_sub(chat_app, fake_idp):
    chat = chat_app()
    with chat.client() as client:
        final = login(client)
        assert final.status_code == 200
        assert final.json() == {
            "key": f"{fake_idp.issuer}|alice-sub",
            "admin": False,
            "groups": ["staff"],
        }
        assert client.get("/whoami").status_code == 200
    assert [e.type for e in chat.audit.events] == ["login.success"]


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        (LoginPlan(id_token_overrides={"aud": "someone-else"}), "audience_mismatch"),
        (LoginPlan(id_token_overrides={"aud": ["company-chat", "x"]}), "authorized_party_mismatch"),
        (LoginPlan(id_token_overrides={"azp": "someone-else"}), "authorized_party_mismatch"),
        (LoginPlan(id_token_overrides={"iss": "https://evil.example"}), "issuer_mismatch"),
        (LoginPlan(signing="other_key"), "bad_signature"),
        (LoginPlan(signing="unknown_kid"), "unknown_key"),
        (LoginPlan(signing="none"), "algorithm_not_allowed"),
        (LoginPlan(signing="hs256_public"), "algorithm_not_allowed"),
        (LoginPlan(id_token_overrides={"exp": int(time.time()) - 3600}), "expired"),
        (LoginPlan(id_token_overrides={"iat": int(time.time()) + 3600}), "issued_in_future"),
        (LoginPlan(id_token_overrides={"nonce": "not-the-one-we-sent"}), "nonce_mismatch"),
        (LoginPlan(id_token_overrides={"nonce": DROP}), "nonce_mismatch"),
        (LoginPlan(id_token_overrides={"sub": DROP}), "missing_sub"),
        (LoginPlan(userinfo_overrides={"sub": "mallory-sub"}), "userinfo_sub_mismatch"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_spoiled_id_token_is_refused(chat_app, fake_idp, plan, reason, caplog):
    chat = chat_app()
    fake_idp.next_login = plan
    with chat.client() as client, caplog.at_level(logging.WARNING, "chat.auth"):
        response = login(client)
        assert_refused(chat, response, reason)
        assert client.get("/whoami").status_code == 401
    assert f"login refused: {reason}" in caplog.text


def test_callback_without_state_is_refused(chat_app, fake_idp):
    chat = chat_app()
    with chat.client() as client:
        client.get("/login")  # a login is pending, but the callback names no state
        assert_refused(chat, client.get("/auth/callback", params={"code": "x"}), "state_missing")


def test_callback_with_another_browsers_state_is_refused(chat_app, fake_idp):
    chat = chat_app()
    with chat.client() as victim, chat.client() as attacker:
        # The attacker starts a login and hands the victim their callback URL (login CSRF).
        to_idp = attacker.get("/login")
        callback = attacker.get(to_idp.headers["location"]).headers["location"]
        victim.get("/login")
        assert_refused(chat, victim.get(callback), "state_mismatch")


def test_callback_replayed_is_refused(chat_app, fake_idp):
    chat = chat_app()
    with chat.client() as client:
        to_idp = client.get("/login")
        login_cookie = chat.auth.sessions.cookie.login_name
        bound_state = to_idp.cookies[login_cookie]
        callback = client.get(to_idp.headers["location"]).headers["location"]
        assert client.get(callback).status_code == 302  # the honest first use logs in
        client.cookies.set(login_cookie, bound_state)  # an eavesdropper replays URL and cookie
        replay = client.get(callback)
        assert replay.status_code == 400
        assert chat.refusals()[-1] == "state_unknown"
    assert len(chat.store.list_active(chat.auth.clock())) == 1  # only the honest login


def _state_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["state"][0]


def test_idp_error_response_is_refused_with_a_page(chat_app, fake_idp):
    chat = chat_app()
    with chat.client() as client:
        state = _state_of(client.get("/login").headers["location"])
        response = client.get("/auth/callback", params={"error": "access_denied", "state": state})
        assert_refused(chat, response, "idp_error")


def test_discovery_issuer_mismatch_stops_start_up(fake_idp):
    fake_idp.discovery_issuer = fake_idp.issuer + "/"  # off by a trailing slash is still wrong
    app, _ = build_app(
        make_settings(7860, fake_idp.issuer), MemoryAuditSink(), MemorySessionStore()
    )
    # TestClient runs the lifespan, as uvicorn does at start-up.
    with (
        pytest.raises(OidcConfigurationError, match="does not equal the configured issuer"),
        TestClient(app),
    ):
        pass


def test_discovery_issuer_mismatch_is_named_in_the_error(fake_idp):
    fake_idp.discovery_issuer = "https://impostor.example"
    provider = OidcProvider(
        issuer=fake_idp.issuer,
        client_id="company-chat",
        client_secret="x",
        scopes=("openid",),
        timeout_seconds=5,
    )
    with pytest.raises(OidcConfigurationError, match=r"impostor\.example.*does not equal"):
        run(provider.discover())


def test_login_before_start_up_shows_unavailable_and_is_recorded(fake_idp):
    audit = MemoryAuditSink()
    app, _ = build_app(make_settings(7860, fake_idp.issuer), audit, MemorySessionStore())
    client = TestClient(app, base_url="http://127.0.0.1:7860")  # no `with`: start-up never ran
    response = client.get("/login")
    assert response.status_code == 503
    assert "Sign-in unavailable" in response.text
    assert audit.of_type("login.refused")[-1].outcome == "not_started"


def test_key_rotation_at_the_idp_is_followed_with_one_jwks_refetch(chat_app, fake_idp):
    chat = chat_app()
    with chat.client() as client:
        assert login(client).status_code == 200
    fake_idp.rotate_key()
    fetches = fake_idp.jwks_fetches
    with chat.client() as client:
        assert login(client).status_code == 200
    assert fake_idp.jwks_fetches == fetches + 1


def test_tokens_after_a_refused_login_still_need_a_fresh_flow(chat_app, fake_idp):
    chat = chat_app()
    fake_idp.next_login = LoginPlan(id_token_overrides={"aud": "other"})
    with chat.client() as client:
        login(client)
        fake_idp.next_login = LoginPlan()
        assert login(client).status_code == 200  # a new, honest flow works afterwards


class TokenPolicyCalls:
    """Records what the login flow asks of the token policy (the real one is tested in store)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def logged_in(self, user_key, is_admin, ip, request_id) -> None:
        self.calls.append(("logged_in", user_key, is_admin))

    def refused(self, user_key, ip, request_id) -> None:
        self.calls.append(("refused", user_key))


def test_the_login_flow_calls_the_token_policy_for_verified_people_only(chat_app, fake_idp):
    policy = TokenPolicyCalls()
    chat = chat_app(oidc={"allowed_groups": ["staff"]}, auth_kwargs={"token_policy": policy})
    alice = f"{fake_idp.issuer}|alice-sub"
    with chat.client() as client:
        assert login(client).status_code == 200
    fake_idp.next_login = LoginPlan(claims={"sub": "alice-sub", "groups": ["contractors"]})
    with chat.client() as client:
        assert login(client).status_code == 403
    fake_idp.next_login = LoginPlan(id_token_overrides={"aud": "other"})
    with chat.client() as client:
        assert login(client).status_code == 400  # nobody verified: no one's tokens touched
    assert policy.calls == [("logged_in", alice, False), ("refused", alice)]
