"""Gradio's event stream never carries exception text: its unexpected-error message is rewritten."""

from __future__ import annotations

import json
import logging

from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from webui.stream_errors import StreamErrorFilter

LEAK = "Cancelled via cancel scope 7fc7 by <Task name='Task-52' coro=<... /.venv/lib/uvicorn/h11_impl.py"


def stream_app(events: list[dict], split_at: int) -> StreamErrorFilter:
    async def data(_request):
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode()

        async def chunks():
            yield body[:split_at]  # an event cut across two chunks, as a network write may
            yield body[split_at:]

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return StreamErrorFilter(Starlette(routes=[Route("/gradio_api/queue/data", data)]))


def test_an_unexpected_error_reaches_the_reader_as_a_sentence_and_the_log_as_a_line(caplog):
    events = [
        {"msg": "process_generating", "output": {"data": ["partial"]}},
        {"msg": "unexpected_error", "message": LEAK, "success": False},
        {"msg": "close_stream"},
    ]
    app = stream_app(events, split_at=70)
    with caplog.at_level(logging.WARNING, "chat.gradio"), TestClient(app) as client:
        body = client.get(
            "/gradio_api/queue/data", headers={"accept-language": "zh-CN,zh;q=0.9"}
        ).text
    sent = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert [e["msg"] for e in sent] == ["process_generating", "unexpected_error", "close_stream"]
    assert sent[0] == events[0]  # everything else passes untouched
    assert "Cancelled" not in body and ".venv" not in body and "Task" not in body
    assert "回复意外中断" in sent[1]["message"]  # in the reader's language
    [record] = [r for r in caplog.records if r.name == "chat.gradio"]
    assert "Cancelled via cancel scope" in record.error  # the details go to one log line


def test_other_paths_pass_through_untouched():
    async def page(_request):
        return StreamingResponse(iter([b'data: {"msg": "unexpected_error"}\n\n']))

    app = StreamErrorFilter(Starlette(routes=[Route("/other", page)]))
    with TestClient(app) as client:
        assert client.get("/other").text == 'data: {"msg": "unexpected_error"}\n\n'
