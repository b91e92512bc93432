"""What both benchmarks share: the Qwen1.5-0.5B-shaped random model, prompts of an exact length,
raw fp32 `generate` as the baseline, and timing through the engine API."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from model.loader import LoadedModel, load_model
from model.prompt import build_prompt
from model.settings import GenerationSettings, ModelSettings
from model.threaded_engine import ThreadedEngine
from model.tiny_random import MARKER, SPECIAL_TOKENS, build_random_qwen2, build_tokenizer
from model.types import ChatMessage, GenerationRequest

QWEN_05B_SHAPE = {
    "vocab_size": 151936,
    "hidden_size": 1024,
    "intermediate_size": 2816,
    "num_layers": 24,
    "num_heads": 16,
    "num_kv_heads": 16,
}
WORD = " you"  # one token per repetition in the tiny tokenizer
BENCH_BUILD = "bench-2"  # written to the marker; a model built by another version is rebuilt
# Qwen1.5-0.5B-Chat's generation config samples from the top 20 (the engine reads it).
QWEN_TOP_K = 20


def bench_parser(description: str, rounds: int) -> argparse.ArgumentParser:
    """The options both benchmarks take."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cache", type=Path, default=Path("data/bench-model"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    return parser


def model_ready(args: argparse.Namespace, module: str) -> bool:
    """With --build-only, build the model and say False (nothing more to do); else make sure it exists."""
    if args.build_only:
        build_bench_model(args.cache)
        return False
    ensure_bench_model(module, args.cache)
    return True


def ensure_bench_model(module: str, cache: Path) -> None:
    """Build the model once, in a child process (building must not count towards peak RSS)."""
    marker = cache / MARKER
    if marker.is_file() and marker.read_text() == BENCH_BUILD:
        return
    print(f"building the Qwen1.5-0.5B-shaped random model in {cache} (once) ...", flush=True)
    command = [sys.executable, "-m", module, "--build-only", "--cache", str(cache)]
    subprocess.run(command, check=True)


def build_bench_model(directory: Path) -> None:
    """Random Qwen1.5-0.5B-shaped weights with the tiny tokenizer (ids beyond it are never emitted)."""
    tokenizer = build_tokenizer()
    pad_id, _, im_end_id = (tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS)
    vocab = QWEN_05B_SHAPE["vocab_size"]
    # Zero rows never win the argmax: generation stays inside the tiny vocabulary and never stops.
    silent = [pad_id, im_end_id, *range(len(tokenizer), vocab)]
    model = build_random_qwen2(eos_id=im_end_id, pad_id=pad_id, silent_ids=silent, **QWEN_05B_SHAPE)
    model.generation_config.update(do_sample=True, top_k=QWEN_TOP_K)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    (directory / MARKER).write_text(BENCH_BUILD)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def prompt_messages(loaded: LoadedModel, settings: GenerationSettings, tokens: int):
    """A user message whose full ChatML prompt is exactly `tokens` long."""
    overhead = len(
        build_prompt(
            loaded.tokenizer, settings.system_prompt, [ChatMessage("user", "")], 10**6
        ).input_ids
    )
    messages = (ChatMessage("user", WORD * (tokens - overhead)),)
    ids = build_prompt(loaded.tokenizer, settings.system_prompt, messages, 10**6).input_ids
    assert len(ids) == tokens, (len(ids), tokens)
    return messages, ids


def raw_generate(loaded: LoadedModel, ids: list[int], new_tokens: int) -> float:
    input_ids = torch.tensor([ids])
    started = time.perf_counter()
    with torch.inference_mode():
        out = loaded.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            max_new_tokens=new_tokens,
            repetition_penalty=1.0,
        )
    elapsed = time.perf_counter() - started
    assert out.shape[1] - len(ids) == new_tokens  # the eos row is zero: it never stops early
    return elapsed


class BaselineProcess:
    """Raw fp32 `generate` on the bench model, in a process of its own, loaded once.

    Not in the engine's process: the engine keeps its decoder thread, and that thread's OpenMP
    team, for its life; once libgomp manages more threads than there are cores it throttles
    every team's spin-wait, which slowed whichever path ran beside the other's idle team by
    20-50% on 2 cores. Each process has its own count, so here each side runs as the server
    does, with the only team in its process.
    """

    def __init__(self, cache: Path, threads: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(
            target=_serve_baseline, args=(theirs, str(cache), threads), daemon=True
        )
        self._process.start()
        theirs.close()
        self._pipe.recv()  # loaded

    def generate(self, ids: list[int], new_tokens: int) -> float:
        """Seconds for raw generate to add `new_tokens` to `ids` (greedy)."""
        self._pipe.send((list(ids), new_tokens))
        return self._pipe.recv()

    def close(self) -> None:
        self._pipe.send(None)
        self._process.join(timeout=60)


def _serve_baseline(pipe, cache: str, threads: int) -> None:
    settings = ModelSettings(source="local", path=Path(cache), threads=threads, quantization="none")
    loaded = load_model(Path(cache), settings)
    pipe.send("loaded")
    while (job := pipe.recv()) is not None:
        pipe.send(raw_generate(loaded, *job))


def baseline(raw: BaselineProcess, ids: list[int], new_tokens: int) -> tuple[float, float]:
    """(time to first token, decode tok/s) of raw generate: ttft = a 1-token run, decode = the rest."""
    ttft = raw.generate(ids, 1)
    if new_tokens == 1:
        return ttft, 0.0
    total = raw.generate(ids, new_tokens + 1)
    return ttft, new_tokens / (total - ttft)


def engine_run(engine: ThreadedEngine, messages, new_tokens: int, **kwargs) -> tuple[float, float]:
    """(time to first token, decode tok/s) as a caller of the engine sees them.

    First token, as raw `generate` is timed: from calling stream() until the engine has sampled
    the first token id (the engine's own stamp, taken from inside stream(), so prompt building
    counts). Not the first visible text: with random weights a token is often a fragment of a
    UTF-8 character that shows only with the next one, which real weights rarely produce; the
    engine hands each token over the moment it is sampled. Decode: the tokens after the first,
    over the time from the first token to the last text.
    """
    started = time.perf_counter()
    stream = engine.stream(
        GenerationRequest(messages=tuple(messages), max_new_tokens=new_tokens + 1, **kwargs)
    )
    returned = time.perf_counter()
    for _delta in stream:
        pass
    end = time.perf_counter()
    assert stream.final.completion_tokens == new_tokens + 1
    # final.time_to_first_token runs from the job's creation inside stream(): adding all of
    # stream()'s own time counts the part after the job was created twice (microseconds).
    ttft = (returned - started) + stream.final.time_to_first_token
    decode = new_tokens / (end - started - ttft) if new_tokens > 1 else 0.0
    return ttft, decode


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"
