"""The language of a page: Simplified Chinese or English; the person's choice, else Accept-Language.

One rule for every page (`resolve_locale`): the language cookie when it names a locale we have,
else the browser's Accept-Language. The cookie mirrors a choice saved per user
(core.preferences), so pages rendered before the user is known (signed out, refused, the
development login) follow it too. It is not a secret: anything other than an exact supported
locale is ignored, so a forged or corrupted cookie can only pick one of our two languages.

Pages in guards/ and auth/ are handed English sentences by the code that refuses or signs out; a
`Catalog` translates them keyed by the English sentence itself (gettext's msgid convention), so the
callers stay plain English and each package keeps its own table without importing webui/.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import Scope

ENGLISH = "en"
CHINESE = "zh-CN"
SUPPORTED = (ENGLISH, CHINESE)
LANGUAGE_COOKIE = "lang"
_COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest lifetime browsers keep (RFC 6265bis)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def pick_locale(accept_language: str | None) -> str:
    """The best of our locales for an Accept-Language header; English when nothing matches."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return CHINESE
        if tag.startswith("en"):
            return ENGLISH
    return ENGLISH


def chosen_locale(value: str | None) -> str | None:
    """The supported locale `value` names exactly (a cookie or a stored choice); None for anything else."""
    return value if value in SUPPORTED else None


def resolve_locale(cookie: str | None, accept_language: str | None) -> str:
    """The page language: the language cookie if it is valid, else Accept-Language."""
    return chosen_locale(cookie) or pick_locale(accept_language)


class _HeaderMap(Protocol):
    def get(self, key: str, default: None = None) -> str | None: ...


def locale_of_headers(headers: _HeaderMap) -> str:
    """The page language for a request with these (case-insensitive) headers."""
    cookies = cookie_parser(headers.get("cookie") or "")
    return resolve_locale(cookies.get(LANGUAGE_COOKIE), headers.get("accept-language"))


def locale_of(scope: Scope) -> str:
    """The page language for this request (middlewares and server-rendered pages)."""
    return locale_of_headers(Headers(scope=scope))


def request_locale(request: object) -> str:
    """The page language for a Starlette request, a gr.Request (live or unpickled by Gradio's
    queue, whose headers are then a plain lower-case dict)."""
    headers = getattr(request, "headers", None)  # a gr.Request without its request has none
    return locale_of_headers(headers) if headers is not None else ENGLISH


@dataclass(frozen=True)
class LanguageCookie:
    """Sets and clears the language cookie: Lax, HttpOnly (the server writes every script that
    needs the language), Secure when the session cookie is, scoped to the app's root path."""

    path: str = "/"
    secure: bool = False

    def set(self, response: Response, locale: str) -> None:
        chosen = chosen_locale(locale)
        if chosen is None:  # only our own fixed strings ever reach a Set-Cookie header
            raise ValueError(f"not a supported locale: {locale[:20]!r}")
        response.set_cookie(
            LANGUAGE_COOKIE,
            chosen,
            max_age=_COOKIE_MAX_AGE,
            path=self.path,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            LANGUAGE_COOKIE, path=self.path, secure=self.secure, httponly=True, samesite="lax"
        )


class Catalog:
    """Chinese for English sentences; "{name}" in a sentence stands for any value, carried over."""

    def __init__(self, chinese: Mapping[str, str]) -> None:
        self._exact = {en: zh for en, zh in chinese.items() if not _PLACEHOLDER.search(en)}
        self._patterns = [
            (_pattern(en), zh) for en, zh in chinese.items() if _PLACEHOLDER.search(en)
        ]

    def translate(self, text: str, locale: str) -> str:
        """`text` in `locale`; English (unchanged) when the catalog has no translation of it."""
        if locale != CHINESE:
            return text
        if text in self._exact:
            return self._exact[text]
        for pattern, zh in self._patterns:
            found = pattern.fullmatch(text)
            if found:
                return zh.format(**found.groupdict())
        return text

    def untranslated(self, texts: Iterable[str]) -> list[str]:
        """Those of `texts` this catalog leaves in English."""
        return [t for t in texts if self.translate(t, CHINESE) == t]


def _pattern(template: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(template)  # literal, name, literal, name, ..., literal
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)
