"""The lean forward computes what transformers' forward does, bit for bit, and steps aside where it
does not apply."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from model.kv_batch import BatchedKV
from model.kv_dtype import use_engine_attention
from model.lean_forward import LeanQwen2, lean_forward
from model.slack_cache import slack_cache
from tests.model.conftest import ScriptedModel, ask, batch_step

PROMPT = [5, 60, 70, 80, 90, 100, 120, 7, 9, 11, 13, 17]
FOLLOW_UP = [200, 201, 202, 203, 204]  # a next message over the cached conversation
STEPS = [300, 301, 302]
ROWS = [[5, 60, 70, 80, 90, 100, 120, 7, 9, 11], [200, 201, 202], [42] * 6]  # padded batch

VARIANTS = {  # fixture holding the model, dtype the cache stores (None: the model's)
    "fp32": ("loaded", None),
    "int8": ("int8_loaded", None),
    "fp32, bf16 cache": ("loaded", torch.bfloat16),
}


def call(forward, cache, ids: list[list[int]], start: int, **kwargs) -> torch.Tensor:
    """One forward over `ids` (one row each, same length) after `start` cached tokens."""
    rows, n = len(ids), len(ids[0])
    return forward(
        input_ids=torch.tensor(ids),
        attention_mask=torch.ones((rows, start + n), dtype=torch.long),
        position_ids=torch.arange(start, start + n).expand(rows, n),
        cache=cache,
        use_cache=True,
        **kwargs,
    ).logits


def conversation(forward, kv_dtype) -> tuple[list[torch.Tensor], list]:
    """A prompt, a follow-up message over its cache, then single-token steps: every output."""
    cache = slack_cache(dtype=kv_dtype)
    logits = [call(forward, cache, [PROMPT], 0, logits_to_keep=1)]
    logits.append(call(forward, cache, [FOLLOW_UP], len(PROMPT), logits_to_keep=1))
    start = len(PROMPT) + len(FOLLOW_UP)
    for i, token in enumerate(STEPS):
        logits.append(call(forward, cache, [[token]], start + i))
    return logits, [(k, v) for k, v, *_ in cache]


def padded_step(forward, kv_dtype) -> tuple[torch.Tensor, list]:
    """Rows of different lengths decoded in one step, left-padded as the scheduler lays them out."""
    kv = BatchedKV()
    for ids in ROWS:
        cache = slack_cache(dtype=kv_dtype)
        call(forward, cache, [ids], 0, logits_to_keep=1)
        kv.add([([(k, v) for k, v, *_ in cache], len(ids))])
    return batch_step(forward, kv, STEPS), [(k, v) for k, v, *_ in kv.cache]


def assert_identical(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b), f"max difference {(a.float() - b.float()).abs().max()}"


def variant_model(request, variant: str):
    """The variant's model, set to read a cache stored in the variant's dtype, and that dtype."""
    fixture, kv_dtype = VARIANTS[variant]
    model = request.getfixturevalue(fixture).model
    if kv_dtype is not None:
        use_engine_attention(model)
    return model, kv_dtype


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_conversation_gives_transformers_logits_and_cache_bit_for_bit(request, variant) -> None:
    model, kv_dtype = variant_model(request, variant)
    lean = lean_forward(model)
    assert isinstance(lean, LeanQwen2)
    with torch.inference_mode():
        ours, our_cache = conversation(lean, kv_dtype)
        theirs, their_cache = conversation(model, kv_dtype)
    assert_identical(ours, theirs)
    assert_identical(
        [t for pair in our_cache for t in pair], [t for pair in their_cache for t in pair]
    )
    assert our_cache[0][0].dtype == (kv_dtype or torch.float32)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_padded_batch_step_gives_transformers_logits_bit_for_bit(request, variant) -> None:
    model, kv_dtype = variant_model(request, variant)
    with torch.inference_mode():
        ours, our_cache = padded_step(lean_forward(model), kv_dtype)
        theirs, their_cache = padded_step(model, kv_dtype)
    assert_identical([ours], [theirs])
    assert_identical(
        [t for pair in our_cache for t in pair], [t for pair in their_cache for t in pair]
    )


def small_qwen2(**config: object) -> Qwen2ForCausalLM:
    base = {
        "vocab_size": 32,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
    }
    return Qwen2ForCausalLM(Qwen2Config(**{**base, **config})).eval()


def test_models_it_does_not_cover_keep_transformers_forward() -> None:
    assert isinstance(lean_forward(small_qwen2()), LeanQwen2)  # the baseline it covers
    sliding = small_qwen2(use_sliding_window=True, sliding_window=4, max_window_layers=0)
    assert lean_forward(sliding) is None
    eager = small_qwen2()
    eager.set_attn_implementation("eager")
    assert lean_forward(eager) is None
    assert lean_forward(small_qwen2().train()) is None
    assert lean_forward(ScriptedModel([1, 2], eos_id=2)) is None


def test_the_engine_decodes_through_the_lean_forward(make_engine, monkeypatch) -> None:
    calls = []
    original = LeanQwen2.__call__

    def counted(self, **kwargs):
        calls.append(kwargs["input_ids"].shape)
        return original(self, **kwargs)

    monkeypatch.setattr(LeanQwen2, "__call__", counted)
    stream = make_engine(temperature=0.0).stream(ask("Hello!", max_new_tokens=5))
    assert len("".join(d.text for d in stream)) > 0
    assert len(calls) == 5  # the prompt, then one call per further token
