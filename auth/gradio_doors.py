"""The Gradio routes this product serves, and how each is tied to the signed-in user.

gr.mount_gradio_app adds about seventy routes; the page and gradio_client use the few below. The door
wraps the mounted Gradio app, so it sees exactly what would reach Gradio (after the auth gate has
named the user). Any other Gradio route answers 404 before Gradio sees it: uploads, `file=`, `/call`
and `/run`, media streams, component_server, monitoring, run history and the rest.

    route                              session hash               event id
    GET  / (no ?page=), /config,       (query, if one is named)   -
         /theme.css, /favicon.ico,
         /assets/*, /static/*,
         /gradio_api/info
    POST /gradio_api/queue/join        body, required             handed out: bound to the caller
    GET  /gradio_api/queue/data        query, required, joined    -
    GET  /gradio_api/heartbeat/{hash}  path                       -
    POST /gradio_api/cancel            body, required             body: must be the caller's
    POST /gradio_api/reset             -                          body: must be the caller's

("joined": Gradio's queue holds messages for the session, i.e. it has joined.)
A session hash is the caller's if nobody else used it first (auth.gradio_binding); an event id is
the caller's if Gradio handed it to them. Anything else is refused with 403 and audited. Bodies are
parsed within guards.json_body's limits and checked for the shape Gradio indexes into without checking
(the session hash, the function index, the number of inputs), so malformed input is a 4xx here, never
an exception inside Gradio.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Container, Mapping
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.gradio_binding import SessionHashBindings
from auth.gradio_inputs import input_problem
from core.app_path import app_path
from core.audit import ACCESS_DENIED, AuditEvent, AuditSink
from core.blocking_io import run_blocking
from core.identity import User
from core.request_facts import facts_of
from guards.json_body import MAX_BYTES, BadJson, parse_json
from guards.rate_limits import Allowed, Limited
from guards.refusals import log_refusal

_READ = frozenset({"GET", "HEAD"})
_POST = frozenset({"POST"})
# (methods, full-match path, kind). Kinds are handled in GradioDoor._check.
DOORS: tuple[tuple[frozenset[str], re.Pattern[str], str], ...] = (
    (_READ, re.compile(r"/|/config|/theme\.css|/favicon\.ico|/gradio_api/info"), "open"),
    (_READ, re.compile(r"/(?:assets|static)/[^\x00]+"), "open"),
    (_POST, re.compile(r"/gradio_api/queue/join"), "join"),
    (_READ, re.compile(r"/gradio_api/queue/data"), "data"),
    (_READ, re.compile(r"/gradio_api/heartbeat/(?P<hash>[^/]*)"), "heartbeat"),
    (_POST, re.compile(r"/gradio_api/cancel"), "cancel"),
    (_POST, re.compile(r"/gradio_api/reset"), "reset"),
)
# Gradio's page picks Math.random().toString(36) digits, gradio_client a UUID.
_SESSION_HASH = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class JoinLimiter(Protocol):
    """guards.rate_limits.RateLimiter: per-user limits on queue joins and new tabs."""

    def hit_gradio_join(
        self, user_key: str, ip: str | None, new_tab: bool
    ) -> Allowed | Limited: ...


class Refused(Exception):
    """A request the door answers itself: status, a short code and a message that says what to do."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        audit_outcome: str | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.audit_outcome = audit_outcome  # set for attempts on another user's hash or event
        self.retry_after = retry_after


