"""The demo/test model: offline, deterministic, loadable the normal way, any Unicode text."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.tiny_random import MARKER, build_tiny_model

MIXED = "Hello, 世界! 今天天气很好。Emoji 😀 and Ελληνικά, ümlaut, 한국어."


def test_loads_through_the_auto_classes_with_chatml(loaded, tiny_model_dir: Path) -> None:
    tok = loaded.tokenizer
    assert type(loaded.model).__name__ == "Qwen2ForCausalLM"
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token == "<|endoftext|>"
    text = tok.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert (
        text
        == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    )
    assert (tiny_model_dir / "model.safetensors").is_file()


def test_any_unicode_text_round_trips(tokenizer) -> None:
    ids = tokenizer.encode(MIXED, add_special_tokens=False)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == MIXED


def test_chat_markers_are_single_special_tokens(tokenizer) -> None:
    for token in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        ids = tokenizer.encode(token, add_special_tokens=False)
        assert len(ids) == 1
        assert tokenizer.decode(ids, skip_special_tokens=True) == ""


def test_build_is_reused_when_complete(tiny_model_dir: Path) -> None:
    weights = tiny_model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert build_tiny_model(tiny_model_dir) == tiny_model_dir
    assert weights.stat().st_mtime_ns == before
    assert (tiny_model_dir / MARKER).is_file()


def test_build_is_deterministic(tiny_model_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name


def test_refuses_to_overwrite_a_foreign_directory(tmp_path: Path) -> None:
    target = tmp_path / "tiny-random"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="not a complete tiny model"):
        build_tiny_model(target)
    assert (target / "notes.txt").read_text() == "mine"
