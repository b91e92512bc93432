"""The language switch in the chat page's user bar, and the route that keeps the choice.

Choosing a language POSTs it to /language (webui.page_language's script does that on the radio's
change, then reloads): the choice is saved with the person (core.preferences), so it follows them
to another browser at sign-in, and mirrored in the language cookie, so every page of this browser,
signed-out ones included, is written in it. A route rather than a Gradio event, because a Gradio
event cannot set a cookie; JSON only, so a foreign page cannot post it as a form (and the origin
check and the SameSite session cookie refuse it anyway). Not audited: like renaming a
conversation, it is a person's own preference, not a security event.
"""

from __future__ import annotations

import gradio as gr
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from core.blocking_io import run_blocking
from core.locale import CHINESE, ENGLISH, SUPPORTED, LanguageCookie, chosen_locale
from core.preferences import UserPreferences
from core.request_facts import CurrentUser
from guards.json_body import BadJson, parse_json
from webui.chat_layout_css import PHONE
from webui.i18n import label
from webui.page_language import CHOOSE_PATH, SWITCH_ID

# Each language named in itself, so a person who cannot read the page can still find theirs.
CHOICES = [("English", ENGLISH), ("简体中文", CHINESE)]
_MAX_BODY = 256
# On a phone the user bar keeps to two lines, so the message box stays on the first screen: the
# name with Log out beside it, then the switch.
LANGUAGE_SWITCH_CSS = f"""
@media {PHONE} {{
  #user-bar {{
    display: grid !important; grid-template-columns: minmax(0, 1fr) auto;
    align-items: center; gap: var(--size-2) var(--size-3);
  }}
  #user-bar > * {{ min-width: 0 !important; }}
  #user-bar > :has(#logout) {{ grid-row: 1; grid-column: 2; }}
  #user-bar > :has(#{SWITCH_ID}) {{ grid-row: 2; grid-column: 1 / -1; }}
}}
"""
_REFUSED = {"error": f'Send JSON {{"locale": ...}} with one of: {", ".join(SUPPORTED)}.'}


def language_switch(locale: str) -> gr.Radio:
    """The switch, in the Blocks being built (the user bar); `locale` is the page's language now."""
    with gr.Column(scale=2, min_width=200, elem_id="language-column"):
        return gr.Radio(
            choices=CHOICES,
            value=locale,
            label=label("language"),
            show_label=False,
            container=False,
            interactive=True,  # no Gradio event listens: the page's script carries the change
            elem_id=SWITCH_ID,
        )


def language_router(preferences: UserPreferences | None, cookie: LanguageCookie) -> APIRouter:
    """POST /language: save the signed-in person's choice and set the cookie (204).

    Without a preference store (a test app) only the cookie is set."""
    router = APIRouter()

    @router.post(CHOOSE_PATH, include_in_schema=False)
    async def choose_language(request: Request, user: CurrentUser) -> Response:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse(_REFUSED, status_code=415)
        try:
            sent = parse_json(await request.body(), max_bytes=_MAX_BODY)
        except BadJson:
            return JSONResponse(_REFUSED, status_code=400)
        value = sent.get("locale") if isinstance(sent, dict) else None
        locale = chosen_locale(value) if isinstance(value, str) else None
        if locale is None:
            return JSONResponse(_REFUSED, status_code=400)
        if preferences is not None:
            await run_blocking(preferences.set_language, user.key, locale)
        response = Response(status_code=204, headers={"Cache-Control": "no-store"})
        cookie.set(response, locale)
        return response

    return router
