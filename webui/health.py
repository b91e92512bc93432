"""Liveness and readiness probes: instant, and never a generation (a per-probe generation is a DoS vector)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from core.blocking_io import run_blocking
from model.engine import Engine


def health_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        # async: a plain `def` probe would wait for a thread behind Gradio's streaming replies.
        if await run_blocking(engine.ready):  # a remote engine asks its server
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    return router
