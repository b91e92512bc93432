"""The language of a server-rendered page: Simplified Chinese or English, from Accept-Language.

Pages in guards/ and auth/ are handed English sentences by the code that refuses or signs out; a
`Catalog` translates them keyed by the English sentence itself (gettext's msgid convention), so the
callers stay plain English and each package keeps its own table without importing webui/.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from starlette.datastructures import Headers
from starlette.types import Scope

ENGLISH = "en"
CHINESE = "zh-CN"
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


def locale_of(scope: Scope) -> str:
    """The page language for this request."""
    return pick_locale(Headers(scope=scope).get("accept-language"))


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
