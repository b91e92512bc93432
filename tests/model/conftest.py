"""Shared fixtures: the tiny random model (built once per session), engines, scripted models."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from transformers import GenerationConfig

from model.loader import LoadedModel, load_model
from model.settings import GenerationSettings, ModelSettings
from model.threaded_engine import ThreadedEngine
from model.tiny_random import build_tiny_model
from model.types import ChatMessage, GenerationRequest

# A long cap lets a generation run for seconds on the tiny model, so there is time to cancel it.
LONG = 8192  # the settings maximum


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-random")


@pytest.fixture(scope="session")
def loaded(tiny_model_dir: Path) -> LoadedModel:
    return load_model(tiny_model_dir, ModelSettings(source="tiny-random", threads=1))


@pytest.fixture(scope="session")
def tokenizer(loaded: LoadedModel):
    return loaded.tokenizer


@pytest.fixture
def make_engine(loaded: LoadedModel) -> Iterator[Callable[..., ThreadedEngine]]:
    """Build engines with GenerationSettings overrides; all are closed after the test."""
    engines: list[ThreadedEngine] = []

    def make(model: LoadedModel | None = None, **overrides: object) -> ThreadedEngine:
        settings = GenerationSettings(**{"max_new_tokens": LONG, **overrides})
        engine = ThreadedEngine(model or loaded, settings)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close(timeout=5)


def ask(text: str, **kwargs: object) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage("user", text),), **kwargs)


def worker_thread(request_id: str) -> threading.Thread | None:
    """The engine's generating thread for a request, found the way an operator would: by name."""
    name = f"generate-{request_id}"
    return next((t for t in threading.enumerate() if t.name == name), None)


class ScriptedModel:
    """Stands in for a transformers model: 'generates' a fixed id sequence through the same hooks.

    It honours streamer and stopping_criteria exactly as generate does, so the engine's threading,
    streaming and decoding are exercised with text we choose (random weights cannot write Chinese).
    """

    def __init__(self, script: list[int], eos_id: int, fail_after: int | None = None) -> None:
        self.script = script
        self.fail_after = fail_after
        self.generation_config = GenerationConfig(eos_token_id=[eos_id], pad_token_id=eos_id)

    def generate(self, input_ids, attention_mask, generation_config, streamer, stopping_criteria):
        streamer.put(input_ids[0])
        ids = input_ids
        for i, token in enumerate(self.script[: generation_config.max_new_tokens]):
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError("boom: internal detail /srv/secret")
            streamer.put(torch.tensor([token]))
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            if token in generation_config.eos_token_id or stopping_criteria(ids, None).all():
                break
        streamer.end()
        return ids
