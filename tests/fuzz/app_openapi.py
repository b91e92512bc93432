"""An OpenAPI document of every route the built app mounts, Gradio's included, for the fuzzer.

The app serves no OpenAPI document (openapi_url=None), so the test builds one from the app's routes:
it walks app.routes, descending into Mounts (through the Gradio door to Gradio's own FastAPI app).
FastAPI routes are described by FastAPI's own `get_openapi`, hidden ones (include_in_schema=False)
included; plain Starlette routes by the table below. `mounted_operations` lists what the app
mounts, so a test can check that nothing mounted is missing from the document.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import Mount, Route

ANY_JSON: dict[str, Any] = {}  # JSON Schema for any value
_TEXT = {"type": "string"}

# Starlette routes (the login flow's, Gradio's own /openapi.json): what each reads of a request.
STARLETTE_ROUTES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/login"): {"query": {"next": _TEXT}},
    ("GET", "/auth/callback"): {
        "query": {"state": _TEXT, "code": _TEXT, "error": _TEXT, "iss": _TEXT},
    },
    ("POST", "/logout"): {
        "form": {"csrf_token": _TEXT},
        "headers": {"X-CSRF-Token": _TEXT, "Referer": _TEXT},
    },
    ("POST", "/auth/backchannel-logout"): {"form": {"logout_token": _TEXT}},
    ("GET", "/logged-out"): {},
    ("GET", "/openapi.json"): {},
}

# Gradio's queue/join body as the page and gradio_client send it; Gradio's own model types `data`
# as a list of objects, which would keep the fuzzer from sending the strings and nulls it carries.
JOIN_BODY = {
    "type": "object",
    "properties": {
        "data": {"type": "array", "items": ANY_JSON},
        "fn_index": {"type": "integer"},
        "session_hash": _TEXT,
        "event_data": ANY_JSON,
        "trigger_id": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    },
    "required": ["data", "fn_index", "session_hash"],
}
REFINED_BODIES = {("POST", "/gradio_api/queue/join"): JOIN_BODY}
# FastAPI routes that read query parameters from request.query_params, out of get_openapi's sight.
EXTRA_QUERY = {
    ("GET", "/admin/audit.csv"): {
        name: _TEXT for name in ("since", "until", "actor", "type", "text")
    },
}


def mounted_operations(app: Any) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route the app mounts; an app a Mount serves that has no
    routes to walk is listed as ("ANY", its prefix + "/{path}"), which no document describes."""
    operations = set()
    for prefix, context in _walk(_routes_of(app)):
        route = context.original_route
        if isinstance(route, Mount):
            operations.add(("ANY", prefix + route.path + "/{path}"))
        elif isinstance(route, APIRoute | Route):
            for method in context.methods or ():
                operations.add((method, prefix + context.path_format))
        else:
            operations.add((type(route).__name__.upper(), prefix + str(context.path)))
    return operations


def openapi_document(app: Any, known: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The document; `known` maps a parameter or body property name to values a caller may have
    learnt (another user's ids), which the fuzzer then sends besides generated ones."""
    groups: dict[str, list[Any]] = {}
    starlette: list[tuple[str, str]] = []
    for prefix, context in _walk(_routes_of(app)):
        route = context.original_route
        if isinstance(route, APIRoute):
            groups.setdefault(prefix, []).append(_described(context))
        elif isinstance(route, Route):
            starlette.extend((m, prefix + context.path_format) for m in context.methods or ())
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {}
    for prefix, routes in groups.items():
        part = get_openapi(title="app", version="0", routes=routes)
        for path, operations in part["paths"].items():
            paths.setdefault(prefix + path, {}).update(operations)
        for kind, entries in part.get("components", {}).items():
            components.setdefault(kind, {}).update(entries)
    for method, path in starlette:
        paths.setdefault(path, {})[method.lower()] = _starlette_operation(method, path)
    for (method, path), body in REFINED_BODIES.items():
        if method.lower() in paths.get(path, {}):
            paths[path][method.lower()]["requestBody"] = _json_body(body)
    for (method, path), query in EXTRA_QUERY.items():
        if method.lower() in paths.get(path, {}):
            paths[path][method.lower()].setdefault("parameters", []).extend(
                {"name": name, "in": "query", "required": False, "schema": schema}
                for name, schema in query.items()
            )
    document = {
        "openapi": "3.1.0",
        "info": {"title": "chat app, as mounted", "version": "0"},
        "paths": paths,
        "components": components,
    }
    if known:
        _widen(document, known)
    return document


def _routes_of(app: Any) -> list[Any]:
    """The routes of an ASGI app, looking through wrappers (the Gradio door, test watches)."""
    seen = app
    while not hasattr(seen, "routes") and hasattr(seen, "app"):
        seen = seen.app
    return list(getattr(seen, "routes", []))


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, RouteContext]]:
    for context in iter_route_contexts(routes):
        route = context.original_route
        inner = _routes_of(route.app) if isinstance(route, Mount) else []
        if inner:
            yield from _walk(inner, prefix + route.path)
        else:
            yield prefix, context


def _described(context: RouteContext) -> Any:
    """The route as get_openapi needs it; a hidden route is described like any other."""
    if context.include_in_schema:
        return context
    route = copy.copy(context.original_route)
    route.include_in_schema = True
    if route.path_format != context.path_format:
        raise AssertionError(f"{context.path_format}: an included router's prefix to describe")
    return route


def _starlette_operation(method: str, path: str) -> dict[str, Any]:
    reads = STARLETTE_ROUTES.get(("GET" if method == "HEAD" else method, path))
    if reads is None:
        raise AssertionError(f"{method} {path}: describe it in STARLETTE_ROUTES")
    parameters = [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in reads.get("query", {}).items()
    ] + [
        {"name": name, "in": "header", "required": False, "schema": schema}
        for name, schema in reads.get("headers", {}).items()
    ]
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}{path.replace('/', '_')}",
        "parameters": parameters,
        "responses": {"default": {"description": "any answer"}},
    }
    if "form" in reads:
        form = {"type": "object", "properties": reads["form"]}
        operation["requestBody"] = {
            "content": {"application/x-www-form-urlencoded": {"schema": form}}
        }
    return operation


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _widen(document: dict[str, Any], known: Mapping[str, Sequence[str]]) -> None:
    """Let each parameter or JSON body property named in `known` also take the known values."""

    def widened(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        if name not in known:
            return schema
        return {"anyOf": [{"enum": list(known[name])}, schema]}

    bodies = list(document["components"].get("schemas", {}).values())
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = widened(parameter["name"], parameter.get("schema", {}))
            content = operation.get("requestBody", {}).get("content", {})
            bodies.extend(media.get("schema", {}) for media in content.values())
    for schema in bodies:  # inline bodies and the models they refer to
        properties = schema.get("properties", {})
        for name, value in list(properties.items()):
            properties[name] = widened(name, value)
