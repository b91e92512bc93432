"""Fused q/k/v and gate/up projections: the same numbers as separate int8 Linears, in any call order."""

from __future__ import annotations

import itertools

import pytest
import torch

import model.int8 as int8
from model.fused_linear import FusedLinear, FusedPart
from model.int8 import Recipe, int8_linear
from model.int8_products import activation_bits, default_backend

ROWS = (48, 16, 16)  # q, k, v of a grouped-query block: parts of unequal size


@pytest.fixture
def parts_and_separate():
    torch.manual_seed(0)
    recipe = Recipe(activation_bits(), default_backend())
    weights = [torch.randn(rows, 64) for rows in ROWS]
    biases = [torch.randn(rows) for rows in ROWS]
    separate = [int8_linear(w, b, recipe) for w, b in zip(weights, biases, strict=True)]
    fused = FusedLinear(int8_linear(torch.cat(weights), torch.cat(biases), recipe), len(ROWS))
    bounds = [0, *torch.tensor(ROWS).cumsum(0).tolist()]
    parts = [FusedPart(fused, a, b) for a, b in itertools.pairwise(bounds)]
    return parts, separate, fused


def test_each_part_equals_its_own_int8_linear(parts_and_separate) -> None:
    parts, separate, _ = parts_and_separate
    x = torch.randn(2, 5, 64)
    with torch.inference_mode():
        for part, alone in zip(parts, separate, strict=True):
            assert torch.equal(part(x), alone(x))


def test_parts_called_with_different_inputs_each_get_their_own_answer(parts_and_separate) -> None:
    """A caller that does not pass one tensor to every part still gets right answers."""
    parts, separate, fused = parts_and_separate
    first, second = torch.randn(1, 3, 64), torch.randn(1, 3, 64)
    with torch.inference_mode():
        assert torch.equal(parts[0](first), separate[0](first))
        assert torch.equal(parts[1](second), separate[1](second))  # not first's product
        assert torch.equal(parts[1](second), separate[1](second))  # one part twice
        assert torch.equal(parts[2](second), separate[2](second))
        assert torch.equal(parts[0](first), separate[0](first))
    # Once every part of one input has been served, nothing is held until the next call.
    parts[0](first), parts[1](first), parts[2](first)
    assert fused._memo.input is None and fused._memo.output is None


def test_a_fused_model_computes_what_the_unfused_one_does(tiny_model_dir, monkeypatch) -> None:
    fused = int8.load_int8_model(tiny_model_dir)
    monkeypatch.setattr(int8, "FUSED_PROJECTIONS", ())
    unfused = int8.load_int8_model(tiny_model_dir)
    block = fused.model.layers[0]
    assert isinstance(block.self_attn.k_proj, FusedPart)
    assert isinstance(block.mlp.up_proj, FusedPart)
    assert not isinstance(unfused.model.layers[0].self_attn.k_proj, FusedPart)
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.inference_mode():
        assert torch.equal(fused(ids).logits, unfused(ids).logits)
