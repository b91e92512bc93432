"""Answer-quality benchmark (not a test): perplexity of every quantization mode against fp32.

Speed only counts if the answers stay right, and random weights cannot tell. This loads real
weights (SmolLM2-135M-Instruct, bench/smollm2.py) through the project's own loader once per
quantization mode the settings offer, and measures perplexity through the engine's own prefill
(bench/perplexity.py) on fixed texts: the first 4,096 tokens (or all) of each, in windows of
512. In ONE run it prints each mode's perplexity, its ratio to fp32, and PASS/FAIL against the
goal of at most 1% more than fp32 on every text. int8 runs as this CPU runs it (8-bit codes
where the CPU has VNNI); with 8-bit codes here, it also measures the 7-bit codes that CPUs with
AVX2 only get, so their quality is known from any machine.

Texts (bench/texts/): the GPL-3 and Apache-2.0 licence texts, verbatim (their terms allow
copies), and zh-workplace.txt, an original Chinese text about everyday work written for this
benchmark (the product's users write both languages).

    python -m bench.quality [--threads 2] [--tokens 4096]
"""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

import torch

from bench.common import cpu_name
from bench.perplexity import WINDOW, perplexity, text_ids
from bench.smollm2 import smollm2_dir
from model.int8 import load_int8_model
from model.int8_products import activation_bits, default_backend
from model.loader import LoadedModel, load_model
from model.settings import ModelSettings

TEXTS = ("gpl-3.txt", "apache-2.0.txt", "zh-workplace.txt")
GOAL = 1.01  # every mode's perplexity at most 1% above fp32's, on every text


def quantization_modes() -> list[str]:
    """Every `model.quantization` value the settings accept, fp32 ("none") first."""
    modes = typing.get_args(ModelSettings.model_fields["quantization"].annotation)
    return ["none", *(m for m in modes if m != "none")]


def load(model_dir: Path, mode: str, threads: int) -> LoadedModel:
    settings = ModelSettings(source="local", path=model_dir, quantization=mode, threads=threads)
    return load_model(model_dir, settings)


def seven_bit(model_dir: Path, like: LoadedModel) -> LoadedModel:
    """int8 with 7-bit activation codes, as CPUs without VNNI run it (same products otherwise)."""
    model = load_int8_model(model_dir, bits=7, backend=default_backend())
    return LoadedModel(
        model, like.tokenizer, model_dir, settings=like.settings, quantization="int8"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=4096, help="per text, at most")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = smollm2_dir()
    results: dict[str, dict[str, float]] = {}
    ids: dict[str, list[int]] = {}
    for mode in quantization_modes():
        loaded = load(model_dir, mode, args.threads)
        variants = [(mode, loaded)]
        if mode == "int8" and activation_bits() == 8:
            variants.append(("int8, 7-bit codes (AVX2-only CPUs)", seven_bit(model_dir, loaded)))
        for name, variant in variants:
            for text in TEXTS:
                ids.setdefault(text, text_ids(variant, text, args.tokens))
                results.setdefault(name, {})[text] = perplexity(variant, ids[text])
                print(f"{name:<36} {text:<18} {results[name][text]:8.3f}", flush=True)
    report(results, ids, args)


def report(results: dict[str, dict[str, float]], ids: dict[str, list[int]], args) -> None:
    print()
    print(f"{cpu_name()}, {args.threads} threads; torch {torch.__version__}")
    print(f"SmolLM2-135M-Instruct; windows of {WINDOW} tokens; int8 on {default_backend()}")
    header = "".join(f"{t.removesuffix('.txt') + f' ({len(ids[t])})':>26}" for t in TEXTS)
    print(f"{'perplexity (ratio to fp32)':<36}{header}  verdict")
    failed = False
    for name, by_text in results.items():
        cells, ok = "", True
        for text in TEXTS:
            ratio = by_text[text] / results["none"][text]
            ok = ok and ratio <= GOAL
            cells += f"{by_text[text]:>16.3f} ({ratio:.4f})"
        verdict = "(reference)" if name == "none" else ("PASS" if ok else "FAIL")
        failed = failed or not ok
        print(f"{name:<36}{cells}  {verdict}")
    print(f"goal: every mode within {GOAL - 1:.0%} of fp32 on every text")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
