"""The fuzzer's OpenAPI document describes every route the app mounts, so new routes get fuzzed."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from tests.fuzz.app_openapi import (
    EXTRA_QUERY,
    REFINED_BODIES,
    STARLETTE_ROUTES,
    mounted_operations,
    openapi_document,
)


def documented(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


async def hello(request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def test_every_mounted_route_is_in_the_document_and_nothing_else(fuzz_target):
    mounted = mounted_operations(fuzz_target.app)
    document = openapi_document(fuzz_target.app)
    assert mounted - documented(document) == set(), "mounted but not fuzzed"
    assert documented(document) - mounted == set(), "described but not mounted"
    described = {*STARLETTE_ROUTES, *REFINED_BODIES, *EXTRA_QUERY}
    assert described - mounted == set(), "a hand description of a route the app no longer mounts"
    # The routes the product serves are there, the app's own and Gradio's behind its mount.
    assert {
        ("GET", "/export/{conversation_id}.{fmt}"),
        ("POST", "/logout"),
        ("POST", "/gradio_api/queue/join"),
        ("GET", "/gradio_api/heartbeat/{session_hash}"),
        ("POST", "/gradio_api/upload"),
    } <= mounted


def test_schemathesis_loads_every_operation(fuzz_target):
    schema = schemathesis.openapi.from_dict(openapi_document(fuzz_target.app))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(mounted_operations(fuzz_target.app))


def test_a_route_without_a_description_stops_the_document():
    app = FastAPI(routes=[Route("/undescribed", hello)])
    with pytest.raises(AssertionError, match="STARLETTE_ROUTES"):
        openapi_document(app)


@pytest.mark.parametrize(
    ("route", "listed"),
    [
        (Mount("/files", app=StaticFiles(directory=".")), ("ANY", "/files/{path}")),
        (WebSocketRoute("/socket", hello), ("WEBSOCKETROUTE", "/socket")),
    ],
)
def test_a_mounted_app_or_socket_the_document_cannot_describe_is_reported_missing(route, listed):
    app = Starlette(routes=[route])
    assert listed in mounted_operations(app) - documented(openapi_document(app))


def test_routes_inside_mounts_and_hidden_routes_are_described():
    inner = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    inner.get("/hidden", include_in_schema=False)(lambda: "x")
    inner.post("/join")(lambda body: body)
    app = Starlette(routes=[Mount("/api", app=inner)])
    assert documented(openapi_document(app)) == {("GET", "/api/hidden"), ("POST", "/api/join")}
