"""How far under raw fp32 the int8 first token can go on this CPU (not a test).

A 128-token prompt's first token is mostly its matrix products (96 block products of 128 rows,
the output head's of one), and the engine runs them on torch's int8 kernels (fbgemm's, or
oneDNN's on CPUs with AMX: model.int8_products), on twice the rows (each token's codes and what
their rounding lost: model.int8). This measures in ONE run, against raw fp32 `generate`'s first token
(in its own process, as bench.engine_bench does):

- the int8 prefill: the engine's forward (model.lean_forward) over the prompt, no scheduler;
- the int8 products alone within it: the time torch's profiler gives the int8 product ops.

Both print as ratios to raw fp32. The products' ratio is a floor for the engine's first-token goal
(<= 0.35x): everything else in the engine (attention, norms, Python, scheduling) only adds to it,
so where it is above 0.35x on a CPU, only a faster int8 product kernel meets the goal there.

    python -m bench.prompt_floor [--cache data/bench-model] [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from bench.common import BaselineProcess, bench_parser, cpu_name, model_ready, prompt_messages
from bench.engine_bench import GOALS
from model.cpu_features import amx_tiles, int8_vnni
from model.decode_scheduler import prefill_chunk
from model.int8_products import default_backend
from model.lean_forward import lean_forward
from model.loader import load_model
from model.settings import GenerationSettings, ModelSettings
from model.slack_cache import slack_cache

PROMPT_TOKENS = 128
GOAL = GOALS["ttft"][1]  # the first-token goal, as engine_bench judges it
# The int8 product ops (fbgemm's, oneDNN's) as torch's profiler names them.
PRODUCT_OPS = (
    "quantized::linear_with_input_q_dq_qweight_dq_output_fp32",
    "onednn::qlinear_pointwise",
)


def prefill(forward, ids: list[int]) -> None:
    """The engine's prefill of one prompt, without the scheduler: logits of the last token."""
    with torch.inference_mode():
        prefill_chunk(forward, ids, 0, slack_cache())


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def product_seconds(forward, ids: list[int]) -> float:
    """Seconds the int8 product ops of one prefill took (their own time, as profiled)."""
    with profile(activities=[ProfilerActivity.CPU]) as profiled:
        prefill(forward, ids)
    return (
        sum(
            event.self_cpu_time_total
            for event in profiled.key_averages()
            if event.key.startswith(PRODUCT_OPS)
        )
        / 1e6
    )


def main() -> None:
    args = bench_parser(__doc__.splitlines()[0], rounds=5).parse_args()
    if not model_ready(args, "bench.prompt_floor"):
        return
    fp32 = BaselineProcess(args.cache, args.threads)
    settings = ModelSettings(
        source="local", path=args.cache, threads=args.threads, quantization="int8"
    )
    int8 = load_model(args.cache, settings)
    forward = lean_forward(int8.model)
    _, ids = prompt_messages(int8, GenerationSettings(), PROMPT_TOKENS)
    fp32.generate(ids, 1)  # warm-up: page in the weights, first calls' setup
    prefill(forward, ids)
    base, whole, products = [], [], []
    for round_no in range(args.rounds):
        # alternating which side goes first spreads drift (other load on the host) over both
        sides = [
            lambda: base.append(fp32.generate(ids, 1)),
            lambda: whole.append(timed(lambda: prefill(forward, ids))),
        ]
        for side in sides if round_no % 2 == 0 else sides[::-1]:
            side()
        products.append(product_seconds(forward, ids))
        print(
            f"round {round_no + 1}: raw fp32 {base[-1]:.3f}s; int8 prefill {whole[-1]:.3f}s, "
            f"its products {products[-1]:.3f}s",
            flush=True,
        )
    fp32.close()
    print(
        f"\n{cpu_name()}; torch {torch.__version__}, {args.threads} threads; AMX {amx_tiles()}, "
        f"AVX512-VNNI {int8_vnni()}; int8 products on {default_backend()}"
    )
    print(f"{PROMPT_TOKENS}-token prompt, {args.rounds} rounds, against raw fp32's first token:")
    for name, seconds in (
        ("int8 prefill (engine's forward)", whole),
        ("int8 products alone", products),
    ):
        ratios = sorted(s / b for s, b in zip(seconds, base, strict=True))
        print(
            f"  {name:<32} median {statistics.median(ratios):.2f}x, "
            f"rounds {ratios[0]:.2f}-{ratios[-1]:.2f}x"
        )
    share = statistics.median(products) / statistics.median(whole)
    print(f"  the products are {share:.0%} of the int8 prefill; first-token goal: <= {GOAL}x")


if __name__ == "__main__":
    main()
