"""Keys and values stored in bf16, and bf16 products for a prompt over a cached conversation: answers
stay close to fp32 where it counts, and an exact engine stays exact."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch
import torch.nn.functional as F

from model import kv_dtype
from model.kv_dtype import (
    narrow_attention,
    prompt_products,
    resolve_kv_dtype,
    resolve_prompt_dtype,
    use_engine_attention,
)
from model.settings import ModelSettings
from model.slack_cache import slack_cache
from model.types import ChatMessage, GenerationRequest
from tests.model.conftest import ask

GREEDY = {"temperature": 0.0, "repetition_penalty": 1.2, "max_new_tokens": 20}


@pytest.mark.parametrize("amx", [True, False])
def test_auto_stores_bf16_only_with_int8_weights_on_amx_cpus(monkeypatch, amx) -> None:
    monkeypatch.setattr(kv_dtype, "amx_tiles", lambda: amx)
    int8 = resolve_kv_dtype("auto", "int8", torch.float32)
    assert int8 == (torch.bfloat16 if amx else torch.float32)
    assert resolve_kv_dtype("auto", "none", torch.float32) == torch.float32  # exact fp32 stays
    assert resolve_kv_dtype("auto", "none", torch.bfloat16) == torch.bfloat16
    assert resolve_kv_dtype("float32", "int8", torch.float32) == torch.float32
    assert resolve_kv_dtype("bfloat16", "none", torch.float32) == torch.bfloat16


def conversation_entry(make_engine, loaded, dtype: str):
    settings = ModelSettings(prefix_cache_mb=16, kv_cache_dtype=dtype)
    engine = make_engine(dataclasses.replace(loaded, settings=settings), **GREEDY)
    reply = "".join(d.text for d in engine.stream(ask("Hello there", conversation_id="c")))
    assert engine.prefix_cache is not None and len(engine.prefix_cache) == 1
    return reply, engine.prefix_cache.bytes_used, engine


def test_a_bf16_cache_holds_a_conversation_in_half_the_bytes(make_engine, loaded) -> None:
    _, fp32_bytes, fp32_engine = conversation_entry(make_engine, loaded, "float32")
    _, bf16_bytes, bf16_engine = conversation_entry(make_engine, loaded, "bfloat16")
    assert fp32_engine.kv_dtype == torch.float32 and bf16_engine.kv_dtype == torch.bfloat16
    assert bf16_bytes * 2 == fp32_bytes


def test_logits_over_a_bf16_cache_stay_close_to_fp32(make_engine, loaded) -> None:
    make_engine(dataclasses.replace(loaded, settings=ModelSettings(kv_cache_dtype="bfloat16")))
    model = loaded.model  # now reads caches in whatever dtype they are stored
    ids = torch.tensor([loaded.tokenizer.encode("Hello! How can I help you today? The sea is")])
    with torch.inference_mode():
        reference = model(ids, cache=slack_cache(), use_cache=True).logits[0]
        narrow_cache = slack_cache(dtype=torch.bfloat16)
        narrow = model(ids, cache=narrow_cache, use_cache=True).logits[0]
    assert narrow_cache.layers[0].keys.dtype == torch.bfloat16
    assert narrow.dtype == torch.float32
    assert (narrow.argmax(-1) == reference.argmax(-1)).float().mean().item() >= 0.9
    assert ((narrow - reference).abs().mean() / reference.std()).item() <= 0.02


@pytest.mark.parametrize(("bf16", "amx"), [(True, False), (True, True), (False, False)])
def test_auto_narrows_prompt_products_with_int8_on_avx512_bf16_cpus_without_amx(
    monkeypatch, bf16, amx
) -> None:
    monkeypatch.setattr(kv_dtype, "avx512_bf16", lambda: bf16)
    monkeypatch.setattr(kv_dtype, "amx_tiles", lambda: amx)
    fp32 = torch.float32
    wanted = torch.bfloat16 if bf16 and not amx else None
    assert resolve_prompt_dtype("auto", "int8", fp32) == wanted
    assert resolve_prompt_dtype("auto", "none", fp32) is None  # exact fp32 stays exact
    assert resolve_prompt_dtype("float32", "int8", fp32) is None
    assert resolve_prompt_dtype("bfloat16", "none", fp32) == torch.bfloat16
    # A bf16 cache already gives bf16 products: nothing more to narrow.
    assert resolve_prompt_dtype("bfloat16", "int8", torch.bfloat16) is None


def prefill(model, ids: torch.Tensor, cache, start: int = 0) -> torch.Tensor:
    positions = torch.arange(start, start + ids.shape[1]).unsqueeze(0)
    mask = torch.ones((1, start + ids.shape[1]), dtype=torch.long)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache)
    return out.logits[0]


def follow_up_logits(loaded):
    """Logits of a follow-up's new tokens over a cached first turn, and of the first turn."""
    tokens = loaded.tokenizer.encode("Hello! How can I help you today? The sea is calm and blue.")
    ids = torch.tensor([tokens * 3])
    cut = ids.shape[1] - 20
    with torch.inference_mode():
        cache = slack_cache()
        first = prefill(loaded.model, ids[:, :cut], cache)
        return prefill(loaded.model, ids[:, cut:], cache, start=cut), first


