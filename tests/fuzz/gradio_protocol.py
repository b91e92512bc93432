"""The Gradio queue protocol as the page and gradio_client speak it, one browser tab at a time.

    POST /gradio_api/queue/join   {data, fn_index, session_hash, event_data, trigger_id} -> {event_id}
    GET  /gradio_api/queue/data   ?session_hash=...  -> server-sent events until close_stream
    GET  /gradio_api/heartbeat/{session_hash}        -> server-sent events, forever
    POST /gradio_api/cancel       {session_hash, fn_index, event_id}
    POST /gradio_api/reset        {event_id}

Every call returns an Exchange (tests.fuzz.invariants) so that the caller can check the answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from tests.fuzz.invariants import Exchange

STREAM_SECONDS = 10.0  # a stream is read for this long at most; the engine answers instantly
IDLE_SECONDS = 0.5  # queue/data stays open, silent, while a tab has nothing queued
# A joined event may run silently for a while (a render builds the whole page; a loaded machine
# is slow): a stream that owes a result is read until it closes, up to STREAM_SECONDS.


class GradioTab:
    """One tab (session hash) of one caller's client."""

    def __init__(self, client: httpx.Client, session_hash: str, caller: str = "") -> None:
        self.client = client
        self.session_hash = session_hash
        self.caller = caller

    def config(self) -> dict[str, Any]:
        response = self.client.get("/config")
        response.raise_for_status()
        return response.json()

    def api_index(self, api_name: str) -> int:
        dependencies = self.config()["dependencies"]
        return next(d["id"] for d in dependencies if d.get("api_name") == api_name)

    def render(self) -> dict[str, Any]:
        """Load the page's per-user part (the tabs) as the browser does: Gradio's render config."""
        [load] = [
            d["id"]
            for d in self.config()["dependencies"]
            if [t[1] for t in d["targets"]] == ["load"]
        ]
        joined = self.join(load, [])
        assert joined.status_code == 200, joined.text
        seen = list(self.messages(result_expected=True))
        for message in seen:
            if message.get("msg") == "process_completed":
                return message["output"]["render_config"]
        raise AssertionError(f"the page did not render: {seen}")

    def join(self, fn_index: Any, data: Any, **extra: Any) -> httpx.Response:
        body = {"data": data, "fn_index": fn_index, "session_hash": self.session_hash, **extra}
        return self.client.post("/gradio_api/queue/join", json=body)

    def messages(
        self, session_hash: str | None = None, *, result_expected: bool = False
    ) -> Iterator[dict[str, Any]]:
        """queue/data's messages until the stream closes."""
        stream = self.read_stream(session_hash, result_expected=result_expected)
        return stream_messages(stream.response_body)

    def read_stream(
        self, session_hash: str | None = None, *, result_expected: bool = False
    ) -> Exchange:
        """queue/data as one Exchange; the body is every line read until it closed (or timed
        out). With `result_expected` (the tab joined an event), silence is waited out."""
        params = {"session_hash": session_hash or self.session_hash}
        idle = STREAM_SECONDS if result_expected else IDLE_SECONDS
        return self._stream("/gradio_api/queue/data", params, until_closed=True, idle=idle)

    def heartbeat(self, session_hash: str | None = None) -> Exchange:
        """The heartbeat stream's status and first line; it never ends by itself."""
        path = f"/gradio_api/heartbeat/{quote(session_hash or self.session_hash, safe='')}"
        return self._stream(path, {}, until_closed=False, idle=IDLE_SECONDS)

    def _stream(
        self, path: str, params: dict[str, str], *, until_closed: bool, idle: float
    ) -> Exchange:
        request = self.client.build_request("GET", path, params=params)
        exchange = Exchange(self.caller, "GET", str(request.url), dict(request.headers))
        lines: list[str] = []
        deadline = time.monotonic() + STREAM_SECONDS
        timeout = httpx.Timeout(STREAM_SECONDS, read=idle)
        with self.client.stream("GET", path, params=params, timeout=timeout) as stream:
            exchange.status = stream.status_code
            exchange.response_headers = dict(stream.headers)
            try:
                for line in stream.iter_lines():
                    lines.append(line)
                    if not until_closed and line.strip():
                        break
                    if '"close_stream"' in line or time.monotonic() > deadline:
                        break
            except httpx.ReadTimeout:
                lines.append(f"(nothing more for {idle} s)")
        exchange.response_body = "\n".join(lines)
        return exchange


def stream_messages(body: str) -> Iterator[dict[str, Any]]:
    """The JSON messages of a server-sent event stream's text."""
    for line in body.split("\n"):  # not splitlines(): JSON keeps U+2028 raw
        if line.startswith("data:"):
            yield json.loads(line[5:])


def exchange_of(caller: str, response: httpx.Response) -> Exchange:
    """An Exchange from a complete (non-streamed) httpx response."""
    request = response.request
    return Exchange(
        caller=caller,
        method=request.method,
        url=str(request.url),
        request_headers=dict(request.headers),
        request_body=request.content.decode("utf-8", "replace"),
        status=response.status_code,
        response_body=response.text,
        response_headers=dict(response.headers),
    )
