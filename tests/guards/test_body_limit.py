"""Oversized bodies get a clear 413, whether declared up front or streamed in chunks."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from guards.body_limit import BodyLimitMiddleware
from tests.auth.loopback_server import client_from, serve

LIMIT = 1024


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"received": len(await request.body())})


def starlette_app() -> Starlette:
    return Starlette(
        routes=[Route("/echo", echo_size, methods=["POST"])],
        middleware=[Middleware(BodyLimitMiddleware, max_bytes=LIMIT)],
    )


class Message(BaseModel):
    text: str


def fastapi_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT)

    @app.post("/echo")
    def echo(message: Message) -> dict:
        return {"received": len(message.text)}

    return app


def chunks(total: int, size: int = 256):
    for _ in range(total // size):
        yield b"x" * size


def test_body_within_limit_reaches_the_app():
    client = TestClient(starlette_app())
    assert client.post("/echo", content=b"x" * LIMIT).json() == {"received": LIMIT}


@pytest.mark.parametrize("declared", [str(LIMIT + 1), "99999999999", "-5", "abc"])
def test_declared_oversize_or_bogus_length_refused_before_reading(declared):
    client = TestClient(starlette_app())
    response = client.post("/echo", content=b"x", headers={"Content-Length": declared})
    assert response.status_code == 413
    assert f"the limit is {LIMIT} bytes" in response.json()["detail"]


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app])
def test_streamed_oversize_body_over_real_socket_gets_413(make_app):
    with serve(make_app()) as url, client_from("127.0.0.1", url) as client:
        response = client.post(
            "/echo", content=chunks(LIMIT * 8), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    # Starlette's own handler renders the HTTPException as text, FastAPI's (our app) as JSON.
    assert "Request body too large" in response.text
    if make_app is fastapi_app:
        assert response.json()["detail"].startswith("Request body too large")


def test_streamed_body_within_limit_is_fine():
    with serve(starlette_app()) as url, client_from("127.0.0.1", url) as client:
        response = client.post("/echo", content=chunks(LIMIT))
    assert response.json() == {"received": LIMIT}
