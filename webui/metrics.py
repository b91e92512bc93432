"""Prometheus metrics: one registry per app, an ASGI middleware counting requests, and /metrics.

Every label value is bounded: routes are templates ("/api/items/{id}"), methods and other labels
fall into "other" past a fixed number of distinct values, because each new label value is a new
time series kept forever (an attacker sending random paths must not grow memory). Access to
/metrics is decided by the IP allowlist middleware ("metrics" group), not here.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from model.types import GenerationStats

log = logging.getLogger("chat.metrics")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of requests that matched no route (404s, scans)
OTHER = "other"


class BoundedLabel:
    """Passes through at most `limit` distinct values; later new ones become "other"."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
            return value


class Metrics:
    """The app's metrics in their own CollectorRegistry (never the global one)."""

    def __init__(self, namespace: str = "chat", max_routes: int = 300) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg, ns = self.registry, namespace
        self._route = BoundedLabel(max_routes)
        self._small = {name: BoundedLabel(32) for name in ("login", "refusal", "error", "finish")}
        self.requests = Counter(
            "http_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            namespace=ns,
            registry=reg,
        )
        self.request_seconds = Histogram(
            "http_request_duration_seconds",
            "Time until the response ended (streams included).",
            ["method", "route"],
            namespace=ns,
            registry=reg,
        )
        self.logins = Counter(
            "logins", "Login attempts by outcome.", ["outcome"], namespace=ns, registry=reg
        )
        self.refusals = Counter(
            "refusals",
            "Requests refused (IP, rate limit, busy, ...).",
            ["reason"],
            namespace=ns,
            registry=reg,
        )
        self.errors = Counter("errors", "Errors by kind.", ["kind"], namespace=ns, registry=reg)
        self.generations = Counter(
            "generations", "Finished generations.", ["finish_reason"], namespace=ns, registry=reg
        )
        self.tokens = Counter("generated_tokens", "Tokens generated.", namespace=ns, registry=reg)
        self.time_to_first_token = Histogram(
            "time_to_first_token_seconds",
            "From request to first token (queue wait included).",
            namespace=ns,
            registry=reg,
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
        )
        self.tokens_per_second = Histogram(
            "tokens_per_second",
            "Decoding speed after the first token, per generation.",
            namespace=ns,
            registry=reg,
            buckets=(1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256),
        )
        self.active_sessions = Gauge(
            "active_sessions", "Live login sessions.", namespace=ns, registry=reg
        )
        self.queue_depth = Gauge(
            "queue_depth", "Generations waiting for a slot.", namespace=ns, registry=reg
        )
        self.in_flight = Gauge(
            "generations_in_flight", "Generations running now.", namespace=ns, registry=reg
        )

    def track_active_sessions(self, count: Callable[[], float]) -> None:
        """Read the session count from `count` at every scrape (e.g. the session store's count)."""
        self.active_sessions.set_function(_safe(count, "active_sessions"))

    def track_queue_depth(self, count: Callable[[], float]) -> None:
        self.queue_depth.set_function(_safe(count, "queue_depth"))

    def track_generations_in_flight(self, count: Callable[[], float]) -> None:
        self.in_flight.set_function(_safe(count, "generations_in_flight"))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else OTHER
        route = self._route(route)
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def record_login(self, outcome: str) -> None:
        """outcome: e.g. "success", "denied" (policy), "failed" (IdP or token error)."""
        self.logins.labels(self._small["login"](outcome)).inc()

    def record_refusal(self, reason: str) -> None:
        """reason: e.g. "ip_denied", "rate_limited", "unauthenticated", "busy", "too_long"."""
        self.refusals.labels(self._small["refusal"](reason)).inc()

    def record_error(self, kind: str) -> None:
        """kind: e.g. "engine", "unhandled", "database"."""
        self.errors.labels(self._small["error"](kind)).inc()

    def observe_turn(self, stats: GenerationStats, outcome: str) -> None:
        """A chat turn that started has ended (webui.chat_service.TurnObserver): its generation,
        and an engine error if its reply was saved as failed."""
        if outcome == "error":
            self.record_error("engine")
        self.observe_generation(stats)

    def observe_generation(self, stats: GenerationStats) -> None:
        """Record one finished generation from the engine's stats."""
        self.generations.labels(self._small["finish"](stats.finish_reason)).inc()
        self.tokens.inc(stats.completion_tokens)
        if stats.time_to_first_token is not None:
            self.time_to_first_token.observe(stats.time_to_first_token)
            decoding = stats.total_time - stats.time_to_first_token
            if stats.completion_tokens > 1 and decoding > 0:
                self.tokens_per_second.observe((stats.completion_tokens - 1) / decoding)


def _safe(count: Callable[[], float], name: str) -> Callable[[], float]:
    # A failing callback (database down) must not break the whole scrape: report NaN instead.
    def read() -> float:
        try:
            return float(count())
        except Exception:
            log.warning("metrics callback failed", extra={"gauge": name}, exc_info=True)
            return math.nan

    return read


class MetricsMiddleware:
    """Counts HTTP requests by method, route template and status, and times them."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry_root = scope.get("root_path", "")
        status = 500  # if the app fails before sending a response, the server answers 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception:
            self.metrics.record_error("unhandled")
            raise
        finally:
            route = route_template(scope, entry_root)
            self.metrics.observe_request(
                scope["method"], route, status, time.perf_counter() - started
            )


def route_template(scope: Scope, entry_root_path: str = "") -> str:
    """The matched route's path template, with the prefixes of the mounts passed on the way.

    Starlette's routers leave the innermost matched route in scope["route"] and the mounts'
    prefixes in scope["root_path"]; nothing here is taken from the raw request path.
    """
    root = scope.get("root_path", "")
    prefix = root[len(entry_root_path) :] if root.startswith(entry_root_path) else ""
    if "://" in prefix:  # Gradio's mount carries the configured public URL as its root path
        prefix = urlsplit(prefix).path.rstrip("/")
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{prefix}/{{path}}"  # e.g. static files: root_path already holds the mount's path
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return prefix + path
    endpoint = scope.get("endpoint")  # plain Starlette routes record only their endpoint function
    if inspect.isfunction(endpoint) or inspect.ismethod(endpoint):
        return f"{prefix}<{endpoint.__name__}>"
    return f"{prefix}/{{path}}" if prefix else UNMATCHED


def metrics_router(metrics: Metrics, path: str = "/metrics") -> APIRouter:
    """GET /metrics in Prometheus text (or OpenMetrics when the scraper asks for it)."""
    router = APIRouter()

    @router.get(path, include_in_schema=False)
    def scrape(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(metrics.registry), media_type=content_type)

    return router
