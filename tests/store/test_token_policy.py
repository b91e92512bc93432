"""Tokens follow the login policy: a refused login revokes them all, a lost admin role the admin ones."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from core.audit import TOKEN_REVOKED, MemoryAuditSink
from core.identity import User
from store.api_tokens import ApiTokenStore
from store.token_policy import TokenPolicy

CAROL = User("https://idp.example", "carol", groups=("staff", "chat-admins"), is_admin=True)
BOB = User("https://idp.example", "bob", groups=("staff",))


def setup(database, clock):
    tokens, audit = ApiTokenStore(database, clock), MemoryAuditSink()
    week = clock() + timedelta(days=7)
    made = {
        "admin": tokens.create(CAROL, "admin report", week, admin_scope=True).token,
        "plain": tokens.create(replace(CAROL, is_admin=False), "nightly", week).token,
        "bob": tokens.create(BOB, "bob's", week).token,
    }
    return tokens, audit, TokenPolicy(tokens, audit), made


def statuses(tokens, clock, made):
    return {name: tokens.get(token.id).status(clock()) for name, token in made.items()}


def test_a_login_without_the_admin_role_revokes_only_admin_scope_tokens(database, clock):
    tokens, audit, policy, made = setup(database, clock)
    policy.logged_in(CAROL.key, is_admin=False, ip="10.0.0.5", request_id="r1")
    assert statuses(tokens, clock, made) == {"admin": "revoked", "plain": "active", "bob": "active"}
    (revoked,) = audit.of_type(TOKEN_REVOKED)
    assert revoked.target == made["admin"].id and revoked.outcome == "owner_no_longer_admin"
    assert (revoked.ip, revoked.request_id) == ("10.0.0.5", "r1")


def test_a_login_as_admin_keeps_admin_tokens(database, clock):
    tokens, audit, policy, made = setup(database, clock)
    policy.logged_in(CAROL.key, is_admin=True, ip=None, request_id=None)
    assert set(statuses(tokens, clock, made).values()) == {"active"}
    assert audit.of_type(TOKEN_REVOKED) == []


def test_a_refused_login_revokes_every_token_of_that_person_only(database, clock):
    tokens, audit, policy, made = setup(database, clock)
    policy.refused(CAROL.key, ip=None, request_id=None)
    assert statuses(tokens, clock, made) == {
        "admin": "revoked",
        "plain": "revoked",
        "bob": "active",
    }
    assert {e.outcome for e in audit.of_type(TOKEN_REVOKED)} == {"owner_refused_at_login"}
