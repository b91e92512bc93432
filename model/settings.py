"""Settings sections for the model and for generation limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["modelscope", "huggingface", "local", "tiny-random", "openai"] = "modelscope"
    id: str = "qwen/Qwen1.5-0.5B-Chat"
    path: Path | None = None  # required when source = "local"
    cache_dir: Path = Path("data/models")
    dtype: Literal["float32", "bfloat16"] = "float32"
    threads: int = Field(default=0, ge=0, le=256)  # 0: one per CPU core


class GenerationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    system_prompt: str = "You are a helpful assistant."
    max_new_tokens: int = Field(default=512, ge=1, le=8192)
    max_input_tokens: int = Field(default=2048, ge=16, le=32768)
    max_prompt_chars: int = Field(default=8000, ge=1, le=200_000)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.8, gt=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.05, ge=1.0, le=2.0)
    max_concurrent: int = Field(default=1, ge=1, le=64)
    max_queue: int = Field(default=16, ge=0, le=10_000)
    queue_timeout_seconds: float = Field(default=300.0, gt=0)
