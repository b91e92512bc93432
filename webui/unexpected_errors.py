"""Unexpected errors as one JSON log line and a short answer with the request id; never a traceback.

Two places print tracebacks unless told otherwise:
- Starlette's ServerErrorMiddleware answers "Internal Server Error" in plain text (in both the app
  and Gradio's mounted sub-app). The handler here answers JSON with the request id instead; uvicorn
  then logs the exception once, through the JSON log handler.
- Gradio 6.31's queue calls `traceback.print_exc()` when a handler raises (anything but
  `gr.Error(print_exception=False)`), which writes plain text to stderr. Those calls are sent to the
  "chat.gradio" logger instead. The check below stops start-up if a Gradio upgrade removes the
  module attribute this relies on, rather than letting tracebacks reach stderr again unnoticed.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from typing import Any

from gradio.exceptions import Error as GradioError
from starlette.requests import Request
from starlette.responses import JSONResponse

from core.request_facts import facts_of
from core.shared_state import SharedStateUnavailable
from core.store_outage import StoreUnreachable

log = logging.getLogger("chat.gradio")

# Gradio modules that print handler tracebacks (checked against gradio 6.31).
_PRINTING_MODULES = ("gradio.queueing", "gradio.routes", "gradio.route_utils")

MESSAGE = (
    "Something went wrong on our side. Try again; if it keeps happening, "
    "give your administrator this request id."
)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    body = {
        "error": "internal_error",
        "message": MESSAGE,
        "request_id": facts_of(request).request_id,
    }
    return JSONResponse(body, status_code=500, headers={"Cache-Control": "no-store"})


class _LoggedTraceback:
    """Stands in for the `traceback` module inside Gradio: print_exc logs; the rest is unchanged."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    def print_exc(self, *args: Any, **kwargs: Any) -> None:
        failure = sys.exc_info()[1]
        if isinstance(failure, (StoreUnreachable, SharedStateUnavailable)):
            # An outage already says itself in one line (and in /readyz): no traceback per call.
            log.warning("a Gradio handler met an outage: %s", type(failure).__name__)
            return
        if isinstance(failure, GradioError):
            # Gradio refusing an input (a value not among the choices, out of bounds): the caller
            # got the message; a traceback per refusal would let anyone flood the log.
            log.warning("Gradio refused an input: %s", str(failure)[:200])
            return
        log.error("a Gradio handler failed", exc_info=True)


def log_gradio_tracebacks() -> None:
    """Send Gradio's printed handler tracebacks to the JSON log (idempotent)."""
    for name in _PRINTING_MODULES:
        module = importlib.import_module(name)
        if not hasattr(module, "traceback"):
            raise RuntimeError(
                f"{name} no longer imports traceback: review webui/unexpected_errors.py"
            )
        module.traceback = _LoggedTraceback()  # type: ignore[attr-defined]
