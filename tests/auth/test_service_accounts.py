"""Service-account JWTs (client-credentials access tokens) at the route gate, signed by our own
fake IdP on loopback: only our API audience, unexpired, signed with an allowed algorithm gets in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from auth.api_settings import ApiSettings
from auth.bearer_tokens import PersonalTokenAuthenticator
from auth.service_accounts import service_account_authenticator
from auth.settings import OidcSettings
from core.audit import TOKEN_REFUSED, MemoryAuditSink
from tests.auth.bearer_app import Clock, gated_app
from tests.auth.fake_idp import DROP, FakeIdp, _apply
from tests.auth.loopback_server import serve

AUDIENCE = "chat-api"


class NoTokens:
    def find(self, secret: str) -> None:
        return None

    def mark_used(self, *args: Any) -> None:
        raise AssertionError("no personal token in these tests")


def access_token(idp: FakeIdp, signing: str = "good", **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "sub": "svc-reports",
        "client_id": "reports-job",
        "iat": now,
        "exp": now + 300,
    }
    _apply(claims, overrides)
    return idp.sign(claims, signing, typ="at+jwt")


@pytest.fixture
def gate(fake_idp: FakeIdp) -> Iterator[tuple[httpx.Client, MemoryAuditSink]]:
    oidc = OidcSettings(issuer=fake_idp.issuer, admin_groups=("chat-admins",))
    api = ApiSettings(service_audience=AUDIENCE)
    audit = MemoryAuditSink()
    service = service_account_authenticator(api, oidc, audit, Clock.real)
    personal = PersonalTokenAuthenticator(
        NoTokens(), audit, Clock.real, jwts_handled_elsewhere=True
    )
    with (
        serve(gated_app([personal, service], audit)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client, audit


def whoami(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/whoami", headers={"Authorization": f"Bearer {token}"})


def test_a_service_account_token_acts_as_the_service(gate, fake_idp):
    client, _ = gate
    response = whoami(client, access_token(fake_idp))
    assert response.status_code == 200
    assert response.json() == {
        "key": f"{fake_idp.issuer}|svc-reports",
        "admin": False,
        "groups": [],
    }


def test_without_sub_the_client_id_is_the_identity_and_groups_map_to_admin(gate, fake_idp):
    client, _ = gate
    token = access_token(fake_idp, sub=DROP, groups=["chat-admins"])
    body = whoami(client, token).json()
    assert body["key"] == f"{fake_idp.issuer}|reports-job" and body["admin"] is True


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        ({"aud": "company-chat"}, "audience_mismatch"),
        ({"aud": "some-other-api"}, "audience_mismatch"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"exp": DROP}, "missing_exp"),
        ({"iss": "https://evil.example"}, "issuer_mismatch"),
        ({"nonce": "n-1"}, "id_token_not_accepted"),
    ],
)
def test_bad_claims_are_refused_with_401(gate, fake_idp, spoil, reason):
    client, audit = gate
    response = whoami(client, access_token(fake_idp, **spoil))
    assert response.status_code == 401
    assert response.json()["reason"] == reason
    assert [e.outcome for e in audit.of_type(TOKEN_REFUSED)] == [f"service:{reason}"]


def test_messages_say_what_went_wrong(gate, fake_idp):
    client, _ = gate
    wrong = whoami(client, access_token(fake_idp, aud="some-other-api")).json()["message"]
    old = whoami(client, access_token(fake_idp, exp=int(time.time()) - 3600)).json()["message"]
    assert "wrong audience" in wrong and "expired" in old


@pytest.mark.parametrize(
    ("signing", "reason"),
    [
        ("other_key", "bad_signature"),
        ("none", "algorithm_not_allowed"),
        ("hs256_public", "algorithm_not_allowed"),
    ],
)
def test_forged_signatures_are_refused(gate, fake_idp, signing, reason):
    client, _ = gate
    response = whoami(client, access_token(fake_idp, signing))
    assert response.status_code == 401 and response.json()["reason"] == reason


def test_an_allowlist_of_clients_refuses_others_with_403(fake_idp):
    oidc = OidcSettings(issuer=fake_idp.issuer)
    api = ApiSettings(service_audience=AUDIENCE, service_allowed_clients=("billing-job",))
    audit = MemoryAuditSink()
    service = service_account_authenticator(api, oidc, audit, Clock.real)
    with serve(gated_app([service], audit)) as url, httpx.Client(base_url=url) as client:
        refused = whoami(client, access_token(fake_idp))
        allowed = whoami(client, access_token(fake_idp, client_id="billing-job", sub=DROP))
    assert refused.status_code == 403 and refused.json()["reason"] == "client_not_allowed"
    assert allowed.status_code == 200


def test_with_service_accounts_off_a_jwt_is_an_unknown_token(fake_idp):
    assert (
        service_account_authenticator(ApiSettings(), OidcSettings(), MemoryAuditSink(), Clock.real)
        is None
    )
    audit = MemoryAuditSink()
    personal = PersonalTokenAuthenticator(NoTokens(), audit, Clock.real)
    with serve(gated_app([personal], audit)) as url, httpx.Client(base_url=url) as client:
        response = whoami(client, access_token(fake_idp))
    assert response.status_code == 401 and response.json()["reason"] == "unknown"


def test_misconfigurations_are_refused_at_start():
    with pytest.raises(ValueError, match="embedded"):
        service_account_authenticator(
            ApiSettings(service_audience=AUDIENCE), OidcSettings(), MemoryAuditSink(), Clock.real
        )
    with pytest.raises(ValueError, match="client_id"):
        service_account_authenticator(
            ApiSettings(service_audience="company-chat"),
            OidcSettings(issuer="https://idp.test"),
            MemoryAuditSink(),
            Clock.real,
        )
    with pytest.raises(ValueError, match="asymmetric"):
        ApiSettings(service_algorithms=("HS256",))
