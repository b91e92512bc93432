"""Incremental detokenization that never splits a multi-byte character.

Byte-level BPE tokens can end in the middle of a UTF-8 sequence (one Chinese character is often
two or three tokens), so decoding token by token would show U+FFFD. We keep a small window of
recent ids and only emit text once it no longer ends in a partial character (the offset scheme
of text-generation-inference; written here because transformers' streamers hold text back until
a space, which delays English output and bundles CJK oddly).
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    def __init__(self, tokenizer: Any, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special_tokens
        self._ids: list[int] = []
        self._prefix = 0  # start of the window decoded for context
        self._read = 0  # end of the text already emitted
        self._prefix_text = ""  # decode of ids[prefix:read], cached: it changes only on emit

    def push(self, token_id: int) -> str:
        """Add one token id; return newly complete text (often "", never a partial character)."""
        self._ids.append(token_id)
        new_text = self._decode(self._ids[self._prefix :])
        if len(new_text) > len(self._prefix_text) and not new_text.endswith(REPLACEMENT):
            return self._advance(new_text[len(self._prefix_text) :])
        return ""

    def flush(self) -> str:
        """Return whatever is still held back, less a character the last tokens left incomplete
        (a reply cut by its token limit mid-character): it can never be completed, and U+FFFD
        would be shown and saved in its place."""
        new_text = self._decode(self._ids[self._prefix :])
        return self._advance(new_text[len(self._prefix_text) :].rstrip(REPLACEMENT))

    def _advance(self, delta: str) -> str:
        self._prefix, self._read = self._read, len(self._ids)
        self._prefix_text = self._decode(self._ids[self._prefix : self._read])
        return delta

    def _decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip_special)
