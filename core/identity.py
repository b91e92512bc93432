"""Who is calling: the user as established by the server (OIDC login or API token), never by the client."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class User:
    issuer: str
    subject: str
    email: str | None = None
    name: str | None = None
    groups: tuple[str, ...] = ()
    is_admin: bool = False
    via_token: str | None = None  # API token name when the request came from a script

    @property
    def key(self) -> str:
        """Stable owner key for history and limits: (issuer, sub), never a display name or e-mail."""
        return f"{self.issuer}|{self.subject}"

    @property
    def display(self) -> str:
        return self.name or self.email or self.subject
