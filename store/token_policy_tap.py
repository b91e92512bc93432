"""Personal tokens follow the login policy, which otherwise runs only at login.

A token carries its owner as at creation, so without this a person removed from the allowed
groups, or from the admin groups, would keep their scripts' access until the token expired. The
IdP is asked about a person only when they log in, so that is when tokens are brought in line:
a refused login revokes every live token of that person; a login without the admin role revokes
their admin-scope tokens. Each revocation is audited. (Someone who never logs in again keeps their
tokens until expiry, at most `api.token_max_days`, unless an admin revokes them in the tokens tab.)
"""

from __future__ import annotations

from store.api_tokens import ApiTokenStore
from store.events import LOGIN_REFUSED, LOGIN_SUCCESS, TOKEN_REVOKED, AuditEvent, AuditSink

REVOKED_BY = "login-policy"


class TokenPolicyTap:
    """An AuditSink that records to `inner`, then revokes tokens a login event says must go."""

    def __init__(self, inner: AuditSink, tokens: ApiTokenStore) -> None:
        self._inner = inner
        self._tokens = tokens

    def record(self, event: AuditEvent) -> None:
        self._inner.record(event)
        if event.actor is None:  # protocol failures: nobody verified, nothing to revoke
            return
        if event.type == LOGIN_REFUSED:
            self._revoke(event, "owner_refused_at_login", admin_scope_only=False)
        elif event.type == LOGIN_SUCCESS and event.outcome != "admin":
            self._revoke(event, "owner_no_longer_admin", admin_scope_only=True)

    def _revoke(self, event: AuditEvent, reason: str, admin_scope_only: bool) -> None:
        owner = event.actor
        for token in self._tokens.revoke_owned(owner, REVOKED_BY, admin_scope_only):
            self._inner.record(
                AuditEvent(
                    TOKEN_REVOKED,
                    actor=owner,
                    ip=event.ip,
                    request_id=event.request_id,
                    target=token.id,
                    outcome=reason,
                    details={"name": token.name, "owner": owner, "by": REVOKED_BY},
                )
            )
