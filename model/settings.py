"""Settings sections for the model and for generation limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

KvCacheDtype = Literal["auto", "float32", "bfloat16"]
PromptAttentionDtype = Literal["auto", "float32", "bfloat16"]


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["modelscope", "huggingface", "local", "tiny-random", "openai"] = "modelscope"
    id: str = "qwen/Qwen1.5-0.5B-Chat"
    path: Path | None = None  # required when source = "local"
    cache_dir: Path = Path("data/models")
    dtype: Literal["float32", "bfloat16"] = "float32"
    threads: int = Field(default=0, ge=0, le=256)  # 0: one per CPU core
    # int8: int8 weights, activations rounded per token to ~15 bits (model/int8.py): 2-5x faster
    # decoding by CPU, well under half the memory, perplexity within 1% of fp32 (bench/quality.py).
    quantization: Literal["none", "int8"] = "int8"
    # Torch threads while prefilling a prompt and while decoding; 0: `threads`.
    prompt_threads: int = Field(default=0, ge=0, le=256)
    decode_threads: int = Field(default=0, ge=0, le=256)
    # KV kept per conversation so a follow-up turn prefills only its new tokens; 0 disables.
    # fp32 KV of Qwen1.5-0.5B is ~196 KB per token: 512 MB holds ~2,700 tokens of conversation.
    prefix_cache_mb: int = Field(default=512, ge=0, le=65_536)
    # dtype of cached keys and values: "auto" is bfloat16 with int8 weights on CPUs with AMX (half
    # the KV memory, faster attention there), else the model's dtype (model/kv_dtype.py).
    kv_cache_dtype: KvCacheDtype = "auto"
    # dtype of a prompt's attention products over a cached fp32 conversation (a follow-up turn):
    # "auto" is bfloat16 with int8 weights on CPUs with AVX512-BF16 but no AMX (2x faster products
    # there), else float32 (model/kv_dtype.py).
    prompt_attention_dtype: PromptAttentionDtype = "auto"
    # Most generations decoded together in one batched step (bounded by generation.max_concurrent).
    max_batch_size: int = Field(default=8, ge=1, le=64)
    # A longer prompt is prefilled this many tokens at a time, running replies decoding a step
    # between chunks: they pause for a chunk's prefill, not for the whole prompt's.
    prompt_chunk_tokens: int = Field(default=256, ge=16, le=32_768)

    @model_validator(mode="after")
    def _int8_options_fit(self) -> ModelSettings:
        if self.quantization == "int8" and self.dtype != "float32":
            raise ValueError(
                'quantization = "int8" needs dtype = "float32" (activations stay fp32)'
            )
        return self


class GenerationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    system_prompt: str = "You are a helpful assistant."
    max_new_tokens: int = Field(default=512, ge=1, le=8192)
    max_input_tokens: int = Field(default=2048, ge=16, le=32768)
    max_prompt_chars: int = Field(default=8000, ge=1, le=200_000)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.8, gt=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.05, ge=1.0, le=2.0)
    max_concurrent: int = Field(default=8, ge=1, le=64)
    # A request that finds every row taken waits in line if its expected wait (its place in line
    # over max_concurrent, in generations of the recent average length: model/admission.py) is at
    # most this; otherwise it is refused at once with a "try again in N s". 0: no waiting line.
    # Keep it under queue_timeout_seconds, which drops a request the estimate misjudged.
    max_wait_seconds: float = Field(default=180.0, ge=0, le=3600)
    # A hard bound on the line whatever the expected wait: a waiting request holds its prompt's
    # token ids (measured ~30 KB for 1,950 tokens) and a web worker thread; no KV until it runs.
    max_queue: int = Field(default=150, ge=0, le=10_000)
    queue_timeout_seconds: float = Field(default=300.0, gt=0)
    # A reply still "streaming" whose server has not saved or renewed it this long (the server was
    # killed) is marked "interrupted"; checked at start-up and every quarter of this by each server.
    interrupted_after_seconds: float = Field(default=60.0, ge=2.0, le=3600.0)

    @property
    def admitted_at_most(self) -> int:
        """Chat turns inside the engine at once, running or waiting in line: each holds a web
        worker while it waits for its first token."""
        return self.max_concurrent + self.max_queue
