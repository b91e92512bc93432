"""Text from users, IdPs and scripts as the admin and token tabs show it: literally, and visibly.

Audit records and IdP names carry whatever a caller sent. A right-to-left override or a line
separator could make an admin misread a record, and Markdown in a display name could put a link
into a confirmation; so tables show such characters escaped and messages show names literally.
"""

from __future__ import annotations

import unicodedata

_MARKDOWN = set("\\`*_{}[]()<>#+-.!|~@:")


def printable(value: str) -> str:
    """`value` with control, format and separator characters (e.g. U+202E, U+2028, U+0085)
    written as escapes, so a table cell shows what was recorded and nothing hides in it."""
    return "".join(f"\\u{ord(c):04x}" if _hidden(c) else c for c in value)


def _hidden(character: str) -> bool:
    category = unicodedata.category(character)
    return category[0] == "C" or category in ("Zl", "Zp")


def markdown_literal(value: str) -> str:
    """`value` shown literally inside a Markdown message: no links, emphasis or HTML."""
    return "".join("\\" + c if c in _MARKDOWN else c for c in printable(value))
