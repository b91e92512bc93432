"""The app factory: FastAPI with the hardened Gradio page mounted, built from settings and services."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import gradio as gr
from fastapi import FastAPI

from config import Settings
from model.engine import Engine
from store.events import AuditSink
from webui.admin_service import AdminService
from webui.chat_page import PageOptions, build_chat_page
from webui.chat_service import ChatService, History, TurnGuards
from webui.export_routes import export_router
from webui.health import health_router
from webui.i18n import build_i18n
from webui.request_id import RequestIdMiddleware

log = logging.getLogger("chat.app")


@dataclass(frozen=True)
class Services:
    """Everything the app needs, built by launch.py (or a test) and closed by the app's lifespan."""

    engine: Engine
    history: History
    audit: AuditSink
    guards: TurnGuards | None = None
    admin: AdminService | None = None


def create_app(settings: Settings, services: Services) -> FastAPI:
    """Build the whole ASGI app; no I/O happens until uvicorn starts it."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        log.info("shutting down: stopping running generations")
        services.engine.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(health_router(services.engine))

    app.include_router(export_router(services.history, services.admin))

    chat = ChatService(
        services.engine, services.history, services.audit, settings.generation, services.guards
    )
    base = settings.server.public_url + settings.server.root_path
    page = build_chat_page(
        chat,
        services.history,
        PageOptions(
            title=settings.ui.title,
            export_base=base,
            demo_model=settings.model.source == "tiny-random",
            dev_login=settings.oidc.issuer == "embedded",
        ),
        services.admin,
    )
    # api_open=False: /gradio_api/run/* would otherwise bypass the queue and its limits.
    page.queue(api_open=False, max_size=64, default_concurrency_limit=1)
    gr.mount_gradio_app(
        app,
        page,
        path="/",
        # A full URL: Gradio would otherwise build links from X-Forwarded-Host sent by any client.
        root_path=base,
        ssr_mode=False,  # 6.31 has a Host-forgery advisory in SSR and run history
        run_history=False,
        enable_monitoring=False,
        mcp_server=False,
        show_error=False,
        max_file_size="1kb",  # no feature takes uploads
        footer_links=["api"],
        i18n=build_i18n(),
    )
    app.add_middleware(RequestIdMiddleware)
    return app
