"""Per-conversation KV cache, so a follow-up turn prefills only the tokens that are new.

An entry is the exact token ids a finished generation's KV tensors cover (the prompt and the reply
so far), stored under (user_key, conversation_id): one user never reuses another's tensors. A new
prompt reuses the longest common token prefix with the entry. That is always exact, because a
position's keys and values depend only on the tokens up to it: an edited or deleted message, or
older turns dropped to fit max_input_tokens, shorten the common prefix (to the system prompt, at
worst), and the rest is prefilled as if nothing were cached. Memory is bounded by bytes, LRU first.

Size: fp32 KV costs layers x 2 x kv_heads x head_dim x 4 bytes per token, ~196 KB for
Qwen1.5-0.5B (24 layers, 16 kv heads of 64): 256 MB holds ~1,300 tokens of conversation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from model.slack_cache import KVPairs, stored_bytes

CacheKey = tuple[str, str]  # (user_key, conversation_id)


@dataclass(frozen=True)
class CachedPrefix:
    ids: tuple[int, ...]  # the tokens the tensors cover, in order
    kv: KVPairs
    nbytes: int


@dataclass(frozen=True)
class PrefixHit:
    tokens: int  # how many leading prompt tokens the KV covers
    kv: KVPairs  # views cut to `tokens`, now the caller's: it appends into their spare room


class PrefixCache:
    """LRU map of conversation -> CachedPrefix, bounded by the bytes of its tensors; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[CacheKey, CachedPrefix] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes_used = 0
        self.evictions = 0

    def take(self, key: CacheKey, prompt_ids: list[int]) -> PrefixHit | None:
        """Remove the conversation's entry and return the part that matches the prompt's start.

        At least one prompt token is left to prefill (its logits choose the first new token).
        """
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return None
            self.bytes_used -= entry.nbytes
        tokens = min(_common_prefix(entry.ids, prompt_ids), len(prompt_ids) - 1)
        if tokens <= 0:
            return None
        return PrefixHit(tokens, [(k[:, :, :tokens], v[:, :, :tokens]) for k, v in entry.kv])

    def put(self, key: CacheKey, ids: list[int], kv: KVPairs) -> None:
        """Store (or replace) the conversation's entry; evict least recently used ones to fit."""
        nbytes = stored_bytes(kv)  # spare room for the next message included
        if not kv or nbytes > self.max_bytes or any(k.shape[2] != len(ids) for k, _ in kv):
            self.discard(key)
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes_used -= old.nbytes
            self._entries[key] = CachedPrefix(tuple(ids), kv, nbytes)
            self.bytes_used += nbytes
            while self.bytes_used > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes_used -= evicted.nbytes
                self.evictions += 1

    def discard(self, key: CacheKey) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes_used -= old.nbytes

    def __contains__(self, key: CacheKey) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _common_prefix(a: tuple[int, ...], b: list[int]) -> int:
    limit = min(len(a), len(b))
    for i in range(limit):
        if a[i] != b[i]:
            return i
    return limit
