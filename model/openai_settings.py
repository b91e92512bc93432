"""Settings section for the remote OpenAI-compatible inference server (`[model] source = "openai"`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class OpenAISettings(BaseModel):
    """Where generation goes when it runs on vLLM, TGI, llama.cpp's server, Ollama or similar.

    Limits (max tokens, concurrency, queue, system prompt) still come from [generation]; the key
    comes from the environment only (CHAT_OPENAI__API_KEY), never from settings.toml.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = "http://127.0.0.1:8000/v1"  # the server's OpenAI API root, ending in /v1
    model: str = "Qwen/Qwen1.5-0.5B-Chat"  # the name the server serves the model under
    api_key: SecretStr | None = None  # None: servers without authentication (sent as "none")
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    # Longest silence between two streamed chunks (includes the prompt's prefill) before giving up.
    read_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    ready_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    ready_cache_seconds: float = Field(default=5.0, ge=0, le=300)  # /readyz probes reuse one answer
    # Prompt budget estimate without the server's tokenizer: ASCII chars per token (others: 1 each).
    ascii_chars_per_token: float = Field(default=4.0, ge=1.0, le=16.0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")
