"""Incremental decoding never shows half a character, and loses nothing."""

from __future__ import annotations

from model.stream_decoder import IncrementalDecoder

CHINESE = "你好，世界！人工智能正在改变我们的工作方式。😀 Done."


def stream(tokenizer, ids: list[int]) -> list[str]:
    decoder = IncrementalDecoder(tokenizer)
    deltas = [decoder.push(i) for i in ids]
    deltas.append(decoder.flush())
    return [d for d in deltas if d]


def test_chinese_is_never_split(tokenizer) -> None:
    ids = tokenizer.encode(CHINESE, add_special_tokens=False)
    # The test means something only if characters do span several tokens.
    naive = [tokenizer.decode([i]) for i in ids]
    assert any("\ufffd" in piece for piece in naive)
    deltas = stream(tokenizer, ids)
    assert "".join(deltas) == CHINESE
    assert all("\ufffd" not in d for d in deltas)
    assert len(deltas) > 5  # it streams, not one chunk at the end


def test_special_tokens_are_not_shown(tokenizer) -> None:
    ids = [*tokenizer.encode("ok", add_special_tokens=False), tokenizer.eos_token_id]
    assert "".join(stream(tokenizer, ids)) == "ok"


def test_a_character_left_incomplete_at_the_end_is_dropped_not_shown_as_a_replacement(
    tokenizer,
) -> None:
    ids = tokenizer.encode("你好", add_special_tokens=False)
    truncated = ids[:-1]  # a reply cut by its token limit in the middle of 好
    assert tokenizer.decode(truncated).endswith("\ufffd")
    deltas = stream(tokenizer, truncated)
    assert "".join(deltas) == "你"
    assert all("\ufffd" not in d for d in deltas)


def test_random_ids_concatenate_to_the_full_decode(tokenizer) -> None:
    ids = [(i * 7919) % len(tokenizer) for i in range(400)]
    whole = tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")  # as cut at the end
    assert "".join(stream(tokenizer, ids)) == whole
