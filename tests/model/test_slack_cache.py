"""The KV cache with spare room: appends write in place, results equal transformers' own cache."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from model.kv_batch import BatchedKV
from model.slack_cache import (
    SPARE_TOKENS,
    append,
    capacity,
    slack_cache,
    stored_bytes,
    with_room,
    with_room_for,
)


def kv(batch: int, tokens: int, seed: int = 0) -> torch.Tensor:
    return torch.randn((batch, 2, tokens, 4), generator=torch.Generator().manual_seed(seed))


def test_appending_fills_the_spare_room_in_place_then_grows_with_one_copy() -> None:
    first = append(torch.tensor([]), kv(1, 3))
    assert capacity(first) == 3 + SPARE_TOKENS
    grown = first
    for step in range(SPARE_TOKENS):
        new = kv(1, 1, seed=step + 1)
        before = grown.data_ptr()
        grown = append(grown, new)
        assert grown.data_ptr() == before  # no copy while there is room
        torch.testing.assert_close(grown[:, :, -1:], new)
    torch.testing.assert_close(grown[:, :, :3], kv(1, 3))
    full = grown
    grown = append(full, kv(1, 1, seed=99))
    assert grown.data_ptr() != full.data_ptr() and grown.shape[2] == 3 + SPARE_TOKENS + 1
    torch.testing.assert_close(grown[:, :, :-1], full)


def test_a_tensor_without_room_is_copied_not_written_past_its_end() -> None:
    exact = kv(2, 5)
    assert capacity(exact) == 5
    keep = exact.clone()
    grown = append(exact, kv(2, 1, seed=7))
    torch.testing.assert_close(exact, keep)
    torch.testing.assert_close(grown[:, :, :5], keep)
    # A slice that does not start at a head's first column has no usable room either.
    assert capacity(grown[:, :, 1:]) == 5


def test_the_model_with_the_slack_cache_gives_transformers_cache_logits(loaded) -> None:
    model, ids = loaded.model, [5, 60, 70, 80, 90, 100]
    with torch.inference_mode():
        logits = {}
        for name, cache in (("dynamic", DynamicCache()), ("slack", slack_cache())):
            out = [model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True).logits]
            for token in (7, 9, 11):
                out.append(model(input_ids=torch.tensor([[token]]), cache=cache).logits)
            logits[name] = torch.cat([o[:, -1] for o in out])
        assert cache.get_seq_length() == len(ids) + 3
    torch.testing.assert_close(logits["slack"], logits["dynamic"], atol=1e-5, rtol=1e-5)


def test_a_leaving_row_gets_tensors_no_other_row_writes_into() -> None:
    batch = BatchedKV()
    batch.add([([(kv(1, 4, 1), kv(1, 4, 2))], 4)])
    batch.add([([(kv(1, 6, 3), kv(1, 6, 4))], 6)])
    ((keys, _),) = batch.row(0, room=8)
    assert capacity(keys) >= 4 + 8
    torch.testing.assert_close(keys, kv(1, 4, 1))
    batch.keep([1])
    layer = batch.cache.layers[0]
    layer.keys = append(layer.keys, kv(1, 1, 5))
    grown = append(keys, kv(1, 1, 6))  # the prefix cache's owner appends to its own copy
    torch.testing.assert_close(grown[:, :, :4], kv(1, 4, 1))
    torch.testing.assert_close(layer.keys[:, :, :6], kv(1, 6, 3))


def test_a_lone_row_hands_over_its_own_tensors_and_counts_their_room() -> None:
    batch = BatchedKV()
    batch.add([([(append(torch.tensor([]), kv(1, 4)), append(torch.tensor([]), kv(1, 4)))], 4)])
    ((keys, values),) = batch.row(0, room=SPARE_TOKENS)
    assert keys.data_ptr() == batch.cache.layers[0].keys.data_ptr()
    assert stored_bytes([(keys, values)]) == 2 * keys.element_size() * 2 * 4 * (4 + SPARE_TOKENS)


def test_rows_joining_a_batch_are_right_aligned_over_zero_padding() -> None:
    batch = BatchedKV()
    rows = [(kv(1, 5, 1), 5), (kv(1, 3, 2), 3), (kv(1, 9, 3), 9)]  # shorter, then longer
    for keys, length in rows:
        # Leave a freed NaN-filled block of the buffer's size behind: padding read from reused
        # memory instead of written would show up as NaN.
        poison = torch.full((len(batch) + 1, 2, 9 + SPARE_TOKENS, 4), float("nan"))
        del poison
        batch.add([([(keys, keys)], length)])
    layer = batch.cache.layers[0]
    assert batch.width == 9 and layer.keys.shape == (3, 2, 9, 4)
    for i, (keys, length) in enumerate(rows):
        torch.testing.assert_close(layer.keys[i : i + 1, :, 9 - length :], keys)
        assert torch.equal(layer.keys[i, :, : 9 - length], torch.zeros(2, 9 - length, 4))
        assert torch.equal(layer.values[i, :, : 9 - length], torch.zeros(2, 9 - length, 4))


def full_batch(rows: int) -> BatchedKV:
    """A batch of `rows` rows of 4 tokens whose buffers have no room left."""
    batch = BatchedKV()
    for i in range(rows):
        batch.add([([(kv(1, 4, i), kv(1, 4, i + 10))], 4)])
    layer = batch.cache.layers[0]
    layer.keys, layer.values = layer.keys.clone(), layer.values.clone()  # exactly full
    return batch


def test_make_room_lets_the_next_step_append_in_place() -> None:
    batch = full_batch(2)
    before = batch.cache.layers[0].keys.clone()
    batch.make_room()
    layer = batch.cache.layers[0]
    assert capacity(layer.keys) == capacity(layer.values) == 4 + SPARE_TOKENS
    torch.testing.assert_close(layer.keys, before)
    where = layer.keys.data_ptr()
    layer.update(kv(2, 1, 7), kv(2, 1, 8))  # what the model's forward does in a step
    assert layer.keys.data_ptr() == where and layer.keys.shape[2] == 5
    batch.make_room()  # room left: nothing moves
    assert batch.cache.layers[0].keys.data_ptr() == where


def test_the_heap_is_trimmed_as_a_batch_is_re_laid_out_not_for_a_lone_row(monkeypatch) -> None:
    trims = []
    monkeypatch.setattr("model.heap.return_freed_memory", lambda: trims.append(1))
    monkeypatch.setattr("model.kv_batch.TRIM_EVERY", 1)  # every freed buffer counts
    lone = full_batch(1)
    lone.make_room()
    assert not trims
    batch = full_batch(2)  # the second row's join re-laid the first out
    assert len(trims) == 1
    batch.make_room()
    assert len(trims) == 2
    leaving = full_batch(2)
    assert len(trims) == 3
    leaving.keep([1])  # a row leaving frees nothing: the batch becomes a view of its buffers
    assert len(trims) == 3
    leaving.make_room()  # the lone row left in the full 2-row buffer grows out of it: freed
    assert len(trims) == 4


def test_the_last_rows_leaving_trim_the_heap_only_if_a_batch_buffer_goes(monkeypatch) -> None:
    trims = []
    monkeypatch.setattr("model.heap.return_freed_memory", lambda: trims.append(1))
    monkeypatch.setattr("model.kv_batch.TRIM_EVERY", 1)
    lone = full_batch(1)
    with torch.inference_mode():
        assert lone.keep([]) == []  # a lone reply's own buffers (or the prefix cache's now)
    assert not trims and len(lone) == 0 and not lone.cache.layers
    batch = full_batch(2)
    trims.clear()
    with torch.inference_mode():
        batch.keep([])
    assert len(trims) == 1 and len(batch) == 0
    last = full_batch(2)
    with torch.inference_mode():
        last.keep([0])  # a view of the 2-row buffer
        trims.clear()
        last.keep([])
    assert len(trims) == 1


def test_rows_joining_together_are_laid_out_as_if_they_had_joined_one_by_one() -> None:
    rows = [(kv(1, 5, 1), 5), (kv(1, 3, 2), 3), (kv(1, 9, 3), 9), (kv(1, 2, 4), 2)]
    one_by_one = BatchedKV()
    for keys, length in rows:
        one_by_one.add([([(keys, keys * 2)], length)])
    together = BatchedKV()
    together.add([([(rows[0][0], rows[0][0] * 2)], rows[0][1])])  # a batch, then three at once
    joining = [([(keys, keys * 2)], length) for keys, length in rows[1:]]
    together.add(joining)
    assert together.lengths == one_by_one.lengths and together.width == one_by_one.width == 9
    mine, theirs = together.cache.layers[0], one_by_one.cache.layers[0]
    assert torch.equal(mine.keys, theirs.keys) and torch.equal(mine.values, theirs.values)
    assert all(pairs == [None] for pairs, _ in joining)  # copied once, not kept twice
    fresh = BatchedKV()  # several rows into an empty batch
    fresh.add([([(keys, keys * 2)], length) for keys, length in rows])
    assert torch.equal(fresh.cache.layers[0].keys, theirs.keys)


def test_rows_leaving_with_much_padding_behind_them_re_lay_the_batch_out() -> None:
    batch = BatchedKV()
    long, short = kv(1, SPARE_TOKENS + 9, 1), kv(1, 3, 2)
    batch.add([([(long, long)], SPARE_TOKENS + 9), ([(short, short * 2)], 3)])
    with torch.inference_mode():
        assert batch.keep([1]) == [1]
    ((keys, values),) = [(layer.keys, layer.values) for layer in batch.cache.layers]
    assert batch.width == 3 and keys.shape[2] == 3 and capacity(keys) == 3 + SPARE_TOKENS
    torch.testing.assert_close(values, short * 2)


def test_a_lone_row_left_in_a_batch_buffer_leaves_with_a_copy_of_its_own() -> None:
    batch = BatchedKV()
    batch.add([([(kv(1, 4, i), kv(1, 4, i + 10))], 4) for i in range(4)])
    with torch.inference_mode():
        assert batch.keep([2]) == [2]  # a view of the 4-row buffer: row 2 moved to place 0
    ((keys, values),) = batch.row(0, room=8)
    torch.testing.assert_close(keys, kv(1, 4, 2))
    torch.testing.assert_close(values, kv(1, 4, 12))
    assert stored_bytes([(keys, values)]) == 2 * keys.element_size() * 2 * 4 * (4 + 8)


def test_with_room_for_copies_only_the_buffers_without_that_room() -> None:
    roomy = (with_room(kv(1, 4, 1), 4 + 8), with_room(kv(1, 4, 2), 4 + 8))
    tight = (with_room(kv(1, 4, 3), 4 + 2), kv(1, 4, 4))
    (kept, kept_values), (grown, grown_values) = with_room_for([roomy, tight], 8)
    assert kept.data_ptr() == roomy[0].data_ptr() and kept_values.data_ptr() == roomy[1].data_ptr()
    assert min(capacity(grown), capacity(grown_values)) >= 4 + 8
    torch.testing.assert_close(grown, kv(1, 4, 3))
    torch.testing.assert_close(grown_values, kv(1, 4, 4))
    before = grown.data_ptr()
    assert append(grown, kv(1, 8, 5)).data_ptr() == before  # the next 8 tokens go in place
