"""Gradio's queue protocol as the browser and gradio_client speak it, for tests of the whole app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


def join(client: httpx.Client, session_hash: str, fn_index: int, data: list) -> httpx.Response:
    return client.post(
        "/gradio_api/queue/join",
        json={"data": data, "fn_index": fn_index, "session_hash": session_hash},
    )


def messages(client: httpx.Client, session_hash: str) -> Iterator[dict[str, Any]]:
    """queue/data's messages for one session, until the stream closes."""
    with client.stream(
        "GET", "/gradio_api/queue/data", params={"session_hash": session_hash}
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                yield message
                if message.get("msg") == "close_stream":
                    return


def completed(client: httpx.Client, session_hash: str) -> dict[str, Any]:
    """The next event's process_completed message in this session."""
    for message in messages(client, session_hash):
        if message.get("msg") == "process_completed":
            return message
    raise AssertionError("the event did not complete")


def render_page(client: httpx.Client, session_hash: str) -> dict[str, Any]:
    """Load the page's per-user part as the browser does; returns Gradio's render config."""
    config = client.get("/config").json()
    [load] = [d["id"] for d in config["dependencies"] if [t[1] for t in d["targets"]] == ["load"]]
    assert join(client, session_hash, load, []).status_code == 200
    return completed(client, session_hash)["output"]["render_config"]


def api_index(client: httpx.Client, api_name: str) -> int:
    config = client.get("/config").json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)
