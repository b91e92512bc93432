"""Model sources: clear one-line failures with both fixes; one loading path for every source."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub
import modelscope
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from modelscope_hub.errors import CacheNotFound, NetworkError

from model.loader import ModelUnavailable, load_model, resolve_model_dir
from model.settings import ModelSettings


def assert_one_line_with_fixes(exc: ModelUnavailable) -> str:
    message = str(exc)
    assert "\n" not in message
    assert 'source = "local"' in message
    assert "path" in message
    assert "--demo" in message
    return message


def test_local_path_missing(tmp_path: Path) -> None:
    settings = ModelSettings(source="local", path=tmp_path / "nowhere")
    with pytest.raises(ModelUnavailable) as info:
        resolve_model_dir(settings)
    message = assert_one_line_with_fixes(info.value)
    assert "nowhere" in message


def test_local_source_without_path() -> None:
    with pytest.raises(ModelUnavailable) as info:
        resolve_model_dir(ModelSettings(source="local"))
    assert "needs [model] path" in assert_one_line_with_fixes(info.value)


def test_local_path_with_a_model(tiny_model_dir: Path) -> None:
    assert resolve_model_dir(ModelSettings(source="local", path=tiny_model_dir)) == tiny_model_dir


def test_tiny_random_is_built_in_the_cache_dir(tiny_model_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_model_dir, tmp_path / "tiny-random")  # already built: reused, not rebuilt
    path = resolve_model_dir(ModelSettings(source="tiny-random", cache_dir=tmp_path))
    assert path == tmp_path / "tiny-random"


def test_modelscope_offline_with_nothing_cached(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def offline(model_id, cache_dir=None, local_files_only=False, **kwargs):
        calls.append((model_id, cache_dir, local_files_only))
        if local_files_only:
            raise CacheNotFound("Cannot find cached snapshot\nfor model repo")
        raise NetworkError("[E1020] Connection failed:\n Max retries exceeded (Errno 111)")

    monkeypatch.setattr(modelscope, "snapshot_download", offline)
    settings = ModelSettings(source="modelscope", cache_dir=tmp_path)
    with pytest.raises(ModelUnavailable) as info:
        resolve_model_dir(settings)
    message = assert_one_line_with_fixes(info.value)
    assert "qwen/Qwen1.5-0.5B-Chat" in message
    assert "ModelScope" in message
    assert "Connection failed" in message
    assert calls[0] == ("qwen/Qwen1.5-0.5B-Chat", str(tmp_path / "modelscope"), False)


def test_modelscope_offline_uses_a_cached_copy(tmp_path: Path, monkeypatch) -> None:
    cached = tmp_path / "modelscope" / "qwen" / "Qwen1.5-0.5B-Chat"
    cached.mkdir(parents=True)
    (cached / "config.json").write_text("{}")

    def offline(model_id, cache_dir=None, local_files_only=False, **kwargs):
        if local_files_only:
            return str(cached)
        raise NetworkError("[E1020] Connection failed")

    monkeypatch.setattr(modelscope, "snapshot_download", offline)
    assert resolve_model_dir(ModelSettings(source="modelscope", cache_dir=tmp_path)) == cached


def test_huggingface_offline(tmp_path: Path, monkeypatch) -> None:
    def offline(repo_id, *, cache_dir=None, local_files_only=False, **kwargs):
        if local_files_only:
            raise LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder")
        raise ConnectionError("Failed to resolve 'huggingface.co'\n(Errno -3)")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    settings = ModelSettings(source="huggingface", id="Qwen/Qwen1.5-0.5B-Chat", cache_dir=tmp_path)
    with pytest.raises(ModelUnavailable) as info:
        resolve_model_dir(settings)
    message = assert_one_line_with_fixes(info.value)
    assert "Hugging Face" in message
    assert "Failed to resolve" in message


def test_load_model_applies_threads_and_dtype(tiny_model_dir: Path) -> None:
    before = torch.get_num_threads()
    try:
        loaded = load_model(
            tiny_model_dir, ModelSettings(threads=1, dtype="bfloat16", quantization="none")
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert loaded.model.dtype == torch.bfloat16
    assert not loaded.model.training
    assert loaded.demo is False


def test_load_model_from_a_broken_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    with pytest.raises(ModelUnavailable) as info:
        load_model(tmp_path, ModelSettings(source="local", path=tmp_path, threads=1))
    assert_one_line_with_fixes(info.value)
