"""Personal tokens follow the login policy, which otherwise runs only at login.

A token carries its owner as at creation, so without this a person removed from the allowed
groups, or from the admin groups, would keep their scripts' access until the token expired. The
IdP is asked about a person only when they log in, so that is when the login flow calls this:
a refused login revokes every live token of that person; a login without the admin role revokes
their admin-scope tokens. Each revocation is audited. (Someone who never logs in again keeps their
tokens until expiry, at most `api.token_max_days`, unless an admin revokes them in the tokens tab.)
"""

from __future__ import annotations

from core.audit import TOKEN_REVOKED, AuditEvent, AuditSink
from store.api_tokens import ApiTokenStore

REVOKED_BY = "login-policy"


class TokenPolicy:
    """What the login flow calls once it has decided about a verified person."""

    def __init__(self, tokens: ApiTokenStore, audit: AuditSink) -> None:
        self._tokens = tokens
        self._audit = audit

    def logged_in(
        self, user_key: str, is_admin: bool, ip: str | None, request_id: str | None
    ) -> None:
        if not is_admin:
            self._revoke(user_key, "owner_no_longer_admin", True, ip, request_id)

    def refused(self, user_key: str, ip: str | None, request_id: str | None) -> None:
        self._revoke(user_key, "owner_refused_at_login", False, ip, request_id)

    def _revoke(
        self,
        owner: str,
        reason: str,
        admin_scope_only: bool,
        ip: str | None,
        request_id: str | None,
    ) -> None:
        for token in self._tokens.revoke_owned(owner, REVOKED_BY, admin_scope_only):
            self._audit.record(
                AuditEvent(
                    TOKEN_REVOKED,
                    actor=owner,
                    ip=ip,
                    request_id=request_id,
                    target=token.id,
                    outcome=reason,
                    details={"name": token.name, "owner": owner, "by": REVOKED_BY},
                )
            )
