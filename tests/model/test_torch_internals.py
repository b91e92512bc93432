"""The private torch and transformers APIs are checked where an engine is built: other versions
than the pinned ones, or a private name gone, stop start-up with one clear line."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import transformers

from model import torch_internals
from model.loader import load_model
from model.settings import GenerationSettings, ModelSettings
from model.threaded_engine import ThreadedEngine
from model.torch_internals import UnsupportedLibraries, check_supported


def test_the_installed_versions_are_the_supported_ones() -> None:
    check_supported()  # what requirements.txt pins
    assert torch.__version__.startswith("2.13.")
    assert transformers.__version__.startswith("5.24.")


@pytest.mark.parametrize(
    ("versions", "named"),
    [
        ({"torch_version": "2.14.0"}, "torch 2.14.0"),
        ({"torch_version": "2.12.1+cpu"}, "torch 2.12.1+cpu"),
        ({"transformers_version": "5.25.0.dev0"}, "transformers 5.25.0.dev0"),
        ({"transformers_version": "4.57.1"}, "transformers 4.57.1"),
        ({"torch_version": "nightly"}, "torch nightly"),
    ],
)
def test_another_version_is_refused_with_one_line_naming_both(versions, named) -> None:
    with pytest.raises(UnsupportedLibraries) as refused:
        check_supported(**versions)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{named} is not supported")
    assert "torch 2.13.x and transformers 5.24.x" in message
    assert "requirements.txt" in message


def test_a_patch_release_of_the_same_series_is_accepted() -> None:
    check_supported(torch_version="2.13.4+cpu", transformers_version="5.24.9")


def test_a_private_name_gone_is_refused_by_name(monkeypatch) -> None:
    def gone() -> object:
        raise AttributeError("module 'torch' has no attribute '_gone'")

    names = {**torch_internals._PRIVATE_NAMES, "torch._gone": gone}
    monkeypatch.setattr(torch_internals, "_PRIVATE_NAMES", names)
    with pytest.raises(UnsupportedLibraries, match=r"lack torch\._gone, which the engine needs"):
        check_supported()


def test_building_an_engine_or_loading_a_model_checks_the_versions(
    loaded, tiny_model_dir: Path, monkeypatch
) -> None:
    newer = functools.partial(check_supported, torch_version="2.14.0")
    monkeypatch.setattr(torch_internals, "check_supported", newer)  # what loading imports
    monkeypatch.setattr("model.threaded_engine.check_supported", newer)
    with pytest.raises(UnsupportedLibraries, match=r"torch 2\.14\.0 is not supported"):
        ThreadedEngine(loaded, GenerationSettings())
    with pytest.raises(UnsupportedLibraries, match=r"torch 2\.14\.0 is not supported"):
        load_model(tiny_model_dir, ModelSettings(source="tiny-random", threads=1))
