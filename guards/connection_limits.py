"""Connection-level limits for uvicorn: a deadline for each request's headers, and a cap on the
connections one source address may hold open.

uvicorn 0.54 has neither, with h11 or httptools: `timeout_keep_alive` starts only after a response
and the next byte cancels it; `limit_concurrency` counts idle sockets too, so slow clients make it
answer 503 to everyone; `h11_max_incomplete_event_size` bounds bytes, not time. hypercorn 0.18's
`keep_alive_timeout` does time request headers, but caps nothing per address and would replace the
server; its `read_timeout` closed nothing. Measured with bench/slow_clients.py (2 s timeouts, 25
silent, half-sent and slowloris connections, state 6 s later): uvicorn kept all 25 open, this
subclass closed all 25 and held 64 of 100 connections from one address (36 got 503), while a 6 s
stream to a silent client and a client taking 1.5 s over its headers were served. The table and
reasoning: docs/operations.md, "Slow and excess connections".

The deadline runs from connecting, and from the end of each response, until a request's headers are
complete. The body is not timed: limits.max_body_bytes caps its size and its connection counts
against the cap. It subclasses H11Protocol (what `http="auto"` runs without httptools) and overrides
uvicorn internals (`on_response_complete`, `cycle`, `client`, `loop`), so other series are refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable
from typing import TypeGuard

from guards.client_ip import IPNetwork, parse_ip

SUPPORTED_UVICORN = (0, 54)

log = logging.getLogger("chat.server")

# Sent to a connection over the cap before it is closed, so clients and users see why.
_OVER_CAP_TEXT = b"Too many open connections from your address; close some and retry.\n"
_OVER_CAP = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"Retry-After: 10\r\n"
    b"Connection: close\r\n\r\n%s" % (len(_OVER_CAP_TEXT), _OVER_CAP_TEXT)
)

CallLater = Callable[[float, Callable[[], None]], object]


class UnsupportedServer(RuntimeError):
    """The installed uvicorn is not the series this guard was written against."""


class ConnectionLimits:
    """Per-address open-connection counts and the rate-limited log of closed connections.

    Peers in `exempt` (trusted reverse proxies, which carry many users over their own pool) are
    never capped; the proxy bounds its clients. Used from the event loop thread only.
    """

    def __init__(
        self,
        header_timeout: float,
        max_per_address: int,
        exempt: tuple[IPNetwork, ...] = (),
        log_interval: float = 60.0,
    ) -> None:
        self.header_timeout = header_timeout
        self.max_per_address = max_per_address
        self.exempt = exempt
        self.log_interval = log_interval
        self._open: Counter[str] = Counter()
        self._closed: dict[str, Counter[str]] = {}  # address -> closes not yet logged

    def address_of(self, peer: tuple[str, int] | None) -> str | None:
        """The peer's IP address as counted and logged (IPv4-mapped IPv6 as IPv4); None if not IP."""
        address = parse_ip(peer[0]) if peer else None
        return None if address is None else str(address)

    def admit(self, address: str | None) -> bool:
        """Count one more open connection for `address`, unless it already holds the maximum."""
        if not self._capped(address):
            return True
        if self._open[address] >= self.max_per_address:
            return False
        self._open[address] += 1
        return True

    def release(self, address: str | None) -> None:
        """Forget one connection that `admit` let in."""
        if self._capped(address):
            self._open[address] -= 1
            if not self._open[address]:
                del self._open[address]

    def _capped(self, address: str | None) -> TypeGuard[str]:
        if address is None:
            return False  # not an IP peer (a unix socket): nothing to count by
        ip = ipaddress.ip_address(address)
        return not any(ip in network for network in self.exempt)

    def record_close(self, address: str | None, reason: str, call_later: CallLater) -> None:
        """Log a closed connection: at once for an address quiet for `log_interval`, then at most one
        line per interval with the counts since the previous line, so a flood cannot flood the log."""
        name = address or "unknown"
        pending = self._closed.get(name)
        if pending is not None:
            pending[reason] += 1
            return
        self._closed[name] = Counter()
        _log_closed(name, Counter({reason: 1}))
        call_later(self.log_interval, lambda: self._flush(name, call_later))

    def _flush(self, name: str, call_later: CallLater) -> None:
        pending = self._closed[name]
        if not pending:
            del self._closed[name]  # quiet for a whole interval: the next close logs at once
            return
        self._closed[name] = Counter()
        _log_closed(name, pending)
        call_later(self.log_interval, lambda: self._flush(name, call_later))


def _log_closed(address: str, counts: Counter[str]) -> None:
    log.warning("connections closed", extra={"ip": address, **counts})


def check_supported(version: str | None = None) -> None:
    """Raise UnsupportedServer unless uvicorn (or `version`) is the series SUPPORTED_UVICORN."""
    import uvicorn
    from packaging.version import InvalidVersion, Version

    running = version or uvicorn.__version__
    try:
        series = Version(running).release[:2]
    except InvalidVersion:
        series = ()
    if series != SUPPORTED_UVICORN:
        wanted = ".".join(map(str, SUPPORTED_UVICORN))
        raise UnsupportedServer(
            f"uvicorn {running} is not supported: guards/connection_limits.py overrides internals"
            f" of uvicorn {wanted}.x; install the version pinned in requirements.txt"
        )


class ReplacedServerLines(logging.Filter):
    """Drops uvicorn's own line for a malformed request (no address, one per request): the guarded
    protocol logs it as a closed connection, per address and rate-limited. Install it on
    "uvicorn.error" together with the protocol."""

    LINES = frozenset({"Invalid HTTP request received."})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.LINES


def guarded_h11_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with `limits` applied; pass it to uvicorn.Config(http=...)."""
    check_supported()
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _address: str | None = None
        _counted = False
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._address = limits.address_of(self.client)
            if not limits.admit(self._address):
                limits.record_close(self._address, "over_cap", self.loop.call_later)
                transport.write(_OVER_CAP)
                transport.close()
                return
            self._counted = True
            self._start_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_deadline()
            if self._counted:
                self._counted = False
                limits.release(self._address)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle:  # a new request's headers are complete
                self._stop_deadline()

        def send_400_response(self, msg: str) -> None:
            # h11 could not parse the request: counted and logged like the other closes
            limits.record_close(self._address, "invalid_request", self.loop.call_later)
            super().send_400_response(msg)

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may start a pipelined request (a new cycle)
            if not self.transport.is_closing() and self.cycle.response_complete:
                self._start_deadline()  # the next request's headers get the same deadline

        def _start_deadline(self) -> None:
            self._stop_deadline()
            self._deadline = self.loop.call_later(limits.header_timeout, self._too_slow)

        def _stop_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                limits.record_close(self._address, "header_timeout", self.loop.call_later)
                self.transport.close()

    return GuardedH11Protocol
