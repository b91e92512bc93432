"""The chat page's Gradio labels in the page language (core.locale: the language cookie, else
Accept-Language), not in whatever language the browser itself is set to.

Gradio 6.31's front end picks its I18n locale once, while it boots, from `navigator.language`
(js/core/src/i18n.ts `setupi18n`: the exact tag if Gradio ships it, else its first subtag, else
"en"); it reads no cookie, storage or URL parameter, and its Settings panel's language picker lasts
only until the next load. The `head` scripts of the Blocks are added after that choice, too late.
So this module puts one own-origin script into the page's HTML itself, before Gradio's module
script: it answers `navigator.language` with the language the server resolved for this request,
and it carries the language switch's click to the server (webui.language_switch) and reloads.
"""

from __future__ import annotations

import json
import re

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.app_path import app_path
from core.locale import ENGLISH, SUPPORTED, request_locale
from webui.i18n import text
from webui.page_scripts import script_tag

SCRIPT_PATH = "/page-language.js"
CHOOSE_PATH = "/language"  # POST {"locale": ...}: webui.language_switch
SWITCH_ID = "language-switch"

_HEAD = re.compile(rb"<head(?:\s[^>]*)?>", re.IGNORECASE)

_SCRIPT = """(() => {
  const locale = %(locale)s;
  // Gradio reads this once, as it boots: the page's language, whatever the browser's.
  Object.defineProperty(navigator, "language", {get: () => locale, configurable: true});
  Object.defineProperty(navigator, "languages", {get: () => [locale], configurable: true});
  document.documentElement.lang = locale;

  const names = %(names)s;
  const endpoint = %(endpoint)s;
  const label = () => {
    // Gradio's radio inputs share no name and no group: say what the two options are.
    const box = document.getElementById(%(switch_id)s);
    const first = box && box.querySelector("input[type=radio]");
    const options = first && first.closest("label") && first.closest("label").parentElement;
    if (!options || options.getAttribute("role") === "radiogroup") return;
    options.setAttribute("role", "radiogroup");
    options.setAttribute("aria-label", names.label);
    for (const input of options.querySelectorAll("input[type=radio]")) {
      const text = input.parentElement && input.parentElement.querySelector("span");
      if (text) text.lang = input.value;  // read "简体中文" as Chinese in an English page
    }
  };
  // Gradio 6.31 writes a few names in English whatever the language: the chat window's, each
  // message's ("user's message: ..."), a toast's title (from its type) and its close button.
  // Said in the page's.
  const said = names.gradio;
  const rename = (selector, prefix, words) => {
    for (const el of document.querySelectorAll(selector)) {
      const name = el.getAttribute("aria-label") || "";
      if (name.startsWith(prefix)) el.setAttribute("aria-label", words + name.slice(prefix.length));
    }
  };
  const relabel = () => {
    if (!said) return;
    rename('[role=log][aria-label="chatbot conversation"]', "chatbot conversation", said.log);
    rename("[data-testid=user][aria-label]", "user's message: ", said.user);
    rename("[data-testid=bot][aria-label]", "bot's message: ", said.bot);
    rename('[data-testid=toast-close][aria-label="Close"]', "Close", said.close);
    for (const title of document.querySelectorAll(".toast-title")) {
      const words = title.firstChild;  // the text node Gradio wrote; its other nodes stay
      const type = words && words.nodeType === Node.TEXT_NODE ? words.nodeValue.trim() : "";
      if (said[type]) words.nodeValue = said[type] + " ";
    }
  };
  new MutationObserver(() => { label(); relabel(); }).observe(document.documentElement, {
    childList: true, subtree: true, attributes: true, attributeFilter: ["aria-label"],
  });

  let sending = false;
  document.addEventListener("change", async (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.closest("#" + %(switch_id)s)) return;
    if (sending || input.value === locale || !names.choices.includes(input.value)) return;
    sending = true;
    try {
      await fetch(endpoint, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({locale: input.value}),
      });
    } finally {
      location.reload();  // the whole page in the new language; unchanged if the save failed
    }
  }, true);
})();
"""


def page_language_router(base_url: str) -> APIRouter:
    """GET /page-language.js, written per request (behind the gate like every page asset)."""
    router = APIRouter()

    @router.get(SCRIPT_PATH, include_in_schema=False)
    async def page_language(request: Request) -> Response:
        locale = request_locale(request)
        names = {
            "label": text("language", locale),
            "choices": list(SUPPORTED),
            "gradio": _gradio_names(locale),
        }
        body = _SCRIPT % {
            "locale": json.dumps(locale),
            "names": json.dumps(names, ensure_ascii=False),
            "endpoint": json.dumps(base_url + CHOOSE_PATH),
            "switch_id": json.dumps(SWITCH_ID),
        }
        return Response(
            body,
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "Vary": "Cookie, Accept-Language"},
        )

    return router


class PageLanguageMiddleware:
    """Adds the script's tag right after <head> in the chat page's HTML (GET "/", 200, text/html),
    so it runs before Gradio's deferred module script."""

    def __init__(self, app: ASGIApp, base_url: str) -> None:
        self.app = app
        self.tag = script_tag(base_url, SCRIPT_PATH).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or app_path(scope) != "/":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_with_script(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] == 200 and _plain_html(MutableHeaders(scope=message)):
                    start = message  # held until the whole page is here
                    return
                await send(message)
            elif start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body = _HEAD.sub(lambda head: head.group(0) + self.tag, b"".join(chunks), 1)
                    MutableHeaders(scope=start)["Content-Length"] = str(len(body))
                    await send(start)
                    await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, send_with_script)


def _gradio_names(locale: str) -> dict[str, str] | None:
    """What the page script says instead of Gradio's English-only names; None in English."""
    if locale == ENGLISH:
        return None
    return {
        "log": text("chat_log_label", locale),
        "user": text("user_message_label", locale),
        "bot": text("bot_message_label", locale),
        "close": text("close", locale),
        "Warning": text("toast_warning", locale),
        "Error": text("toast_error", locale),
        "Info": text("toast_info", locale),
    }


def _plain_html(headers: MutableHeaders) -> bool:
    return headers.get("content-type", "").startswith("text/html") and (
        headers.get("content-encoding", "identity") == "identity"
    )