def test_a_prompt_over_cached_tokens_takes_bf16_products_close_to_fp32(loaded) -> None:
    use_engine_attention(loaded.model)
    exact, exact_first = follow_up_logits(loaded)
    with prompt_products(torch.bfloat16):
        narrow, narrow_first = follow_up_logits(loaded)
    assert torch.equal(narrow_first, exact_first)  # nothing cached yet: fp32 SDPA, bit for bit
    assert not torch.equal(narrow, exact)  # the follow-up did take the bf16 products
    assert (narrow.argmax(-1) == exact.argmax(-1)).float().mean().item() >= 0.9
    assert ((narrow - exact).abs().mean() / exact.std()).item() <= 0.02


def test_bf16_prompt_products_stay_with_the_thread_that_asked(loaded) -> None:
    use_engine_attention(loaded.model)
    exact, _ = follow_up_logits(loaded)
    inside, release = threading.Event(), threading.Event()

    def narrow_thread() -> None:  # as an engine's decoder thread holds it around a prefill
        with prompt_products(torch.bfloat16):
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=narrow_thread)
    worker.start()
    try:
        assert inside.wait(10)
        assert torch.equal(follow_up_logits(loaded)[0], exact)
    finally:
        release.set()
        worker.join()


def test_decoding_steps_keep_fp32_attention_under_bf16_prompt_products(loaded) -> None:
    use_engine_attention(loaded.model)
    ids = torch.tensor([loaded.tokenizer.encode("The sea is calm and blue today")])
    steps = []
    for narrow in (None, torch.bfloat16):
        with torch.inference_mode(), prompt_products(narrow):
            cache = slack_cache()
            prefill(loaded.model, ids[:, :-1], cache)
            steps.append(prefill(loaded.model, ids[:, -1:], cache, start=ids.shape[1] - 1))
    assert torch.equal(steps[0], steps[1])


def test_bf16_products_honour_the_mask_where_cached_keys_are_hidden() -> None:
    torch.manual_seed(0)
    module = type("Attention", (), {"num_key_value_groups": 2})()
    query = torch.randn(2, 4, 3, 16)
    key, value = torch.randn(2, 2, 10, 16), torch.randn(2, 2, 10, 16)
    mask = torch.ones(2, 1, 3, 10, dtype=torch.bool).tril(7)
    mask[1, :, :, :4] = False  # the second row's first keys are padding
    got = narrow_attention(module, query, key, value, mask, torch.bfloat16, 0.25)
    grouped = [t.repeat_interleave(2, dim=1) for t in (key, value)]
    want = F.scaled_dot_product_attention(query, *grouped, attn_mask=mask, scale=0.25)
    assert got.shape == (2, 3, 4, 16) and got.dtype == torch.float32
    torch.testing.assert_close(got, want.transpose(1, 2), atol=0.03, rtol=0.03)
    key[1, :, :4] = 1e3  # what a hidden key holds cannot leak into the output
    value[1, :, :4] = 1e3
    leaked = narrow_attention(module, query, key, value, mask, torch.bfloat16, 0.25)
    assert torch.equal(leaked[1], got[1])


def test_an_engine_with_bf16_prompt_products_beside_an_exact_one(make_engine, loaded) -> None:
    def engine(cache_mb: int, prompts: str):
        settings = ModelSettings(prefix_cache_mb=cache_mb, prompt_attention_dtype=prompts)
        return make_engine(dataclasses.replace(loaded, settings=settings), **GREEDY)

    narrow, exact, plain = engine(16, "bfloat16"), engine(16, "float32"), engine(0, "float32")
    assert narrow.prompt_dtype == torch.bfloat16 and exact.prompt_dtype is None

    question = ChatMessage("user", "Hello! How can I help you today?")

    def turns(target, first: str | None = None):
        messages = (question,)
        if first is not None:
            messages += (ChatMessage("assistant", first), ChatMessage("user", "And then?"))
        stream = target.stream(GenerationRequest(messages=messages, conversation_id="c"))
        return "".join(d.text for d in stream), stream.final

    first, _ = turns(exact)
    assert turns(narrow)[0] == first  # the first turn has nothing cached: fp32 products on both
    follow_up, stats = turns(exact, first)
    narrow_follow_up, narrow_stats = turns(narrow, first)
    assert stats.cached_prompt_tokens > 0
    assert narrow_stats.cached_prompt_tokens == stats.cached_prompt_tokens
    assert follow_up == turns(plain, first)[0]  # the exact engine answers as with no cache
    assert narrow_follow_up  # the narrow engine answered from its cache too
