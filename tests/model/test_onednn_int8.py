"""int8_prompt_kernel = "onednn" ("auto" on CPUs with AMX): prompts on oneDNN's int8 matmul from
a copy of block weights within onednn_copy_mb, decoding on fbgemm's."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from model import cpu_features, onednn_int8
from model.int8 import Int8Linear, _dynamic_linear, load_int8_model, quantized_linear_count
from model.loader import LoadedModel, ModelUnavailable, load_model
from model.onednn_int8 import PROMPT_ROWS, PromptsOnOnednn, prompt_copy_bytes
from model.settings import ModelSettings
from model.types import ChatMessage, GenerationRequest
from tests.model.test_int8 import MAX_MEAN_LOGIT_ERROR


def _onednn_settings() -> ModelSettings:
    return ModelSettings(
        source="tiny-random", threads=1, quantization="int8", int8_prompt_kernel="onednn"
    )


@pytest.fixture(scope="module")
def onednn_loaded(tiny_model_dir) -> LoadedModel:
    """oneDNN prompts on any CPU: the product refuses them on CPUs without VNNI (tested below),
    but how they are routed and cached is the same code everywhere, so it is tested everywhere."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onednn_int8, "int8_vnni", lambda: True)
        return load_model(tiny_model_dir, _onednn_settings())


