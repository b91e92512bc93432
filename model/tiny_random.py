"""A tiny random-weight Qwen2 chat model, built offline and deterministically.

It is what `--demo` and the tests run, because no machine here may download weights. The files are
the ones a real checkpoint has (config, safetensors, tokenizer.json, chat template), so the normal
AutoModelForCausalLM / AutoTokenizer path loads it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MARKER = ".tiny-random-complete"
BUILD_VERSION = "2"  # bump when the recipe changes, so old caches are rebuilt
SEED = 20240229

PAD_TOKEN = "<|endoftext|>"  # noqa: S105 (a vocabulary token, not a secret)
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)

# Qwen1.5-Chat's ChatML template, verbatim.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# A small fixed corpus, English and Chinese, so the merges are stable and CJK is split into bytes.
_CORPUS = (
    "Hello! How can I help you today?",
    "You are a helpful assistant. Answer briefly and politely.",
    "The quick brown fox jumps over the lazy dog.",
    "Please summarise the meeting notes and list the action items.",
    "What is the capital of France? The capital of France is Paris.",
    "Write a short poem about the sea, the wind and the morning light.",
    "def add(a, b):\n    return a + b\n",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024.",
    "你好！今天我能帮你做什么？",
    "你是一个乐于助人的助手。请简洁、礼貌地回答。",
    "北京是中国的首都。上海是一个大城市。",
    "请总结会议记录，并列出待办事项。",
    "人工智能正在改变我们的工作和生活方式。",
)


def build_tiny_model(target_dir: Path) -> Path:
    """Build the tiny model into `target_dir` (reused when already complete) and return the dir."""
    target_dir = Path(target_dir)
    if _is_complete(target_dir):
        return target_dir
    if target_dir.exists() and any(target_dir.iterdir()):
        raise RuntimeError(f"{target_dir} exists but is not a complete tiny model; remove it")
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so a crash or a concurrent builder never leaves half a model.
    staging = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}-", dir=target_dir.parent))
    staging.chmod(0o755)
    try:
        _build_into(staging)
        (staging / MARKER).write_text(BUILD_VERSION)
        if target_dir.exists():
            target_dir.rmdir()  # empty (checked above); rename needs it gone
        os.rename(staging, target_dir)
    except OSError:
        if not _is_complete(target_dir):
            raise
        # Another process finished first: use its copy.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target_dir


def _is_complete(directory: Path) -> bool:
    marker = directory / MARKER
    return marker.is_file() and marker.read_text().strip() == BUILD_VERSION


def _build_into(directory: Path) -> None:
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(directory)
    pad_id, _, im_end_id = (tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS)
    model = build_random_qwen2(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        eos_id=im_end_id,
        pad_id=pad_id,
        silent_ids=_silent_ids(tokenizer),
        initializer_range=0.3,  # large enough that layers mix tokens instead of echoing the last one
    )
    model.save_pretrained(directory)


def _silent_ids(tokenizer) -> list[int]:
    """Special tokens, partial UTF-8 bytes and control characters: never emitted by the demo model."""
    silent = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id], skip_special_tokens=True)
        if not text or "\ufffd" in text or any(not c.isprintable() and c != "\n" for c in text):
            silent.append(token_id)
    return silent


def build_tokenizer():  # -> PreTrainedTokenizerBase (import deferred)
    """Train a byte-level BPE on the fixed corpus: any Unicode text encodes, nothing is unknown."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_random_qwen2(
    *,
    vocab_size: int,
    hidden_size: int,
    intermediate_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    eos_id: int,
    pad_id: int,
    silent_ids: list[int],
    initializer_range: float = 0.02,
    max_position_embeddings: int = 32768,
):  # -> Qwen2ForCausalLM (import deferred)
    """A seeded random Qwen2ForCausalLM with tied embeddings; `silent_ids` get zero embeddings.

    A zero row gives a zero logit, which never wins against the random others, so greedy decoding
    never emits those ids: with eos among them, runs always reach max_new_tokens, which makes
    limits and cancellation testable and keeps the demo's output printable.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        rope_theta=1e6,
        rms_norm_eps=1e-6,
        initializer_range=initializer_range,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        model.get_input_embeddings().weight[silent_ids] = 0.0
    model.generation_config = GenerationConfig(
        eos_token_id=[eos_id, pad_id], pad_token_id=pad_id, do_sample=False
    )
    return model.eval()
