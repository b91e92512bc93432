"""Liveness and readiness probes: instant, and never a generation (a per-probe generation is a DoS vector).

/healthz says the process serves. /readyz says it can do its work: the engine is ready and every
dependency it needs (the database; Redis when configured) answers, so a load balancer stops sending
traffic during an outage and resumes by itself when it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from core.blocking_io import run_blocking
from model.engine import Engine

log = logging.getLogger("chat.health")

Probe = Callable[[], bool]


def health_router(engine: Engine, dependencies: Mapping[str, Probe] | None = None) -> APIRouter:
    router = APIRouter()
    probes: dict[str, Probe] = {"engine": engine.ready, **(dependencies or {})}
    failing: set[str] = set()  # logged when it changes, not at every probe

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        # async: a plain `def` probe would wait for a thread behind Gradio's streaming replies.
        now = {name for name, probe in probes.items() if not await run_blocking(probe)}
        if now != failing:
            log.warning("readiness changed", extra={"failing": sorted(now)})
            failing.clear()
            failing.update(now)
        if now:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return router
