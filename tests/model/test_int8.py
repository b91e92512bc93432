"""int8 loading: every Linear is quantized, no fp32 copy is kept, answers stay close to fp32."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import save_file
from torch import nn
from transformers import AutoModelForCausalLM

from model.int8 import (
    FileEmbedding,
    Int8Linear,
    Recipe,
    _open_weights,
    _row_codes,
    int8_linear,
    load_int8_model,
    quantized_linear_count,
)
from model.int8_products import activation_bits, default_backend, usable_backends
from model.rotation import block_size, hadamard, rotate
from model.settings import ModelSettings
from tests.model.conftest import ask

# Teacher-forced: both models read the same fp32 greedy continuation, position by position.
MIN_ARGMAX_AGREEMENT = 0.85  # measured 0.92 on the tiny model (hidden 64: a worst case)
MAX_MEAN_LOGIT_ERROR = 0.05  # mean |int8 - fp32| logit / std of fp32 logits; measured 0.024


def test_every_linear_is_int8_and_no_float_matrix_is_left(int8_loaded, loaded) -> None:
    model = int8_loaded.model
    float_linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert float_linears == []
    # Per block: q/k/v as one, o, gate/up as one, down; the tiny model is tied: its head too.
    layers = model.config.num_hidden_layers
    assert quantized_linear_count(loaded.model) == 0
    assert quantized_linear_count(model) == 4 * layers + 1
    assert isinstance(model.get_input_embeddings(), FileEmbedding)
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
    ids = torch.tensor([[5, 9, 5, 300], [0, 399, 9, 9]])  # repeats, and a batch of two rows
    with torch.inference_mode():
        reference = loaded.model.get_input_embeddings()(ids)
        looked_up = embedding(ids)
    assert looked_up.shape == reference.shape
    assert torch.equal(looked_up, reference)


def test_an_id_outside_the_vocabulary_is_refused(int8_loaded) -> None:
    vocab = int8_loaded.model.config.vocab_size
    with pytest.raises(IndexError, match="out of range"):
        int8_loaded.model.get_input_embeddings()(torch.tensor([[1, vocab]]))


def test_engine_streams_with_the_int8_model(make_engine, int8_loaded) -> None:
    stream = make_engine(int8_loaded, temperature=0.0, max_new_tokens=12).stream(ask("hi"))
    assert "".join(d.text for d in stream)
    assert stream.final.completion_tokens == 12


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


def test_scattered_lookups_leave_nothing_of_the_matrix_resident(tmp_path) -> None:
    """The embedding of a real vocabulary is big; a chat touches a small, scattered part of it."""
    rows, cols = 16384, 1024  # 64 MB of fp32, one 4 KB page per row
    save_file({"embed.weight": torch.randn(rows, cols)}, str(tmp_path / "model.safetensors"))
    with _open_weights(tmp_path) as weights:
        embedding = FileEmbedding(weights["embed.weight"])
    touched = torch.randperm(rows, generator=torch.Generator().manual_seed(1))[:4000]
    before = _rss_kb()
    with torch.inference_mode():
        for chunk in touched.split(40):  # as scattered as tokens in chats
            embedding(chunk)
    # A quarter of the rows (16 MB) were read: a memory map made the whole 64 MB resident here.
    assert _rss_kb() - before < 16 * 1024  # measured 0.5-4.3 MB: allocator noise, not rows


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def _exact(x: torch.Tensor, layer: Int8Linear, weight: torch.Tensor) -> torch.Tensor:
    """x W'^T in float64, W' the weight as its int8 codes hold it: all an int8 Linear may lose
    beyond the weight's rounding is its activations' rounding."""
    rotation = hadamard(block_size(weight.shape[1]))
    codes, scales = _row_codes(weight, rotation)
    held = codes.double() * scales.double().unsqueeze(1)
    return rotate(x.reshape(-1, weight.shape[1]), rotation).double() @ held.T


@pytest.mark.parametrize("backend", usable_backends())
@pytest.mark.parametrize("bits", [8, 7])
def test_activations_keep_about_15_bits_even_beside_an_outlier(backend, bits) -> None:
    """Activations with a channel 50x the others, as real models have: rounded per token in two
    passes (codes, then what they lost), the product is within ~1e-4 of the exact one."""
    torch.manual_seed(0)
    weight, bias = torch.randn(96, 192), torch.randn(96)
    x = torch.randn(4, 3, 192)
    x[..., 7] *= 50
    layer = int8_linear(weight, bias, Recipe(bits, backend))
    with torch.inference_mode():
        out = layer(x).reshape(-1, 96)
    exact = _exact(x, layer, weight) + bias.double()
    error = (out.double() - exact).abs().max() / exact.abs().max()
    assert error < (1e-4 if bits == 8 else 4e-4)  # measured 3.5e-5 (8 bits)
    # One 8-bit rounding per token would be ~100x off (the outlier sets its scale); against
    # the fp32 product, what is left is the weights' rounding.
    assert (x.reshape(-1, 192) @ weight.T + bias - out).abs().max() / exact.abs().max() < 0.02


@pytest.mark.parametrize("backend", usable_backends())
@pytest.mark.parametrize("width", [64, 576, 1024])
def test_each_row_of_a_batch_gets_exactly_what_it_gets_alone(backend, width) -> None:
    """One scale per token and one rotation product per token: a user's reply does not depend
    on who shares the decoding step."""
    torch.manual_seed(1)
    layer = int8_linear(torch.randn(64, width), None, Recipe(activation_bits(), backend))
    batch = torch.randn(6, width) * torch.tensor([1.0, 100.0, 0.01, 1.0, 5.0, 1.0]).unsqueeze(1)
    with torch.inference_mode():
        together = layer(batch)
        for row in range(6):
            assert torch.equal(layer(batch[row : row + 1])[0], together[row])


def test_every_product_library_computes_the_same_numbers() -> None:
    """The library is chosen for speed on this CPU (model.int8_products), never for answers."""
    torch.manual_seed(2)
    weight, x = torch.randn(80, 256), torch.randn(5, 256)
    outs = [
        int8_linear(weight, None, Recipe(activation_bits(), backend))(x)
        for backend in usable_backends()
    ]
    for out in outs[1:]:
        assert (out - outs[0]).abs().max() <= 1e-5 * outs[0].abs().max()


def test_the_default_library_is_one_this_cpu_computes_exactly() -> None:
    assert default_backend() in usable_backends()
