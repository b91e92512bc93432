"""Settings: TOML file, CHAT_* environment overrides, and one clear line per bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import SettingsError, load_settings

SHIPPED = Path(__file__).resolve().parent.parent / "settings.toml"


def test_shipped_settings_file_loads_with_safe_defaults():
    settings = load_settings(SHIPPED)
    assert settings.server.host == "127.0.0.1"
    assert settings.model.dtype == "float32"
    # The fast path is the shipped one: int8 (within 1% of fp32's perplexity, bench/quality.py),
    # and several users decode together in one batch instead of waiting in line.
    assert settings.model.quantization == "int8"
    assert min(settings.model.max_batch_size, settings.generation.max_concurrent) >= 4


def test_environment_overrides_nested_keys(monkeypatch):
    monkeypatch.setenv("CHAT_SERVER__PORT", "8081")
    monkeypatch.setenv("CHAT_MODEL__SOURCE", "tiny-random")
    monkeypatch.setenv("CHAT_SERVER__TRUSTED_PROXIES", '["10.1.2.0/24", "::1/128"]')
    settings = load_settings(SHIPPED)
    assert settings.server.port == 8081
    assert settings.model.source == "tiny-random"
    assert [str(n) for n in settings.server.trusted_proxies] == ["10.1.2.0/24", "::1/128"]


def test_bad_value_names_the_key_and_what_is_allowed(tmp_path, monkeypatch):
    toml = tmp_path / "s.toml"
    toml.write_text('[model]\nsource = "floppy-disk"\n')
    with pytest.raises(SettingsError) as err:
        load_settings(toml)
    message = str(err.value)
    assert message.count("\n") == 0
    assert "model.source" in message
    assert "'modelscope'" in message and "'floppy-disk'" in message


def test_unknown_key_is_refused_rather_than_ignored(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text("[server]\nprot = 80\n")
    with pytest.raises(SettingsError, match=r"server\.prot"):
        load_settings(toml)


def test_secret_values_are_not_echoed_in_errors(monkeypatch):
    monkeypatch.setenv("CHAT_SESSION__SECRET_KEYS", "not-json-hunter2")
    with pytest.raises(SettingsError) as err:
        load_settings(SHIPPED)
    assert "hunter2" not in str(err.value)


def test_missing_settings_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="settings file not found"):
        load_settings(tmp_path / "nope.toml")
