"""Login policy: who may log in and who is an admin, decided from claims at every login."""

from __future__ import annotations

import pytest

from auth.login_policy import LoginRefusal, claim_at, evaluate_login
from auth.settings import OidcSettings
from core.identity import User
from tests.auth.conftest import login
from tests.auth.fake_idp import LoginPlan

ISSUER = "https://idp.example"


def decide(claims, **policy):
    return evaluate_login(ISSUER, claims, OidcSettings(issuer=ISSUER, **policy))


def test_user_is_keyed_by_issuer_and_sub_not_email_or_name():
    user = decide({"sub": "123", "email": "a@corp.example", "name": "A"})
    assert isinstance(user, User)
    assert user.key == f"{ISSUER}|123"


def test_nested_groups_claim_like_keycloak_realm_roles():
    claims = {"sub": "1", "realm_access": {"roles": ["staff", "chat-admins"]}}
    user = decide(claims, groups_claim="realm_access.roles", allowed_groups=("staff",))
    assert isinstance(user, User) and user.is_admin and user.groups == ("staff", "chat-admins")
    assert claim_at({"a.b": 1, "a": {"b": 2}}, "a.b") == 1  # a literal dotted claim wins


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "1", "groups": ["contractors"]}, "group_not_allowed"),
        ({"sub": "1"}, "group_not_allowed"),
        ({"sub": "1", "groups": "staff", "email": "x@evil.example"}, "email_domain_not_allowed"),
        ({"sub": "1", "groups": ["staff"]}, "email_domain_not_allowed"),
        (
            {"sub": "1", "groups": ["staff"], "email": "x@corp.example", "email_verified": False},
            "email_domain_not_allowed",
        ),
        ({"groups": ["staff"], "email": "x@corp.example"}, "missing_sub"),
    ],
)
def test_refusals(claims, reason):
    decision = decide(claims, allowed_groups=("staff",), allowed_email_domains=("corp.example",))
    assert isinstance(decision, LoginRefusal) and decision.reason == reason
    assert decision.message


def test_email_domain_is_compared_case_insensitively_on_the_last_at():
    policy = {"allowed_email_domains": ("Corp.Example",)}
    assert isinstance(decide({"sub": "1", "email": "x@CORP.example"}, **policy), User)
    refused = decide({"sub": "1", "email": "x@corp.example@evil.example"}, **policy)
    assert isinstance(refused, LoginRefusal)


def test_roles_are_reevaluated_at_each_login(chat_app, fake_idp):
    chat = chat_app(oidc={"admin_groups": ["chat-admins"]})
    fake_idp.next_login = LoginPlan(claims={"sub": "u1", "groups": ["staff", "chat-admins"]})
    with chat.client() as client:
        assert login(client).json()["admin"] is True
    fake_idp.next_login = LoginPlan(claims={"sub": "u1", "groups": ["staff"]})  # removed at the IdP
    with chat.client() as client:
        assert login(client).json()["admin"] is False


def test_refused_login_page_explains_and_records_the_user(chat_app, fake_idp):
    chat = chat_app(oidc={"allowed_groups": ["staff"]})
    fake_idp.next_login = LoginPlan(claims={"sub": "c1", "groups": ["contractors"]})
    with chat.client() as client:
        page = login(client)
    assert page.status_code == 403
    assert "Ask your IT service desk" in page.text
    refusal = chat.audit.of_type("login.refused")[-1]
    assert refusal.actor == f"{fake_idp.issuer}|c1" and refusal.outcome == "group_not_allowed"
    assert chat.store.list_active(chat.auth.clock()) == []
