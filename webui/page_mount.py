"""Mount the chat page (Gradio Blocks) into the app, behind the Gradio door and with Gradio's holes closed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import gradio as gr
from fastapi import FastAPI

from auth.gradio_binding import SessionHashBindings
from auth.gradio_doors import JoinLimiter, guard_gradio_mount
from core.audit import AuditSink
from model.settings import GenerationSettings
from webui.absent_modules import mark_absent
from webui.chat_layout_css import CHAT_LAYOUT_CSS
from webui.gradio_state import PageSessions, check_supported
from webui.i18n import build_i18n
from webui.language_switch import LANGUAGE_SWITCH_CSS
from webui.page_settings import PageSettings
from webui.page_title import page_title_head, page_title_router
from webui.reader_time_zone import time_zone_head, time_zone_router
from webui.session_watch import session_watch_head
from webui.settings import UISettings
from webui.stop_key import stop_key_head, stop_key_router
from webui.stream_errors import StreamErrorFilter
from webui.unexpected_errors import log_gradio_tracebacks, unexpected_error


def mount_chat_page(
    app: FastAPI,
    page: gr.Blocks,
    *,
    base_url: str,
    theme: gr.themes.Base,
    bindings: SessionHashBindings,
    audit: AuditSink,
    limits: PageSettings | None = None,
    ui: UISettings | None = None,
    generation: GenerationSettings | None = None,
    join_limiter: JoinLimiter | None = None,
) -> None:
    """Mount `page` at "/" of `app` (after every other route), guarded by the Gradio door.

    Gradio's per-tab state expires and is capped as `limits` ([page]) say, swept for the app's life;
    the sweeper is `app.state.page_sessions` (webui.gradio_state.PageSessions)."""
    limits, ui, generation = (
        limits or PageSettings(),
        ui or UISettings(),
        generation or GenerationSettings(),
    )
    check_supported()  # before anything is mounted: fail at start-up, not at the first request
    mark_absent()  # Gradio imports matplotlib per streamed update; absent, that must cost nothing
    # Gradio runs at most max_threads events at once, all handlers together (40 unless launch()
    # sets it; queue() sizes its worker slots from it, so it is set first). Every chat turn the
    # engine admits holds one while it waits in line and streams; the other handlers get their own.
    page.max_threads = generation.admitted_at_most + ui.handler_workers
    # api_open=False: /gradio_api/run/* would otherwise bypass the queue and its limits.
    # default_concurrency_limit=None: page loads and refreshes run as they come, bounded together
    # by the workers (limited, each waiting event gets a new estimate whenever one completes).
    page.queue(api_open=False, max_size=ui.queue_size, default_concurrency_limit=None)
    app.include_router(page_title_router(page.title))  # before the mount at "/", which takes all
    app.include_router(stop_key_router())
    app.include_router(time_zone_router())
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
        # No footer: Gradio's generated API page shows sample code without the Authorization
        # header our API requires and always lists an MCP tab (its front end has no switch for
        # either); the API tokens tab shows how to call the API with a token.
        footer_links=[],
        i18n=build_i18n(),
        theme=theme,
        head=session_watch_head(base_url)
        + page_title_head(base_url)
        + stop_key_head(base_url)
        + time_zone_head(base_url),
        css=CHAT_LAYOUT_CSS + LANGUAGE_SWITCH_CSS,
    )
    gradio_app = guard_gradio_mount(
        app,
        page,
        bindings=bindings,
        audit=audit,
        clock=_utc_now,
        limiter=join_limiter,
        inner=StreamErrorFilter,  # no exception text in the event stream
    )
    sessions = PageSessions(
        gradio_app, page, ttl=limits.state_ttl, max_sessions=limits.max_sessions
    )
    app.state.page_sessions = sessions
    _sweep_for_app_life(app, sessions)
    log_gradio_tracebacks()
    for served in (app, gradio_app):
        served.add_exception_handler(Exception, unexpected_error)


def _sweep_for_app_life(app: FastAPI, sessions: PageSessions) -> None:
    """Run the sweep inside the app's lifespan (gr.mount_gradio_app extends it the same way)."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(served: FastAPI) -> AsyncIterator[object]:
        async with inner(served) as state, sessions.running():
            yield state

    app.router.lifespan_context = lifespan


def _utc_now() -> datetime:
    return datetime.now(UTC)
