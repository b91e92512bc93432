"""Engine speed benchmark (not a test): the engine as settings.toml ships it against raw fp32
`model.generate`.

Builds once (cached) a random-weight model of the exact Qwen1.5-0.5B-Chat shape, then in ONE run
measures through the engine API with the shipped [model] and [generation] settings (quantization,
prefix cache, batched decoding up to max_concurrent; prompt building, threads, incremental
decoding included) and through raw fp32 `generate` on the same ids, 2 threads:
time to first token for a 128-token prompt, single-stream decode tokens/s, a follow-up turn after
~1,500 tokens of conversation against the same message with no history, 8 concurrent streams of
64 tokens against one, and peak RSS of a process that serves with those settings (a child
process, since this one also holds the fp32 baseline). Prints each figure, its ratio and
PASS/FAIL per goal; and, with no goal, single-stream decoding with the shipped sampling defaults
against greedy decoding (the bench model carries Qwen's top-k 20, as the real model's
generation config does). Answer quality is bench.quality's.

One engine with the shipped generation settings; the timed requests ask for temperature 0
(greedy, as raw `generate` runs), keeping the shipped repetition penalty (1.05), which a request
cannot change: the engine does that little more work per token than the baseline. Raw `generate`
runs in a process of its own (bench.common.BaselineProcess).

    python -m bench.engine_bench [--cache data/bench-model] [--threads 2] [--rounds 3]
                                 [--settings settings.toml]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import torch

from bench.common import (
    BaselineProcess,
    baseline,
    bench_parser,
    cpu_name,
    engine_run,
    model_ready,
    peak_rss_mb,
    prompt_messages,
)
from config import load_settings
from model.loader import LoadedModel, load_model
from model.settings import GenerationSettings, ModelSettings
from model.threaded_engine import ThreadedEngine
from model.types import ChatMessage, GenerationRequest

DECODE_TOKENS = 64
CONCURRENT = 8
HISTORY_TOKENS = 1500
REPEATS = 3  # alternating pairs behind each first-token and 8-stream figure of a round
FOLLOW_UP = "Please summarise the meeting notes and list the action items."
GREEDY = {"temperature": 0.0}  # per request: the engine runs the shipped settings


def paired_medians(first, second) -> tuple[float, float]:
    """Median of REPEATS calls of each, alternating first and second (drift hits both alike)."""
    a, b = [], []
    for _ in range(REPEATS):
        a.append(first())
        b.append(second())
    return statistics.median(a), statistics.median(b)


def concurrent_run(engine: ThreadedEngine, messages, streams: int, tokens: int) -> float:
    """Aggregate tokens/s of `streams` requests started together, prefill included."""
    started = time.perf_counter()
    running = [
        engine.stream(GenerationRequest(messages=tuple(messages), max_new_tokens=tokens, **GREEDY))
        for _ in range(streams)
    ]
    readers = [threading.Thread(target=lambda s=s: list(s)) for s in running]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    elapsed = time.perf_counter() - started
    assert all(s.final.completion_tokens == tokens for s in running)
    return streams * tokens / elapsed


def follow_up_ttft(engine: ThreadedEngine, loaded: LoadedModel, settings) -> float:
    """TTFT of FOLLOW_UP after a first turn of ~HISTORY_TOKENS (question and reply) was answered."""
    # A short reply: random weights emit partial UTF-8 bytes, whose text ("\ufffd") re-encodes to
    # other tokens, so only the question's tokens are sure to match in the next turn's prompt.
    question, _ = prompt_messages(loaded, settings, HISTORY_TOKENS - 8)
    name = uuid.uuid4().hex  # a new conversation each time
    first = engine.stream(
        GenerationRequest(messages=question, max_new_tokens=8, conversation_id=name, **GREEDY)
    )
    reply = "".join(d.text for d in first)
    history = (*question, ChatMessage("assistant", reply), ChatMessage("user", FOLLOW_UP))
    ttft, _ = engine_run(engine, history, 1, conversation_id=name, **GREEDY)
    return ttft


SHIPPED = Path(__file__).resolve().parent.parent / "settings.toml"


def shipped_settings(args) -> tuple[ModelSettings, GenerationSettings]:
    """[model] and [generation] as the settings file has them, on the bench model and threads."""
    settings = load_settings(args.settings)
    model = settings.model.model_copy(
        update={"source": "local", "path": args.cache, "threads": args.threads}
    )
    return model, settings.generation


def rss_probe(args) -> None:
    """Child process: load as shipped, serve one stream then 8 concurrent ones, print peak RSS."""
    model_settings, settings = shipped_settings(args)
    loaded = load_model(args.cache, model_settings)
    engine = ThreadedEngine(loaded, settings)
    messages, _ = prompt_messages(loaded, settings, 128)
    engine_run(engine, messages, DECODE_TOKENS, **GREEDY)
    single = peak_rss_mb()
    concurrent_run(engine, messages, CONCURRENT, DECODE_TOKENS)
    engine.close()
    print(json.dumps({"single_mb": single, "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    parser = bench_parser(__doc__.splitlines()[0], rounds=3)
    parser.add_argument("--rss-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--settings", type=Path, default=SHIPPED, help="settings file (default: the shipped one)"
    )
    args = parser.parse_args()
    if not model_ready(args, "bench.engine_bench"):
        return
    if args.rss_probe:
        rss_probe(args)
        return
    # The child runs with this process's environment: the allocator settings the speed figures
    # were measured with are the ones its peak RSS is measured with.
    probe = subprocess.run(
        [*child(args), "--rss-probe"], check=True, capture_output=True, text=True
    )
    rss = json.loads(probe.stdout.strip().splitlines()[-1])

    fp32 = BaselineProcess(args.cache, args.threads)
    model_settings, settings = shipped_settings(args)
    loaded = load_model(args.cache, model_settings)
    engine = ThreadedEngine(loaded, settings)
    messages, ids = prompt_messages(loaded, settings, 128)
    fp32.generate(ids, 2)  # warm-up: page in the weights
    engine_run(engine, messages, 2, **GREEDY)
    load_before = os.getloadavg()[0]

    runs: dict[str, list[float]] = {name: [] for name in [*GOALS, "sampled"]}
    for round_no in range(args.rounds):
        # Alternating which path goes first spreads drift (other load on the machine) evenly;
        # each short figure is the median of REPEATS alternating pairs.
        paths = ("baseline", "engine") if round_no % 2 == 0 else ("engine", "baseline")
        for path in paths:
            if path == "baseline":
                _, base_tps = baseline(fp32, ids, DECODE_TOKENS)
            else:
                _, tps = engine_run(engine, messages, DECODE_TOKENS, **GREEDY)
                _, sampled_tps = engine_run(engine, messages, DECODE_TOKENS)
        base_ttft, ttft = paired_medians(
            lambda: fp32.generate(ids, 1),
            lambda: engine_run(engine, messages, 1, **GREEDY)[0],
        )
        runs["ttft"].append(ttft / base_ttft)
        runs["decode"].append(tps / base_tps)
        runs["sampled"].append(sampled_tps / tps)
        follow_up, fresh = paired_medians(
            lambda: follow_up_ttft(engine, loaded, settings),
            lambda: engine_run(engine, [ChatMessage("user", FOLLOW_UP)], 1, **GREEDY)[0],
        )
        runs["follow_up"].append(follow_up / fresh)
        # Medians of alternating runs, as for the first-token figures: one run each swung 2.8-3.4x.
        single, together = paired_medians(
            lambda: concurrent_run(engine, messages, 1, DECODE_TOKENS),
            lambda: concurrent_run(engine, messages, CONCURRENT, DECODE_TOKENS),
        )
        runs["concurrent"].append(together / single)
        print(
            f"round {round_no + 1}: TTFT {base_ttft:.3f}s fp32 / {ttft:.3f}s engine; decode "
            f"{base_tps:.1f} / {tps:.1f} tok/s ({sampled_tps:.1f} sampled); follow-up "
            f"{runs['follow_up'][-1]:.2f}x fresh ({fresh:.3f}s); {CONCURRENT} streams {runs['concurrent'][-1]:.2f}x one "
            f"({single:.1f} tok/s alone)",
            flush=True,
        )
    engine.close()
    fp32.close()
    setup = (
        f"{args.settings.name}: quantization {model_settings.quantization}, "
        f"max_concurrent {settings.max_concurrent}, max_batch_size {model_settings.max_batch_size}, "
        f"KV cache {engine.kv_dtype}, follow-up attention {engine.prompt_dtype or 'as stored'}"
    )
    report(runs, rss, args, setup, load_before, os.getloadavg()[0])


def child(args) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.engine_bench",
        "--cache",
        str(args.cache),
        "--threads",
        str(args.threads),
        "--settings",
        str(args.settings),
    ]


GOALS = {  # name: (label, goal, lower is better)
    "ttft": ("TTFT 128-token prompt, engine / fp32", 0.35, True),
    "decode": ("decode tok/s single stream, engine / fp32", 2.5, False),
    "follow_up": ("follow-up after 1,500 tokens / no history", 1.5, True),
    "concurrent": (f"{CONCURRENT} streams x {DECODE_TOKENS} tok aggregate / one", 3.0, False),
}


def report(
    runs, rss: dict[str, float], args, setup: str, load_before: float, load_after: float
) -> None:
    print(f"\n{cpu_name()}; torch {torch.__version__}, {args.threads} threads")
    print(setup)
    print(f"{args.rounds} rounds; load average {load_before:.2f} -> {load_after:.2f}")
    print(f"{'measure':<50}{'median':>8}{'best':>8}{'goal':>9}  verdict (median)")
    for name, (label, goal, lower) in GOALS.items():
        median = statistics.median(runs[name])
        best = min(runs[name]) if lower else max(runs[name])
        ok = median <= goal if lower else median >= goal
        sign = "<=" if lower else ">="
        verdict = "PASS" if ok else "FAIL"
        print(f"{label:<50}{median:>8.2f}{best:>8.2f}{sign:>4}{goal:>5.2f}  {verdict}")
    # No goal: what the shipped sampling defaults cost against greedy (choosing the token each step).
    label = "decode tok/s with shipped sampling / greedy"
    print(
        f"{label:<50}{statistics.median(runs['sampled']):>8.2f}{max(runs['sampled']):>8.2f}  (no goal)"
    )
    label = f"peak RSS serving, 1 / {CONCURRENT} streams (MB)"
    verdict = "PASS" if rss["peak_rss_mb"] <= 1200 else "FAIL"
    print(
        f"{label:<50}{rss['single_mb']:>8.0f}{rss['peak_rss_mb']:>8.0f}{'<=':>4}{1200:>5}  {verdict}"
    )


if __name__ == "__main__":
    main()
