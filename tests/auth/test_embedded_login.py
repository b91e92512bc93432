"""The happy path through a real OpenID provider: oidc-provider-mock, started by `issuer = "embedded"`,
walked with an HTTP client that follows the real redirects; then logout, with and without CSRF proof."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app_factory import site_of
from auth.startup_checks import validate_auth_settings
from tests.auth.conftest import make_settings

POLICY = {"allowed_groups": ["staff"], "admin_groups": ["chat-admins"], "embedded_port": 0}


def embedded_login(client: httpx.Client, user: str, next_path: str = "/whoami") -> httpx.Response:
    """Open /login, land on the provider's page, pick a demo user, follow everything back."""
    page = client.get("/login", params={"next": next_path}, follow_redirects=True)
    assert page.status_code == 200 and 'name="sub"' in page.text  # the demo users' form
    return client.post(page.url, data={"sub": user}, follow_redirects=True)


@pytest.fixture
def embedded(chat_app):
    return chat_app(issuer="embedded", oidc=POLICY)


def test_staff_member_logs_in_and_lands_where_they_were_going(embedded):
    assert embedded.auth.dev_login
    with embedded.client() as client:
        response = embedded_login(client, "alice", next_path="/whoami?tab=1")
        assert response.status_code == 200
        assert str(response.url).endswith("/whoami?tab=1")
        assert response.json() == {
            "key": f"{embedded.auth.issuer}|alice",
            "admin": False,
            "groups": ["staff"],
        }
    assert [e.type for e in embedded.audit.events] == ["login.success"]


def test_admin_group_grants_the_admin_role(embedded):
    with embedded.client() as client:
        assert embedded_login(client, "admin1").json()["admin"] is True


def test_user_outside_the_allowed_groups_is_refused_with_a_reason(embedded):
    with embedded.client() as client:
        response = embedded_login(client, "outsider")
        assert response.status_code == 403
        assert "not in a group that may use this chat" in response.text
        assert client.get("/whoami").status_code == 401
    assert embedded.refusals() == ["group_not_allowed"]
    refusal = embedded.audit.of_type("login.refused")[0]
    assert refusal.actor == f"{embedded.auth.issuer}|outsider"
    assert embedded.store.list_active(embedded.auth.clock()) == []


def test_session_cookie_is_opaque_httponly_lax_and_renewed_at_each_login(embedded):
    with embedded.client() as client:
        embedded_login(client, "alice")
        first = client.cookies[embedded.cookie_name()]
        embedded_login(client, "alice")
        second = client.cookies[embedded.cookie_name()]
    assert first != second
    assert "alice" not in first and len(first) < 200
    # The first session died when the second began.
    with embedded.client(cookies={embedded.cookie_name(): first}) as replay:
        assert replay.get("/whoami").status_code == 401
    assert len(embedded.store.list_active(embedded.auth.clock())) == 1


def test_cookie_attributes(embedded):
    with embedded.client() as client:
        page = client.get("/login", follow_redirects=True)
        callback = client.get(client.post(page.url, data={"sub": "alice"}).headers["location"])
    name = embedded.cookie_name()
    session_cookie = next(
        c for c in callback.headers.get_list("set-cookie") if c.startswith(name + "=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in session_cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=lax" in session_cookie.lower() and "path=/" in session_cookie.lower()
    assert "secure" not in attributes  # http public URL here; https is tested with __Host-


def test_logout_revokes_redirects_to_the_idp_and_the_old_cookie_is_refused(embedded):
    with embedded.client() as client:
        embedded_login(client, "alice")
        old_cookie = client.cookies[embedded.cookie_name()]
        token = client.get("/csrf").json()["csrf_token"]
        response = client.post("/logout", data={"csrf_token": token})
        assert response.status_code == 303
        end_session = urlsplit(response.headers["location"])
        query = parse_qs(end_session.query)
        assert end_session.path == "/oauth2/end_session"
        assert query["post_logout_redirect_uri"] == [embedded.base + "/logged-out"]
        assert query["id_token_hint"][0].count(".") == 2
        assert embedded.cookie_name() not in client.cookies
        # The IdP's confirmation sends the browser to our public signed-out page.
        confirm = client.post(
            f"{end_session.scheme}://{end_session.netloc}/oauth2/end_session/confirm",
            data={"redirect_uri": query["post_logout_redirect_uri"][0]},
            follow_redirects=True,
        )
        assert confirm.status_code == 200 and "You are signed out" in confirm.text
    with embedded.client(cookies={embedded.cookie_name(): old_cookie}) as replay:
        assert replay.get("/whoami").status_code == 401
    assert [e.type for e in embedded.audit.events][-1] == "logout"


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        ({}, {}),  # no token at all
        ({"csrf_token": "forged"}, {}),
        ({"csrf_token": "@token"}, {"origin": "https://evil.example"}),
        ({"csrf_token": "@token"}, {"origin": "null"}),
    ],
    ids=["missing", "forged", "foreign-origin", "null-origin"],
)
def test_logout_without_csrf_proof_changes_nothing(embedded, data, headers):
    with embedded.client() as client:
        embedded_login(client, "alice")
        token = client.get("/csrf").json()["csrf_token"]
        data = {k: (token if v == "@token" else v) for k, v in data.items()}
        response = client.post("/logout", data=data, headers=headers)
        assert response.status_code == 403
        assert client.get("/whoami").status_code == 200
    assert embedded.audit.of_type("access.denied")


def test_logout_token_in_header_is_accepted(embedded):
    with embedded.client() as client:
        embedded_login(client, "alice")
        token = client.get("/csrf").json()["csrf_token"]
        response = client.post("/logout", headers={"x-csrf-token": token})
        assert response.status_code == 303
        assert client.get("/whoami").status_code == 401


def test_embedded_provider_refuses_non_loopback_bind_and_production():
    settings = make_settings(7860, "embedded", server={"host": "0.0.0.0"})
    with pytest.raises(ValueError, match="non-loopback"):
        validate_auth_settings(settings.oidc, settings.session, site_of(settings))
    settings = make_settings(7860, "embedded", environment="production")
    with pytest.raises(ValueError, match="development login"):
        validate_auth_settings(settings.oidc, settings.session, site_of(settings))
