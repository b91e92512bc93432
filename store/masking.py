"""Sensitive-data masking for everything written to the audit trail and logs.

Offline regexes plus checksums (Luhn, the resident-ID check digit) so that ordinary numbers survive.
Boundaries are explicit look-arounds on ASCII classes rather than \\b, because \\b and \\w treat CJK
characters as word characters and would miss "电话13800138000" or mask half of a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from store.settings import compile_patterns

SECRET = "[SECRET]"  # noqa: S105 (a label, not a password)
EMAIL = "[EMAIL]"
ID_NUMBER = "[ID]"
CARD = "[CARD]"
PHONE = "[PHONE]"
MASKED = "[MASKED]"

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def resident_id_valid(candidate: str) -> bool:
    """GB 11643 check: 17 digits, a plausible birth date, and the weighted check character."""
    digits, check = candidate[:17], candidate[17].upper()
    if not digits.isdigit():
        return False
    month, day = int(candidate[10:12]), int(candidate[12:14])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False
    total = sum(int(d) * w for d, w in zip(digits, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == check


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _only_digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    label: str
    accept: Callable[[str], bool] | None = None  # extra check on the matched text


# Order matters: secrets and e-mails first (they contain digits), ID numbers before cards
# (an 18-digit ID can pass Luhn), international phones before cards, mainland mobiles last.
_BUILT_IN = (
    _Rule(
        re.compile(r"(?i)(?<![A-Za-z0-9])bearer\s+[A-Za-z0-9._~+/=-]{8,}"),
        SECRET,
    ),
    _Rule(
        re.compile(
            r"(?i)(?<![A-Za-z0-9])(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)"
            r"(?:\"|')?\s*[:=]\s*(?:\"|')?[^\s\"',;]{4,}"
        ),
        SECRET,
    ),
    _Rule(re.compile(r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}"), SECRET),
    _Rule(re.compile(r"(?<![A-Za-z0-9_])chat_[A-Za-z0-9_-]{20,}"), SECRET),
    _Rule(
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
        SECRET,
    ),
    _Rule(
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
            r"(?![A-Za-z0-9-])"
        ),
        EMAIL,
    ),
    _Rule(
        re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])"), ID_NUMBER, resident_id_valid
    ),
    _Rule(
        re.compile(r"(?<![0-9A-Za-z+])\+\d{1,3}(?:[ -]?\(?\d{1,4}\)?){2,5}(?![0-9])"),
        PHONE,
        lambda text: 8 <= len(_only_digits(text)) <= 15,
    ),
    _Rule(
        re.compile(r"(?<![0-9A-Za-z])(?:\d[ -]?){12,18}\d(?![0-9A-Za-z])"),
        CARD,
        lambda text: luhn_valid(_only_digits(text)),
    ),
    _Rule(
        re.compile(r"(?<![0-9])(?:0086[ -]?|86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?![0-9])"),
        PHONE,
    ),
)


class Masker:
    """Replaces personal data and credentials with labels like [PHONE]; extra regexes become [MASKED]."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        extra = compile_patterns(tuple(extra_patterns), "mask_patterns")
        self._rules = _BUILT_IN + tuple(_Rule(p, MASKED) for p in extra)

    def mask(self, text: str) -> str:
        for rule in self._rules:
            text = rule.pattern.sub(_replacer(rule), text)
        return text

    def mask_value(self, value: Any) -> Any:
        """Mask every string inside JSON-like data (dict keys are left alone; they are our field names)."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {key: self.mask_value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_value(item) for item in value]
        return value


def _replacer(rule: _Rule) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        if rule.accept is not None and not rule.accept(match.group(0)):
            return match.group(0)
        return rule.label

    return replace
