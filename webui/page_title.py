"""The chat page's title (the browser tab's name) in the page language (core.locale).

Gradio 6.31 sets document.title from the Blocks' one `title` string and does not translate it
(its I18n covers component labels, and an I18nData title would show its raw key in the page's
meta tags). This own-origin script, added to the page's head, puts the title in the request's
page language back whenever Gradio writes it; own-origin, so the CSP's script-src 'self' allows it.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from webui.i18n import EN, request_locale, text
from webui.page_scripts import script_tag

SCRIPT_PATH = "/page-title.js"

_SCRIPT = """(() => {
  const title = %s;
  const keep = () => { if (document.title !== title) document.title = title; };
  keep();
  new MutationObserver(keep).observe(document.head, {childList: true, subtree: true, characterData: true});
})();
"""


def page_title_router(configured: str) -> APIRouter:
    """GET /page-title.js; the shipped title is translated, a title set in [ui] is kept as it is."""
    router = APIRouter()

    @router.get(SCRIPT_PATH, include_in_schema=False)
    async def page_title(request: Request) -> Response:
        locale = request_locale(request)
        title = text("title", locale) if configured == EN["title"] else configured
        return Response(
            _SCRIPT % json.dumps(title, ensure_ascii=False),
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "Vary": "Cookie, Accept-Language"},
        )

    return router


def page_title_head(base_url: str) -> str:
    """The tag for Gradio's `head`."""
    return script_tag(base_url, SCRIPT_PATH)
