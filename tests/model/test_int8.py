"""int8 loading: every Linear is quantized, no fp32 copy is kept, answers stay close to fp32."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from model.int8 import (
    Int8Embedding,
    Int8TiedHead,
    bf16_vector_units,
    load_int8_model,
    quantized_linear_count,
)
from model.loader import load_model
from model.settings import ModelSettings
from tests.model.conftest import ask

# Teacher-forced: both models read the same fp32 greedy continuation, position by position.
MIN_ARGMAX_AGREEMENT = 0.7  # measured 0.77-0.84 on the tiny model (hidden 64: a worst case)
MAX_MEAN_LOGIT_ERROR = 0.15  # mean |int8 - fp32| logit / std of fp32 logits; measured 0.09


@pytest.fixture(scope="module")
def int8_loaded(tiny_model_dir):
    return load_model(
        tiny_model_dir, ModelSettings(source="tiny-random", threads=1, quantization="int8")
    )


def test_every_linear_is_int8_and_no_float_matrix_is_left(int8_loaded, loaded) -> None:
    model = int8_loaded.model
    float_linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert float_linears == []
    head_is_linear = not isinstance(model.get_output_embeddings(), Int8TiedHead)
    assert quantized_linear_count(model) == (
        quantized_linear_count(loaded.model) + 7 * 2 + head_is_linear
    )
    assert isinstance(model.get_input_embeddings(), Int8Embedding)
    big_float = [n for n, p in model.named_parameters() if p.dim() > 1 and p.is_floating_point()]
    assert big_float == []  # only norms (vectors) stay in fp32


def test_int8_logits_stay_close_to_fp32(int8_loaded, loaded) -> None:
    ids = torch.tensor([loaded.tokenizer.encode("Hello! How can I help you today? The sea")])
    with torch.inference_mode():
        sequence = loaded.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=60, do_sample=False
        )
        reference = loaded.model(sequence).logits[0]
        quantized = int8_loaded.model(sequence).logits[0]
    agreement = (reference.argmax(-1) == quantized.argmax(-1)).float().mean().item()
    error = ((quantized - reference).abs().mean() / reference.std()).item()
    assert agreement >= MIN_ARGMAX_AGREEMENT
    assert error <= MAX_MEAN_LOGIT_ERROR


def test_a_tied_head_reads_the_embedding_codes_and_answers_like_its_own_copy(
    tiny_model_dir, loaded
) -> None:
    shared = load_int8_model(tiny_model_dir, share_tied_head=True)
    separate = load_int8_model(tiny_model_dir, share_tied_head=False)
    head, embedding = shared.get_output_embeddings(), shared.get_input_embeddings()
    assert isinstance(head, Int8TiedHead)
    assert head.codes.data_ptr() == embedding.codes.data_ptr()  # one copy in memory
    assert not isinstance(separate.get_output_embeddings(), Int8TiedHead)
    ids = torch.tensor([loaded.tokenizer.encode("Hello! How can I help you today?")])
    with torch.inference_mode():
        a, b = shared(ids).logits[0], separate(ids).logits[0]
    assert (a.argmax(-1) == b.argmax(-1)).float().mean().item() >= 0.9
    assert ((a - b).abs().mean() / b.std()).item() <= 0.05


def test_the_shared_head_is_chosen_by_the_cpu(int8_loaded) -> None:
    chosen = isinstance(int8_loaded.model.get_output_embeddings(), Int8TiedHead)
    assert chosen == bf16_vector_units()


def test_int8_embedding_rows_match_fp32(int8_loaded, loaded) -> None:
    ids = torch.arange(0, 400, 7)
    with torch.inference_mode():
        reference = loaded.model.get_input_embeddings()(ids)
        quantized = int8_loaded.model.get_input_embeddings()(ids)
    row_max = reference.abs().amax(dim=1, keepdim=True)
    assert ((quantized - reference).abs() <= row_max / 254 + 1e-6).all()  # half a step per row


def test_engine_streams_with_the_int8_model(make_engine, int8_loaded) -> None:
    stream = make_engine(int8_loaded, temperature=0.0, max_new_tokens=12).stream(ask("hi"))
    assert "".join(d.text for d in stream)
    assert stream.stats.completion_tokens == 12


def test_int8_needs_float32() -> None:
    with pytest.raises(ValidationError, match="int8"):
        ModelSettings(quantization="int8", dtype="bfloat16")
