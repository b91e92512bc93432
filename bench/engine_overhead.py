"""Engine overhead benchmark (not a test): the fp32 engine against raw fp32 `model.generate`.

The same weights and the same ids on both paths, so the difference is what the engine adds:
prompt building, admission, the scheduler thread, streaming and incremental decoding. Measures,
interleaved over several rounds in ONE run: time to first token for 128- and 512-token prompts,
decode tokens/s over 64 tokens, and this process's peak RSS. Target: under 5% overhead, judged
by the median of the rounds' engine/baseline ratios (each round runs both paths back to back, so
drift on a shared machine hits both alike); best-of-n on each side is printed too, but picks its
two figures from different moments and swung between -1% and +13% on a noisy machine.
(bench.engine_bench measures the speed-ups: int8, prefix cache, batching.)

    python -m bench.engine_overhead [--cache data/bench-model] [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import os
import statistics

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
from model.loader import load_model
from model.settings import GenerationSettings, ModelSettings
from model.threaded_engine import ThreadedEngine

DECODE_TOKENS = 64
CASES = {  # name: (prompt tokens, new tokens)
    "TTFT, 128-token prompt": (128, 1),
    "TTFT, 512-token prompt": (512, 1),
    f"decode tok/s, {DECODE_TOKENS} tokens": (128, DECODE_TOKENS),
}


def main() -> None:
    args = bench_parser(__doc__.splitlines()[0], rounds=5).parse_args()
    if not model_ready(args, "bench.engine_overhead"):
        return

    # The product's fp32 path; no prefix cache, so every round prefills in full.
    model_settings = ModelSettings(
        source="local",
        path=args.cache,
        threads=args.threads,
        quantization="none",
        prefix_cache_mb=0,
    )
    loaded = load_model(args.cache, model_settings)
    settings = GenerationSettings(
        temperature=0.0, repetition_penalty=1.0, max_new_tokens=1024, max_input_tokens=4096
    )
    engine = ThreadedEngine(loaded, settings)
    raw = BaselineProcess(args.cache, args.threads)  # the same weights, in a process of its own
    prompts = {n: prompt_messages(loaded, settings, n) for n in (128, 512)}
    raw.generate(prompts[128][1], 2)  # warm-up: page in the weights
    engine_run(engine, prompts[128][0], 2)
    load_before = os.getloadavg()[0]

    results = {name: {"baseline": [], "engine": []} for name in CASES}
    for round_no in range(args.rounds):
        for name, (prompt_len, new_tokens) in CASES.items():
            messages, ids = prompts[prompt_len]
            order = ["baseline", "engine"] if round_no % 2 == 0 else ["engine", "baseline"]
            for path in order:  # alternating the order spreads drift evenly
                if path == "baseline":
                    ttft, tps = baseline(raw, ids, new_tokens)
                else:
                    ttft, tps = engine_run(engine, messages, new_tokens)
                results[name][path].append(tps if name.startswith("decode") else ttft)
    engine.close()
    raw.close()
    report(results, args, load_before, os.getloadavg()[0])


def report(results, args, load_before: float, load_after: float) -> None:
    print(f"\n{cpu_name()}; torch {torch.__version__}, {args.threads} threads")
    print(f"{args.rounds} interleaved rounds; load average {load_before:.2f} -> {load_after:.2f}")
    print(f"{'measure':<26}{'baseline':>10}{'engine':>10}{'ratio':>8}  (median of round ratios)")
    worst = 0.0
    for name, runs in results.items():
        decode = name.startswith("decode")
        pick = max if decode else min
        pairs = zip(runs["engine"], runs["baseline"], strict=True)
        ratio = statistics.median(e / b for e, b in pairs)
        base, eng = statistics.median(runs["baseline"]), statistics.median(runs["engine"])
        best_base, best_eng = pick(runs["baseline"]), pick(runs["engine"])
        # Overhead: engine slower than baseline (longer TTFT, or fewer tokens per second).
        worst = max(worst, (1 / ratio - 1) if decode else (ratio - 1))
        print(
            f"{name:<26}{base:>10.3f}{eng:>10.3f}{ratio:>8.3f}"
            f"  best-of-n {best_base:.3f} / {best_eng:.3f} = {best_eng / best_base:.3f}"
        )
    print(f"peak RSS of this process (model and engine): {peak_rss_mb():.0f} MB")
    verdict = "PASS" if worst < 0.05 else "FAIL"
    print(f"engine overhead, median of round ratios, worst measure: {worst:+.1%} ({verdict}: < 5%)")


if __name__ == "__main__":
    main()