class GradioDoor:
    """ASGI wrapper around the mounted Gradio app; see the module docstring for the rules."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        blocks: Any,
        bindings: SessionHashBindings,
        audit: AuditSink,
        clock: Callable[[], datetime],
        limiter: JoinLimiter | None = None,
    ) -> None:
        self.app = app
        self._blocks = blocks
        self._bindings = bindings
        self._audit = audit
        self._clock = clock
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # Gradio 6 uses none; the product serves none
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = facts_of(scope).user
        try:
            if user is None:  # the gate lets no anonymous request this far
                raise Refused(401, "not_authenticated", "Log in first (GET /login).")
            kind, match = _door(scope["method"], app_path(scope))
            body, receive = await self._body(kind, receive)
            await self._check(kind, match, scope, body, user)
        except Refused as refused:
            await self._refuse(scope, receive, send, user, refused)
            return
        if kind == "join":
            send = self._binding_event_ids(send, user)
        await self.app(scope, receive, send)

    async def _body(self, kind: str, receive: Receive) -> tuple[Any, Receive]:
        if kind not in ("join", "cancel", "reset"):
            return None, receive
        raw = await _read_body(receive)
        try:
            body = parse_json(raw)
        except BadJson as exc:
            raise Refused(400, "bad_request", str(exc)) from None
        if not isinstance(body, dict):
            raise Refused(400, "bad_request", "The body must be a JSON object.")
        return body, _replay(raw, receive)

    async def _check(
        self, kind: str, match: re.Match[str], scope: Scope, body: Any, user: User
    ) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if "page" in query and app_path(scope) == "/":
            # The product has one page; Gradio fails on names of pages it does not have.
            raise Refused(404, "not_found", "There is no such page.")
        hashes: list[Any] = query.get("session_hash", [])
        if len(hashes) > 1:
            raise Refused(400, "bad_request", "Name one session_hash.")
        if kind == "heartbeat":
            hashes.append(match.group("hash"))
        elif kind in ("join", "cancel"):
            hashes.append(body.get("session_hash"))  # required: None is refused below
        elif kind == "data" and not hashes:
            hashes.append(None)
        for session_hash in hashes:
            await self._claim(_valid_hash(session_hash), user)
        if kind == "data" and hashes[0] not in _queued_sessions(self._blocks):
            # Gradio answers this with a 404 raised after its event stream has started: a broken
            # response and an exception. Nothing can arrive for a session that never joined.
            raise Refused(404, "not_found", "Nothing is queued for this session: join first.")
        if kind == "join":
            _check_call(self._blocks, body)
            await self._count_join(body["session_hash"], scope, user)
        if kind in ("cancel", "reset"):
            if kind == "cancel" and not _is_int(body.get("fn_index")):
                raise Refused(400, "bad_request", "fn_index must be an integer.")
            await self._own_event(body.get("event_id"), user)

    async def _claim(self, session_hash: str, user: User) -> None:
        now = self._clock()
        if not await run_blocking(self._bindings.claim, session_hash, user.key, now):
            raise Refused(
                403,
                "forbidden",
                "This Gradio session belongs to another user. Reload the page.",
                "foreign_session_hash",
            )

    async def _count_join(self, session_hash: str, scope: Scope, user: User) -> None:
        if self._limiter is None:
            return
        new_tab = session_hash not in _queued_sessions(self._blocks)
        decision = await run_blocking(
            self._limiter.hit_gradio_join, user.key, facts_of(scope).client_ip, new_tab
        )
        if isinstance(decision, Limited):
            raise Refused(429, "rate_limited", decision.message, retry_after=decision.retry_after)

    async def _own_event(self, event_id: Any, user: User) -> None:
        if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
            raise Refused(400, "bad_request", "event_id must be the id the queue returned.")
        owner = await run_blocking(self._bindings.event_owner, event_id, self._clock())
        if owner is None:
            raise Refused(404, "not_found", "No such event: it has ended or never existed.")
        if owner != user.key:
            raise Refused(403, "forbidden", "This event belongs to another user.", "foreign_event")

    def _binding_event_ids(self, send: Send, user: User) -> Send:
        """Hold back queue/join's answer until the event id in it is bound to `user`."""
        held: list[Message] = []

        async def send_bound(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                held.append(message)
                return
            if not held:
                await send(message)
                return
            held.append(message)
            if message.get("more_body", False):
                return
            event_id = _event_id(b"".join(m.get("body", b"") for m in held[1:]))
            if event_id is not None:
                await run_blocking(self._bindings.bind_event, event_id, user.key, self._clock())
            for part in held:
                await send(part)
            held.clear()

        return send_bound

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, user: User | None, refused: Refused
    ) -> None:
        """Answer the refusal, then audit it: the answer never waits on the audit trail's write
        (under a flood of refusals, each waits its turn for the chain's head row)."""
        log_refusal(scope, refused.status, f"gradio: {refused.error}")
        body = {"error": refused.error, "message": refused.message}
        headers = {} if refused.retry_after is None else {"Retry-After": str(refused.retry_after)}
        await JSONResponse(body, refused.status, headers=headers)(scope, receive, send)
        if refused.audit_outcome is not None and user is not None:
            facts = facts_of(scope)
            event = AuditEvent(
                type=ACCESS_DENIED,
                actor=user.key,
                ip=facts.client_ip,
                request_id=facts.request_id,
                target=app_path(scope)[:256],
                outcome=refused.audit_outcome,
            )
            await run_blocking(self._audit.record, event)


