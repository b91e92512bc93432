"""GET /signout: a confirmation page whose button POSTs to /logout with the session's CSRF token.

The chat page links here because Gradio's HTML component needs 'unsafe-eval', which our CSP refuses.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from core.request_facts import csrf_token
from webui.i18n import request_locale, text

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1 style="font-size: 1.4rem">{title}</h1>
<form method="post" action="{action}">
<input type="hidden" name="csrf_token" value="{token}">
<button type="submit" id="confirm-logout" style="font-size: 1rem; padding: .5rem 1.5rem">{button}</button>
<a href="{back}" style="margin-left: 1rem">{cancel}</a>
</form></body></html>
"""


def signout_router(base_url: str) -> APIRouter:
    router = APIRouter()

    @router.get("/signout", include_in_schema=False)
    async def signout(request: Request) -> Response:
        token = csrf_token(request)  # NotAuthenticated without a cookie session: the app's 401
        locale = request_locale(request)
        body = _PAGE.format(
            lang=locale,
            title=escape(text("logout_confirm", locale)),
            action=escape(base_url + "/logout"),
            token=escape(token),
            button=escape(text("logout", locale)),
            back=escape(base_url + "/"),
            cancel=escape(text("cancel", locale)),
        )
        return HTMLResponse(body, headers={"Cache-Control": "no-store", "Vary": "Accept-Language"})

    return router