def _logits(loaded: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return loaded.model(ids).logits[0]


def _spread(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference over b's standard deviation."""
    return ((a - b).abs().mean() / b.std()).item()


def test_every_block_product_gets_a_prompt_copy_and_the_head_does_not(
    onednn_loaded, int8_loaded
) -> None:
    model = onednn_loaded.model
    layers = model.config.num_hidden_layers
    wrapped = [m for m in model.modules() if isinstance(m, PromptsOnOnednn)]
    assert len(wrapped) == 4 * layers  # q/k/v, o, gate/up, down of every block
    assert isinstance(model.get_output_embeddings(), Int8Linear)  # one row a step: fbgemm only
    assert quantized_linear_count(model) == quantized_linear_count(int8_loaded.model)


def test_a_prompt_runs_on_onednn_close_to_fbgemm_and_fp32(
    onednn_loaded, int8_loaded, loaded
) -> None:
    ids = torch.randint(10, 400, (1, 3 * PROMPT_ROWS), generator=torch.Generator().manual_seed(3))
    reference = _logits(loaded, ids)
    onednn, fbgemm = _logits(onednn_loaded, ids), _logits(int8_loaded, ids)
    assert not torch.equal(onednn, fbgemm)  # the other library did run
    assert _spread(onednn, fbgemm) < MAX_MEAN_LOGIT_ERROR
    assert _spread(onednn, reference) <= MAX_MEAN_LOGIT_ERROR


def test_short_inputs_and_decoding_steps_stay_on_fbgemm_bit_for_bit(
    onednn_loaded, int8_loaded
) -> None:
    ids = torch.randint(10, 400, (1, PROMPT_ROWS - 1), generator=torch.Generator().manual_seed(4))
    assert torch.equal(_logits(onednn_loaded, ids), _logits(int8_loaded, ids))
    assert torch.equal(_logits(onednn_loaded, ids[:, :1]), _logits(int8_loaded, ids[:, :1]))


def test_where_onednn_is_allowed_its_products_are_at_least_as_close_to_fp32_as_fbgemms() -> None:
    """On this machine's CPU, with oneDNN's real kernel: a CPU without VNNI is refused "onednn"
    (its int8 products were 5x less accurate than fbgemm's on an AVX2-only AMD EPYC); on one
    with VNNI, 8-bit activations keep a product closer to fp32 than fbgemm's 7-bit ones."""
    if not cpu_features.int8_vnni():
        with pytest.raises(ValueError, match="VNNI"):
            onednn_int8.resolve_prompt_kernel("onednn")
        return
    torch.manual_seed(0)
    codes = torch.randint(-127, 128, (256, 128), dtype=torch.int8)
    scales, bias = torch.rand(256) / 100 + 1e-3, torch.randn(256)
    fbgemm = _dynamic_linear(codes, scales, bias)
    layer = PromptsOnOnednn(fbgemm, codes, scales, bias)
    x = torch.randn(2, PROMPT_ROWS, 128) * 3 + 0.5  # skewed, as real activations often are
    exact = x @ (codes.float() * scales[:, None]).T + bias
    with torch.inference_mode():
        onednn, packed = layer(x), fbgemm(x)
    assert onednn.shape == exact.shape
    assert _spread(onednn, exact) <= _spread(packed, exact)
    assert _spread(onednn, exact) < 0.02


def test_the_engine_answers_and_continues_a_conversation_with_onednn_prompts(
    make_engine, onednn_loaded
) -> None:
    """The first prompt (over PROMPT_ROWS tokens) is prefilled on oneDNN, the short follow-up on
    fbgemm over the cached conversation: the two libraries' keys and values meet in one cache."""
    engine = make_engine(onednn_loaded, temperature=0.0, max_new_tokens=8)

    def turn(messages):
        request = GenerationRequest(
            messages=tuple(messages), user_key="alice", conversation_id="c1"
        )
        stream = engine.stream(request)
        return "".join(d.text for d in stream), stream.stats

    question = ChatMessage("user", " ".join(["tell me about the sea"] * 12))
    answer, first = turn([question])
    assert first.prompt_tokens > PROMPT_ROWS
    assert first.completion_tokens == 8
    _, follow = turn([question, ChatMessage("assistant", answer), ChatMessage("user", "and?")])
    assert follow.extra["cached_prompt_tokens"] >= first.prompt_tokens
    assert follow.prompt_tokens - follow.extra["cached_prompt_tokens"] < PROMPT_ROWS
    assert follow.completion_tokens == 8


def test_onednn_prompts_need_int8() -> None:
    with pytest.raises(ValidationError, match='quantization = "int8"'):
        ModelSettings(int8_prompt_kernel="onednn")


def test_a_torch_without_onednn_is_refused_with_what_to_set(monkeypatch, tiny_model_dir) -> None:
    monkeypatch.setattr("model.onednn_int8.onednn_int8_available", lambda: False)
    with pytest.raises(ModelUnavailable, match='set "fbgemm"'):
        load_model(tiny_model_dir, _onednn_settings())


def test_explicit_onednn_is_refused_on_a_cpu_without_vnni(monkeypatch, tiny_model_dir) -> None:
    """(With VNNI it loads: the onednn_loaded fixture.)"""
    monkeypatch.setattr(onednn_int8, "int8_vnni", lambda: False)
    with pytest.raises(ModelUnavailable, match=r'AVX512-VNNI.*set "fbgemm"'):
        load_model(tiny_model_dir, _onednn_settings())


def _fbgemm_only(model) -> list[Int8Linear]:
    """The blocks' int8 Linears that got no oneDNN copy."""
    inner = {id(m.decode) for m in model.modules() if isinstance(m, PromptsOnOnednn)}
    head = model.get_output_embeddings()
    return [
        m
        for m in model.modules()
        if isinstance(m, Int8Linear) and id(m) not in inner and m is not head
    ]


def test_the_copy_stops_at_its_budget_and_leaves_out_only_what_no_longer_fits(
    tiny_model_dir, int8_loaded
) -> None:
    whole = prompt_copy_bytes(load_int8_model(tiny_model_dir, 2**40))
    budget = whole // 3
    model = load_int8_model(tiny_model_dir, budget)
    copied = prompt_copy_bytes(model)
    assert 0 < copied <= budget
    left = budget - copied
    without = _fbgemm_only(model)
    assert without  # a third of the copy: some products stay on fbgemm alone
    assert all(m.weight().numel() > left for m in without)  # none of them would still fit
    first = model.model.layers[0]
    assert isinstance(first.self_attn.fused_q_k_v.linear, PromptsOnOnednn)  # load order
    assert isinstance(first.mlp.fused_gate_up.linear, PromptsOnOnednn)
    ids = torch.randint(10, 400, (1, 3 * PROMPT_ROWS), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        partial, fbgemm = model(ids).logits[0], _logits(int8_loaded, ids)
    assert not torch.equal(partial, fbgemm)
    assert _spread(partial, fbgemm) < MAX_MEAN_LOGIT_ERROR


def test_no_budget_means_no_copy_and_fbgemm_numbers(tiny_model_dir, int8_loaded) -> None:
    model = load_int8_model(tiny_model_dir, 0)
    assert prompt_copy_bytes(model) == 0
    ids = torch.randint(10, 400, (1, 3 * PROMPT_ROWS), generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        assert torch.equal(model(ids).logits[0], _logits(int8_loaded, ids))


@pytest.mark.parametrize("amx", [True, False])
def test_auto_takes_onednn_prompts_only_on_cpus_with_amx(monkeypatch, tiny_model_dir, amx) -> None:
    monkeypatch.setattr(onednn_int8, "amx_tiles", lambda: amx)
    settings = ModelSettings(source="tiny-random", threads=1, quantization="int8")
    assert settings.int8_prompt_kernel == "auto"  # the shipped setting
    copied = prompt_copy_bytes(load_model(tiny_model_dir, settings).model)
    assert (copied > 0) == amx
    monkeypatch.setattr(onednn_int8, "onednn_int8_available", lambda: False)
    assert onednn_int8.resolve_prompt_kernel("auto") == "fbgemm"  # a torch without oneDNN


def test_a_negative_copy_budget_is_refused() -> None:
    with pytest.raises(ValidationError, match="onednn_copy_mb"):
        ModelSettings(quantization="int8", onednn_copy_mb=-1)
