"""What a reader of a rendered page sees in English: the check behind every "fully translated" test."""

from __future__ import annotations

import html
import re

_HIDDEN = re.compile(r"<(script|style)\b.*?</\1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
# Three English words in a row is a sentence or a label someone forgot to translate; identifiers,
# addresses and reference numbers never have spaces in them.
_PHRASE = re.compile(r"[A-Za-z][A-Za-z'-]*(?:[ \t]+[A-Za-z][A-Za-z'-]*){2,}")


def visible_text(page: str) -> str:
    """The page's text as a browser shows it (no tags, scripts or styles; entities decoded)."""
    return html.unescape(_TAG.sub(" ", _HIDDEN.sub(" ", page)))


def english_phrases(page: str) -> list[str]:
    """Runs of three or more English words in the page's visible text, its <title> included."""
    return _PHRASE.findall(visible_text(page))


def html_lang(page: str) -> str | None:
    found = re.search(r'<html[^>]*\slang="([^"]+)"', page)
    return found.group(1) if found else None
