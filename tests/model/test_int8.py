"""int8 loading: every Linear is quantized, no fp32 copy is kept, answers stay close to fp32."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn
from transformers import AutoModelForCausalLM

from model.int8 import MappedEmbedding, load_int8_model, quantized_linear_count
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
    # The tiny model is tied: its head becomes an int8 Linear too.
    assert quantized_linear_count(model) == quantized_linear_count(loaded.model) + 7 * 2 + 1
    assert isinstance(model.get_input_embeddings(), MappedEmbedding)
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


def test_embedding_rows_are_exact_and_read_from_the_weights_file(int8_loaded, loaded) -> None:
    embedding = int8_loaded.model.get_input_embeddings()
    ids = torch.arange(0, 400, 7)
    with torch.inference_mode():
        reference = loaded.model.get_input_embeddings()(ids)
        assert torch.equal(embedding(ids), reference)
    # A view over the mapped file, not a copy in this process's heap.
    start = np.frombuffer(embedding._map, dtype=np.uint8).ctypes.data
    assert start <= embedding.weight_view.data_ptr() < start + len(embedding._map)


def test_the_mapped_weights_file_is_read_only(tiny_model_dir) -> None:
    model = load_int8_model(tiny_model_dir)
    assert model.get_input_embeddings()._map.closed is False
    with pytest.raises(TypeError):
        model.get_input_embeddings()._map[0] = 0  # the map refuses writes: the file stays intact


def test_engine_streams_with_the_int8_model(make_engine, int8_loaded) -> None:
    stream = make_engine(int8_loaded, temperature=0.0, max_new_tokens=12).stream(ask("hi"))
    assert "".join(d.text for d in stream)
    assert stream.stats.completion_tokens == 12


def test_int8_needs_float32() -> None:
    with pytest.raises(ValidationError, match="int8"):
        ModelSettings(quantization="int8", dtype="bfloat16")


def test_bf16_weights_sharded_over_files_load_with_exact_embedding_rows(
    tmp_path, loaded, tiny_model_dir
) -> None:
    """As Qwen1.5-0.5B-Chat ships: bf16 safetensors, possibly in several shards."""
    shutil.copytree(tiny_model_dir, tmp_path / "m", ignore=shutil.ignore_patterns("*.safetensors"))
    bf16 = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    bf16.save_pretrained(tmp_path / "m", max_shard_size="100KB")
    expected = bf16.get_input_embeddings().weight[:50].to(torch.float32)
    assert len(list((tmp_path / "m").glob("*.safetensors"))) > 1
    model = load_int8_model(tmp_path / "m")
    with torch.inference_mode():
        assert torch.equal(model.get_input_embeddings()(torch.arange(50)), expected)
        logits = model(torch.tensor([loaded.tokenizer.encode("Hello there")])).logits
    assert torch.isfinite(logits).all()
