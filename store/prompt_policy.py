"""Block rules checked before generation: configured keywords and regular expressions."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from store.settings import compile_patterns


@dataclass(frozen=True)
class Decision:
    blocked: bool
    rule: str | None = (
        None  # e.g. "keyword:1" or "pattern:0": an index, so the audit does not echo the word
    )


ALLOWED = Decision(blocked=False)


def normalize(text: str) -> str:
    """Fold case and width and drop invisible characters, so "ＳＥＣＲＥＴ" or "se\u200bcret" still match."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


class PromptPolicy:
    """Refuses prompts matching a rule; regexes are compiled (and validated) once, at construction."""

    def __init__(
        self, block_keywords: Iterable[str] = (), block_patterns: Iterable[str] = ()
    ) -> None:
        self._keywords = tuple(normalize(k) for k in block_keywords)
        if any(not k.strip() for k in self._keywords):
            raise ValueError("block_keywords: keywords must not be empty")
        self._patterns = compile_patterns(tuple(block_patterns), "block_patterns")

    @property
    def active(self) -> bool:
        return bool(self._keywords or self._patterns)

    def check(self, text: str) -> Decision:
        normalized = normalize(text)
        for index, keyword in enumerate(self._keywords):
            if keyword in normalized:
                return Decision(blocked=True, rule=f"keyword:{index}")
        for index, pattern in enumerate(self._patterns):
            # Try the text as typed and as normalized: a pattern may rely on either form.
            if pattern.search(text) or pattern.search(normalized):
                return Decision(blocked=True, rule=f"pattern:{index}")
        return ALLOWED
