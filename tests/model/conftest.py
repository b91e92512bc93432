"""Shared fixtures: the tiny random model (built once per session), engines, scripted models."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

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
    """fp32, the reference every quantization is compared with."""
    settings = ModelSettings(source="tiny-random", threads=1, quantization="none")
    return load_model(tiny_model_dir, settings)


@pytest.fixture(scope="session")
def int8_loaded(tiny_model_dir: Path) -> LoadedModel:
    """int8 as this CPU runs it (model.int8_products picks the product's library)."""
    settings = ModelSettings(source="tiny-random", threads=1, quantization="int8")
    return load_model(tiny_model_dir, settings)


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


def read_all(streams, timeout: float = 30) -> list[str]:
    """Drain every stream at once, as concurrent users' browsers would; each reply's text."""
    replies = [""] * len(streams)

    def drain(i: int) -> None:
        replies[i] = "".join(d.text for d in streams[i])

    readers = [threading.Thread(target=drain, args=(i,)) for i in range(len(streams))]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout)
    return replies


def until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Whether `condition` holds within `timeout` seconds (checked every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class ScriptedModel:
    """Stands in for a transformers model: each forward call 'predicts' the next scripted id.

    It is called the way the decode scheduler calls a real model (one prefill, then one call per
    step, batch of one), so threading, streaming and decoding are exercised with text we choose
    (random weights cannot write Chinese).
    """

    def __init__(self, script: list[int], eos_id: int, fail_after: int | None = None) -> None:
        self.script = script
        self.fail_after = fail_after
        self.calls = 0
        self.generation_config = GenerationConfig(eos_token_id=[eos_id], pad_token_id=eos_id)

    def __call__(self, *, input_ids, cache, **kwargs):
        step, self.calls = self.calls, self.calls + 1
        if self.fail_after is not None and step == self.fail_after:
            raise RuntimeError("boom: internal detail /srv/secret")
        # Certain under any sampling values: every other id is impossible.
        logits = torch.full((input_ids.shape[0], 1, max(self.script) + 1), float("-inf"))
        logits[:, -1, self.script[min(step, len(self.script) - 1)]] = 1.0
        return SimpleNamespace(logits=logits, cache=cache)


def batch_step(model, kv, tokens: list[int]) -> torch.Tensor:
    """One decoding step of a BatchedKV batch, as the scheduler runs it: each row's next logits."""
    mask, positions = kv.step_inputs()
    out = model(
        input_ids=torch.tensor([[t] for t in tokens]),
        attention_mask=mask,
        position_ids=positions,
        cache=kv.cache,
        use_cache=True,
    )
    kv.advance()
    return out.logits[:, -1]
