"""Mount the chat page (Gradio Blocks) into the app, behind the Gradio door and with Gradio's holes closed."""

from __future__ import annotations

from datetime import UTC, datetime

import gradio as gr
from fastapi import FastAPI

from auth.gradio_binding import SessionHashBindings
from auth.gradio_doors import guard_gradio_mount
from core.audit import AuditSink
from webui.i18n import build_i18n
from webui.session_watch import session_watch_head
from webui.unexpected_errors import log_gradio_tracebacks, unexpected_error

QUEUE_SIZE = 64  # Gradio's queue bound; the engine's own queue decides who waits for generation


def mount_chat_page(
    app: FastAPI,
    page: gr.Blocks,
    *,
    base_url: str,
    theme: gr.themes.Base,
    bindings: SessionHashBindings,
    audit: AuditSink,
) -> None:
    """Mount `page` at "/" of `app` (after every other route), guarded by the Gradio door."""
    # api_open=False: /gradio_api/run/* would otherwise bypass the queue and its limits.
    page.queue(api_open=False, max_size=QUEUE_SIZE, default_concurrency_limit=1)
    gr.mount_gradio_app(
        app,
        page,
        path="/",
        # A full URL: Gradio would otherwise build links from X-Forwarded-Host sent by any client.
        root_path=base_url,
        ssr_mode=False,  # 6.31 has a Host-forgery advisory in SSR and run history
        run_history=False,
        enable_monitoring=False,
        mcp_server=False,
        show_error=False,
        max_file_size="1kb",  # no feature takes uploads
        footer_links=["api"],
        i18n=build_i18n(),
        theme=theme,
        head=session_watch_head(base_url),
    )
    gradio_app = guard_gradio_mount(app, page, bindings=bindings, audit=audit, clock=_utc_now)
    log_gradio_tracebacks()
    for served in (app, gradio_app):
        served.add_exception_handler(Exception, unexpected_error)


def _utc_now() -> datetime:
    return datetime.now(UTC)
