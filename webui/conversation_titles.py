"""A new conversation's automatic title: its first message as plain words, short enough for a list."""

from __future__ import annotations

import re
import unicodedata

TITLE_CHARS = 48  # about what the sidebar shows on two lines at desktop width (a CJK character: 2)
# A cut on a word boundary may give back at most this share of the title (else cut mid-word).
WORD_SLACK = 0.4
FALLBACK = "New chat"

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINE_MARKUP = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>+\s?|[-*+]\s+(?:\[[ xX]\]\s+)?|\d{1,3}[.)]\s+)+")
_RULE = re.compile(r"^\s*([-*_=])(\s*\1){2,}\s*$")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_REFERENCE_LINK = re.compile(r"!?\[([^\]]*)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_EMPHASIS = re.compile(r"(\*\*|__|~~|\*|_|`+)(?=\S)(.+?)(?<=\S)\1")
_STRAY_MARKS = re.compile(r"(?<!\w)[*_~`#]+|[*_~`]+(?!\w)")


def auto_title(message: str, limit: int = TITLE_CHARS) -> str:
    """Plain text of `message` (Markdown headings, emphasis, links, code fences and list markers
    removed), cut to `limit` characters on a word boundary where there is one, with an ellipsis."""
    words = " ".join(_plain_lines(message)).split()
    plain = " ".join(words)
    if not plain:
        return FALLBACK
    fits = _chars_within(plain, limit)
    if fits == len(plain):
        return plain
    cut = plain[: fits + 1]
    space = cut.rfind(" ")
    # Text without spaces (Chinese, a long URL) is cut where the limit falls.
    head = cut[:space] if space >= fits * (1 - WORD_SLACK) else cut[:fits]
    return head.rstrip(" ,.;:!?，。；：！？、-—") + "…"


def _chars_within(text: str, width: int) -> int:
    """How many leading characters of `text` fit in `width` columns (wide characters take two)."""
    used = 0
    for count, char in enumerate(text):
        used += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        if used > width:
            return count
    return len(text)


def _plain_lines(message: str) -> list[str]:
    lines = []
    for line in message.splitlines():
        if _FENCE.match(line) or _RULE.match(line):
            continue  # the fence itself; the code inside is kept as words
        line = _LINE_MARKUP.sub("", line)
        line = _IMAGE_OR_LINK.sub(r"\1", line)
        line = _REFERENCE_LINK.sub(r"\1", line)
        line = _AUTOLINK.sub(r"\1", line)
        line = _HTML_TAG.sub(" ", line)
        for _ in range(3):  # nested emphasis: ***bold italic***, **`code`**
            line = _EMPHASIS.sub(r"\2", line)
        line = _STRAY_MARKS.sub("", line)
        if line.strip():
            lines.append(line.strip())
    return lines
