"""The few HTML pages the login flow shows itself: refused, signed out, unavailable.

Plain server-rendered HTML with no scripts or external assets, so these pages need no public static
routes; every inserted value is escaped. The page is written in the language of the request it
answers (Accept-Language: Chinese or English, auth.page_text), chosen when it is sent, so the code
that builds it passes English and needs no request.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from starlette.responses import HTMLResponse
from starlette.types import Receive, Scope, Send

from auth.page_text import AUTH_TEXT
from core.locale import ENGLISH, locale_of

_TEMPLATE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1 style="font-size: 1.4rem">{title}</h1>
<p>{message}</p>
{extra}
</body></html>
"""


@dataclass(frozen=True)
class PageText:
    """What an auth page says, in English; `link` is (href, label)."""

    title: str
    message: str
    link: tuple[str, str] | None = None
    reference: str | None = None

    def render(self, locale: str) -> str:
        """The page's HTML in `locale` ("en" or "zh-CN")."""

        def say(text: str) -> str:
            return escape(AUTH_TEXT.translate(text, locale))

        extra = ""
        if self.link is not None:
            extra += f'<p><a href="{escape(self.link[0])}">{say(self.link[1])}</a></p>'
        if self.reference:
            reference = AUTH_TEXT.translate("Reference: {reference}", locale)
            extra += f"<p><small>{escape(reference.format(reference=self.reference))}</small></p>"
        return _TEMPLATE.format(
            lang=locale, title=say(self.title), message=say(self.message), extra=extra
        )


class AuthPage(HTMLResponse):
    """An auth page that renders itself in the language of the request it is sent to."""

    def __init__(self, text: PageText, status: int) -> None:
        self.text = text
        headers = {"Cache-Control": "no-store", "Vary": "Accept-Language"}
        super().__init__(text.render(ENGLISH), status_code=status, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.body = self.render(self.text.render(locale_of(scope)))
        self.headers["content-length"] = str(len(self.body))
        await super().__call__(scope, receive, send)


def auth_page(
    title: str,
    message: str,
    *,
    status: int = 200,
    link: tuple[str, str] | None = None,
    reference: str | None = None,
) -> HTMLResponse:
    """A small page; `link` is (href, label), `reference` a request id people can quote to support."""
    return AuthPage(PageText(title, message, link, reference), status)
