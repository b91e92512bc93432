"""The page's own scripts: served from this origin (behind the gate like every page asset) and
named in Gradio's `head`, because the CSP allows script-src 'self' and no inline script."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response


def script_tag(base_url: str, path: str) -> str:
    """The tag for Gradio's `head`."""
    return f'<script src="{base_url}{path}"></script>'


def script_route(path: str, body: str) -> APIRouter:
    """GET `path`: a fixed script."""
    router = APIRouter()

    @router.get(path, include_in_schema=False)
    async def script() -> Response:
        return Response(body, media_type="text/javascript")

    return router
