"""Keys and values stored in bf16: half the memory, answers as with fp32 storage where it counts."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model import kv_dtype
from model.kv_dtype import resolve_kv_dtype
from model.settings import ModelSettings
from model.slack_cache import slack_cache
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
