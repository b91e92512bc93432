"""Client-supplied sampling values are clamped to safe ranges, defaults come from settings."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from model.sampling import (
    SamplingParams,
    choose_token,
    resolve_sampling,
    sampling_distribution,
)
from model.settings import GenerationSettings
from tests.model.conftest import ask

SETTINGS = GenerationSettings(max_new_tokens=100, temperature=0.7, top_p=0.8)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, 100), (10, 10), (100, 100), (10**9, 100), (0, 1), (-5, 1)],
)
def test_max_new_tokens_is_capped(requested, expected) -> None:
    assert resolve_sampling(ask("q", max_new_tokens=requested), SETTINGS).max_new_tokens == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, 0.7), (1.3, 1.3), (50.0, 2.0), (-1.0, 0.0), (math.inf, 0.7), (math.nan, 0.7)],
)
def test_temperature_is_clamped_to_0_2(requested, expected) -> None:
    assert resolve_sampling(ask("q", temperature=requested), SETTINGS).temperature == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, 0.8), (0.5, 0.5), (7.0, 1.0), (0.0, 0.01), (-3.0, 0.01), (math.nan, 0.8)],
)
def test_top_p_is_clamped_to_0_1(requested, expected) -> None:
    assert resolve_sampling(ask("q", top_p=requested), SETTINGS).top_p == expected


def test_temperature_zero_means_greedy() -> None:
    assert resolve_sampling(ask("q", temperature=-2), SETTINGS).greedy
    assert not resolve_sampling(ask("q", temperature=0.1), SETTINGS).greedy


def transformers_scores(logits, ids, params, top_k) -> torch.Tensor:
    """What transformers' generate samples from (or takes the argmax of), the same processors."""
    scores = logits.reshape(1, -1).clone()
    if params.repetition_penalty != 1.0:
        seen = torch.tensor([ids])
        scores = RepetitionPenaltyLogitsProcessor(params.repetition_penalty)(seen, scores)
    if params.greedy:
        return scores[0]
    scores = TemperatureLogitsWarper(params.temperature)(None, scores)
    if top_k > 0:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if params.top_p < 1.0:
        scores = TopPLogitsWarper(params.top_p)(None, scores)
    return scores[0]


def random_logits(seed: int, vocab: int = 5000, grid: float | None = None) -> torch.Tensor:
    """Random logits with a repeated maximum; on a grid of that step, many more ties."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(vocab, generator=generator) * 2
    if grid is not None:
        logits = torch.round(logits / grid) * grid
    logits[[7, 4000]] = logits.max() + 1  # two tokens share the highest logit
    return logits


@pytest.mark.parametrize("penalty", [1.0, 1.05, 1.5])
def test_greedy_picks_what_transformers_picks(penalty) -> None:
    for seed in range(20):
        logits = random_logits(seed, grid=0.25)
        ids = [7, 7, 12, 4000, 99, 4999, 10**6]  # repeats, the maxima, an id past the vocabulary
        params = SamplingParams(10, 0.0, 1.0, penalty)
        expected = int(transformers_scores(logits, ids, params, 0).argmax())
        assert choose_token(logits, ids, params, top_k=0) == expected


@pytest.mark.parametrize(
    ("temperature", "top_p", "top_k"),
    [(0.7, 0.8, 20), (1.0, 1.0, 0), (0.3, 0.5, 0), (1.7, 0.95, 5), (0.7, 1.0, 20), (1.0, 0.01, 3)],
)
def test_sampling_draws_from_transformers_distribution(temperature, top_p, top_k) -> None:
    for seed in range(10):
        logits, ids = random_logits(seed), [3, 3, 8, 7, 2500]
        params = SamplingParams(10, temperature, top_p, 1.05)
        expected = torch.softmax(transformers_scores(logits, ids, params, top_k), dim=-1)
        tokens, probs = sampling_distribution(logits, ids, params, top_k)
        ours = torch.zeros_like(expected).index_put_((tokens,), probs)
        assert torch.equal(ours > 0, expected > 0)  # the same tokens can be drawn
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)


def test_tokens_tied_at_the_kth_logit_all_stay_candidates() -> None:
    logits = random_logits(1, grid=0.25)  # ~20 tokens share each grid value
    params = SamplingParams(10, 1.0, 1.0, 1.0)
    for top_k in (3, 20, 50):
        expected = transformers_scores(logits, [], params, top_k) > float("-inf")
        tokens, _ = sampling_distribution(logits, [], params, top_k)
        assert expected.sum() > top_k  # ties at the k-th value are kept, as transformers keeps them
        assert sorted(tokens.tolist()) == expected.nonzero().flatten().tolist()


def test_a_sampled_token_is_one_of_the_candidates() -> None:
    logits = random_logits(0)
    params = SamplingParams(10, 1.5, 1.0, 1.0)
    allowed = set(torch.topk(logits, 3).indices.tolist())
    drawn = {choose_token(logits, [], params, top_k=3) for _ in range(200)}
    assert drawn <= allowed and len(drawn) > 1
