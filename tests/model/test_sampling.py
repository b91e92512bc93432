"""Client-supplied sampling values are clamped to safe ranges, defaults come from settings."""

from __future__ import annotations

import math

import pytest

from model.sampling import resolve_sampling
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