def _door(method: str, path: str) -> tuple[str, re.Match[str]]:
    for methods, pattern, kind in DOORS:
        match = pattern.fullmatch(path)
        if match is not None:
            if method not in methods:
                raise Refused(405, "method_not_allowed", f"{method} is not used on this path.")
            return kind, match
    raise Refused(404, "not_found", "There is nothing at this address.")


def _valid_hash(session_hash: Any) -> str:
    if isinstance(session_hash, str) and _SESSION_HASH.fullmatch(session_hash):
        return session_hash
    raise Refused(
        400,
        "bad_request",
        "session_hash must be 1-64 letters, digits, '-' or '_'. Reload the page.",
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_call(blocks: Any, body: Mapping[str, Any]) -> None:
    """The function and inputs Gradio would look up without checking (KeyError, IndexError)."""
    fn_index = body.get("fn_index")
    if not _is_int(fn_index):
        raise Refused(400, "bad_request", "fn_index must be an integer.")
    fn = _session_functions(blocks, body["session_hash"]).get(fn_index)
    # A function without a backend (the Stop button's) only cancels others: the page posts
    # /cancel for it and never joins it; Gradio would raise on a join.
    if fn is None or fn.fn is None:
        raise Refused(404, "unknown_function", "This page has no such action. Reload the page.")
    data = body.get("data")
    if not isinstance(data, list):
        raise Refused(400, "bad_request", "data must be a list of the inputs.")
    if len(data) != len(fn.inputs):
        raise Refused(400, "bad_request", f"This action takes {len(fn.inputs)} inputs.")
    for component, value in zip(fn.inputs, data, strict=True):
        problem = input_problem(component, value)
        if problem:
            raise Refused(400, "bad_input", problem)


def _session_functions(blocks: Any, session_hash: str) -> Mapping[int, Any]:
    """The functions of one browser tab: Gradio 6.31 keeps per-tab copies (gr.render adds to them)
    in `state_holder.session_data`, and a tab it has not seen starts from `default_config`."""
    state = blocks.state_holder.session_data.get(session_hash)
    config = state.blocks_config if state is not None else blocks.default_config
    return config.fns


def _queued_sessions(blocks: Any) -> Container[str]:
    """Session hashes Gradio 6.31's queue holds messages for (created by queue/join)."""
    return blocks._queue.pending_messages_per_session


def _event_id(body: bytes) -> str | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    event_id = value.get("event_id") if isinstance(value, dict) else None
    return event_id if isinstance(event_id, str) else None


async def _read_body(receive: Receive) -> bytes:
    """The whole request body; past guards.json_body.MAX_BYTES it is refused."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # disconnected: what arrived is all there is
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BYTES:
            raise Refused(413, "body_too_large", f"The body is larger than {MAX_BYTES} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as streaming handlers expect

    return replay


def guard_gradio_mount(
    app: Any,
    blocks: Any,
    *,
    bindings: SessionHashBindings,
    audit: AuditSink,
    clock: Callable[[], datetime],
    limiter: JoinLimiter | None = None,
    inner: Callable[[ASGIApp], ASGIApp] | None = None,
) -> Any:
    """Put the door in front of the Gradio app that gr.mount_gradio_app mounted on `app` (and
    `inner` between them, if given); returns that Gradio app (a FastAPI app of its own)."""
    mounts = [
        route
        for route in app.router.routes
        if getattr(getattr(route, "app", None), "get_blocks", lambda: None)() is blocks
    ]
    if len(mounts) != 1:
        raise RuntimeError("expected exactly one mounted Gradio app")
    gradio_app = mounts[0].app
    mounts[0].app = GradioDoor(
        inner(gradio_app) if inner is not None else gradio_app,
        blocks=blocks,
        bindings=bindings,
        audit=audit,
        clock=clock,
        limiter=limiter,
    )
    return gradio_app
