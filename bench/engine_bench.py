"""Engine overhead benchmark (not a test): the project's engine against raw fp32 `model.generate`.

Builds once (cached) a random-weight model of the exact Qwen1.5-0.5B-Chat shape, then in ONE run
measures, through the engine API (prompt building, worker thread, streamer, incremental decoding)
and through raw `generate` on the same ids: time to first token for 128- and 512-token prompts,
decode tokens/s over 64 tokens, and peak RSS. Prints each figure and the engine/baseline ratio.

    python -m bench.engine_bench [--cache data/bench-model] [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import threading
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
DECODE_TOKENS = 64
WORD = " you"  # one token per repetition in the tiny tokenizer


def build_bench_model(directory: Path) -> None:
    """Random Qwen1.5-0.5B-shaped weights with the tiny tokenizer (ids beyond it are never emitted)."""
    tokenizer = build_tokenizer()
    pad_id, _, im_end_id = (tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS)
    vocab = QWEN_05B_SHAPE["vocab_size"]
    # Zero rows never win the argmax: generation stays inside the tiny vocabulary and never stops.
    silent = [pad_id, im_end_id, *range(len(tokenizer), vocab)]
    model = build_random_qwen2(eos_id=im_end_id, pad_id=pad_id, silent_ids=silent, **QWEN_05B_SHAPE)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    (directory / MARKER).write_text("bench")


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


def baseline(loaded: LoadedModel, ids: list[int], new_tokens: int) -> tuple[float, float]:
    """(time to first token, decode tok/s) of raw generate: ttft = a 1-token run, decode = the rest."""
    ttft = off_main_thread(raw_generate, loaded, ids, 1)
    if new_tokens == 1:
        return ttft, 0.0
    total = off_main_thread(raw_generate, loaded, ids, new_tokens + 1)
    return ttft, new_tokens / (total - ttft)


def off_main_thread(fn, *args):
    """Run `fn` in a short-lived thread and return its result.

    Not on the main thread: each native thread that runs torch ops owns an OpenMP team for life,
    and once libgomp manages more threads than there are cores it throttles its spin-wait, which
    slowed decoding ~20% on 2 cores for whichever path ran beside the other's idle team. The
    server never runs torch on its main thread either; a finished thread's team goes with it.
    """
    box: list = []
    worker = threading.Thread(target=lambda: box.append(fn(*args)))
    worker.start()
    worker.join()
    return box[0]


def engine_run(engine: ThreadedEngine, messages, new_tokens: int) -> tuple[float, float]:
    """(time to first text, decode tok/s) as a caller of the engine sees them."""
    started = time.perf_counter()
    stream = engine.stream(GenerationRequest(messages=messages, max_new_tokens=new_tokens + 1))
    first = None
    for _delta in stream:
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    assert stream.stats.completion_tokens == new_tokens + 1
    decode = new_tokens / (end - first) if new_tokens > 1 else 0.0
    return first - started, decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("data/bench-model"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.build_only:
        build_bench_model(args.cache)
        return
    if not (args.cache / MARKER).is_file():
        print(
            f"building the Qwen1.5-0.5B-shaped random model in {args.cache} (once) ...", flush=True
        )
        # In a child process, so building does not count towards this process's peak RSS.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.engine_bench",
                "--build-only",
                "--cache",
                str(args.cache),
            ],
            check=True,
        )

    model_settings = ModelSettings(source="local", path=args.cache, threads=args.threads)
    loaded = load_model(args.cache, model_settings)
    settings = GenerationSettings(
        temperature=0.0, repetition_penalty=1.0, max_new_tokens=1024, max_input_tokens=4096
    )
    engine = ThreadedEngine(loaded, settings)
    prompts = {n: prompt_messages(loaded, settings, n) for n in (128, 512)}
    off_main_thread(raw_generate, loaded, prompts[128][1], 2)  # warm-up: page in the weights
    engine_run(engine, prompts[128][0], 2)
    load_before = os.getloadavg()[0]

    results: dict[str, dict[str, list[float]]] = {
        name: {"baseline": [], "engine": []} for name in CASES
    }
    for round_no in range(args.rounds):
        for name, (prompt_len, new_tokens) in CASES.items():
            messages, ids = prompts[prompt_len]
            order = ["baseline", "engine"] if round_no % 2 == 0 else ["engine", "baseline"]
            for path in order:  # alternating the order spreads drift evenly
                if path == "baseline":
                    ttft, tps = baseline(loaded, ids, new_tokens)
                else:
                    ttft, tps = engine_run(engine, messages, new_tokens)
                results[name][path].append(tps if name.startswith("decode") else ttft)
    engine.close()
    report(results, args, os.getloadavg()[0], load_before)


CASES = {  # name: (prompt tokens, new tokens)
    "TTFT, 128-token prompt": (128, 1),
    "TTFT, 512-token prompt": (512, 1),
    "decode tok/s, 64 tokens": (128, DECODE_TOKENS),
}


def report(results, args, load_after: float, load_before: float) -> None:
    print(f"\n{cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{args.rounds} interleaved rounds; load average {load_before:.2f} -> {load_after:.2f}")
    print(f"{'measure':<26}{'baseline':>10}{'engine':>10}{'ratio':>8}  (median; best-of-n)")
    worst = 0.0
    for name, runs in results.items():
        decode = name.startswith("decode")
        pick = max if decode else min
        base, eng = statistics.median(runs["baseline"]), statistics.median(runs["engine"])
        best_base, best_eng = pick(runs["baseline"]), pick(runs["engine"])
        ratio, best_ratio = eng / base, best_eng / best_base
        # Overhead: engine slower than baseline (longer TTFT, or fewer tokens per second).
        worst = max(worst, (1 / best_ratio - 1) if decode else (best_ratio - 1))
        print(
            f"{name:<26}{base:>10.3f}{eng:>10.3f}{ratio:>8.3f}"
            f"  best {best_base:.3f} / {best_eng:.3f} = {best_ratio:.3f}"
        )
    print(f"peak RSS of this process (model, baseline and engine): {peak_rss_mb():.0f} MB")
    verdict = "PASS" if worst < 0.05 else "FAIL"
    print(f"engine overhead, best-of-n, worst measure: {worst:+.1%} ({verdict}: target < 5%)")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


if __name__ == "__main__":
    main()
