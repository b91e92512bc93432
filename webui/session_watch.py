"""When the session ends while the page is open, the page's next call goes to the login page, and
what the user had typed comes back after they sign in again.

Gradio's front end shows nothing useful for a 401 from its API (the session was revoked by an admin,
ended by a logout elsewhere, or timed out): the click just does nothing. This small own-origin
script, which Gradio adds to the page's head from its `head` setting, wraps fetch: a 401 from this
origin sends the browser to the login page, which comes back to the chat (or says why not).

Before leaving it keeps the message box's text in the tab's sessionStorage (never sent anywhere),
with who was signed in and when. Back on the chat page, the text is put back in the box and a short
notice says why they had to sign in again; only for the same signed-in name, within 15 minutes, so
that on a shared computer the next person does not see it. Either way it is then removed.
"""

from __future__ import annotations

import json

from fastapi import APIRouter

from webui.i18n import text
from webui.page_scripts import script_route, script_tag

SCRIPT_PATH = "/session-watch.js"
KEEP_DRAFT_MS = 15 * 60 * 1000

_SCRIPT = """(() => {
  const login = %(login)s;
  const notices = %(notices)s;
  const KEY = "chat-signed-in-again";
  const box = () => document.querySelector("#message textarea");
  const who = () => (document.querySelector("#user-bar") || {}).textContent || "";
  let typed = "";
  document.addEventListener("input", (event) => {
    if (event.target === box()) typed = event.target.value;
  }, true);

  const fetchFirst = window.fetch.bind(window);
  let leaving = false;
  window.fetch = async (...args) => {
    const response = await fetchFirst(...args);
    const sameOrigin = new URL(response.url || location.href, location.href).origin === location.origin;
    if (response.status === 401 && sameOrigin && !leaving) {
      leaving = true;
      const draft = (box() && box().value) || typed;
      try {
        sessionStorage.setItem(KEY, JSON.stringify({draft, who: who(), at: Date.now()}));
      } catch (e) { /* storage off: the draft cannot be kept */ }
      location.assign(login + "?next=" + encodeURIComponent(location.pathname + location.search));
    }
    return response;
  };

  let kept = null;
  try { kept = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) { kept = null; }
  if (!kept) return;
  const started = Date.now();
  const timer = setInterval(() => {
    const el = box();
    if (!el && Date.now() - started < 30000) return;  // the page renders its tabs after load
    clearInterval(timer);
    try { sessionStorage.removeItem(KEY); } catch (e) { /* nothing to clean */ }
    if (!el || who() !== kept.who || Date.now() - kept.at > %(keep_ms)d) return;
    if (kept.draft && !el.value) {
      const setValue = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value").set;
      setValue.call(el, kept.draft);
      el.dispatchEvent(new Event("input", {bubbles: true}));
    }
    const zh = (navigator.language || "").toLowerCase().startsWith("zh");
    const notice = document.createElement("div");
    notice.id = "signed-in-again";
    notice.setAttribute("role", "status");
    notice.style.cssText = "position:fixed;top:0.75rem;left:50%%;transform:translateX(-50%%);"
      + "z-index:1000;max-width:min(40rem,92vw);padding:0.75rem 2.5rem 0.75rem 1rem;"
      + "background:#fffbeb;color:#1f2937;border:1px solid #b45309;border-radius:0.5rem;"
      + "box-shadow:0 2px 8px rgba(0,0,0,0.15);font:inherit";
    notice.textContent = zh ? notices.zh : notices.en;
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "\u00d7";
    close.setAttribute("aria-label", zh ? notices.closeZh : notices.closeEn);
    close.style.cssText = "position:absolute;top:0.25rem;right:0.5rem;border:0;background:none;"
      + "font-size:1.25rem;cursor:pointer;color:#1f2937";
    close.addEventListener("click", () => notice.remove());
    notice.appendChild(close);
    document.body.appendChild(notice);
    setTimeout(() => notice.remove(), 20000);
  }, 200);
})();
"""


def session_watch_router(base_url: str) -> APIRouter:
    """GET /session-watch.js (behind the gate like every page asset)."""
    notices = {
        "en": text("signed_in_again", "en"),
        "zh": text("signed_in_again", "zh-CN"),
        "closeEn": text("close", "en"),
        "closeZh": text("close", "zh-CN"),
    }
    body = _SCRIPT % {
        "login": json.dumps(base_url + "/login"),
        "notices": json.dumps(notices, ensure_ascii=False),
        "keep_ms": KEEP_DRAFT_MS,
    }
    return script_route(SCRIPT_PATH, body)


def session_watch_head(base_url: str) -> str:
    """The tag for Gradio's `head`; an own-origin file, so the CSP's script-src 'self' allows it."""
    return script_tag(base_url, SCRIPT_PATH)
