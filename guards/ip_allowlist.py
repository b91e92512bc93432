"""Source-address allowlists by route group: all, admin, api (bearer tokens) and metrics."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from core.app_path import app_path
from core.audit import ACCESS_DENIED, AuditEvent, AuditSink
from core.blocking_io import run_blocking
from core.request_facts import facts_of
from guards.client_ip import IPNetwork, parse_ip
from guards.refusals import close_websocket, log_refusal, refusal
from guards.settings import AccessSettings

logger = logging.getLogger("chat.access")

RouteGroup = Literal["all", "admin", "api", "metrics"]


class AddressRefused(PermissionError):
    """The client address is outside the allowlist of a route group."""

    def __init__(self, group: RouteGroup) -> None:
        super().__init__(f"Access from your network address is not allowed for {group} requests.")
        self.group = group


def _networks(values: Iterable[IPNetwork | str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


@dataclass(frozen=True)
class AccessRules:
    """Allowlists per group; an empty tuple means no extra restriction for that group."""

    allow: tuple[IPNetwork, ...] = ()
    admin_allow: tuple[IPNetwork, ...] = ()
    api_allow: tuple[IPNetwork, ...] = ()
    metrics_allow: tuple[IPNetwork, ...] = ()
    admin_paths: tuple[str, ...] = ("/admin",)
    metrics_path: str = "/metrics"

    @classmethod
    def from_settings(cls, settings: AccessSettings) -> AccessRules:
        return cls(
            allow=_networks(settings.allow),
            admin_allow=_networks(settings.admin_allow),
            api_allow=_networks(settings.api_allow),
            metrics_allow=_networks(settings.metrics_allow),
            admin_paths=settings.admin_paths,
        )

    def permits(self, group: RouteGroup, address: str | None) -> bool:
        networks = {
            "all": self.allow,
            "admin": self.admin_allow,
            "api": self.api_allow,
            "metrics": self.metrics_allow,
        }[group]
        if not networks:
            return True
        parsed = parse_ip(address) if address else None
        return parsed is not None and any(parsed in network for network in networks)

    def groups_for(self, path: str, headers: Headers) -> list[RouteGroup]:
        """Every group a request belongs to; it must pass all of them."""
        groups: list[RouteGroup] = ["all"]
        if any(path == p or path.startswith(p + "/") for p in self.admin_paths):
            groups.append("admin")
        if headers.get("authorization", "").lower().startswith("bearer "):
            groups.append("api")
        if path == self.metrics_path or path.startswith(self.metrics_path + "/"):
            groups.append("metrics")
        return groups

    def require_admin_ip(
        self, address: str | None, audit: AuditSink | None = None, actor: str | None = None
    ) -> None:
        """Raise AddressRefused unless `address` may use admin handlers (Gradio serves them on
        shared routes, so each admin handler calls this itself)."""
        if self.permits("admin", address):
            return
        logger.warning("admin handler refused", extra={"ip": address})
        if audit is not None:
            audit.record(
                AuditEvent(ACCESS_DENIED, actor=actor, ip=address, outcome="ip_not_allowed:admin")
            )
        raise AddressRefused("admin")


class IPAllowlistMiddleware:
    """Refuse requests from outside the allowlists; runs after ClientAddressMiddleware, before auth."""

    def __init__(self, app: ASGIApp, rules: AccessRules, audit: AuditSink) -> None:
        self.app = app
        self.rules = rules
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = app_path(scope)
        address = facts_of(scope).client_ip
        for group in self.rules.groups_for(path, Headers(scope=scope)):
            if not self.rules.permits(group, address):
                await self._refuse(scope, receive, send, group, address, path)
                return
        await self.app(scope, receive, send)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        group: RouteGroup,
        address: str | None,
        path: str,
    ) -> None:
        facts = facts_of(scope)
        peer = facts.peer_ip
        event = AuditEvent(
            ACCESS_DENIED,
            actor=facts.user_key,
            ip=address,
            target=path,
            outcome=f"ip_not_allowed:{group}",
            details={"peer": peer, "group": group},
        )
        await run_blocking(self.audit.record, event)
        reason = f"ip_not_allowed:{group} (peer {peer})"
        if scope["type"] == "websocket":
            log_refusal(scope, 403, reason)
            await close_websocket(send)
            return
        message = (
            "Your network address is not allowed to use this service. "
            "Connect from the company network or VPN, or ask your administrator."
        )
        await refusal(scope, 403, message, reason=reason)(scope, receive, send)
