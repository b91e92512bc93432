"""The few HTML pages the login flow shows itself: refused, signed out, unavailable.

Plain server-rendered HTML with no scripts or external assets, so these pages need no public static
routes; every inserted value is escaped.
"""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1 style="font-size: 1.4rem">{title}</h1>
<p>{message}</p>
{extra}
</body></html>
"""


def auth_page(
    title: str,
    message: str,
    *,
    status: int = 200,
    link: tuple[str, str] | None = None,
    reference: str | None = None,
) -> HTMLResponse:
    """A small page; `link` is (href, label), `reference` a request id people can quote to support."""
    extra = ""
    if link is not None:
        extra += f'<p><a href="{escape(link[0])}">{escape(link[1])}</a></p>'
    if reference:
        extra += f"<p><small>Reference: {escape(reference)}</small></p>"
    body = _TEMPLATE.format(title=escape(title), message=escape(message), extra=extra)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
