"""Store settings sections: defaults that work offline, and clear errors for bad values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from store.settings import DatabaseSettings, PolicySettings, RetentionSettings


def test_defaults_use_a_local_sqlite_file_and_keep_data_for_a_while():
    assert DatabaseSettings().url == "sqlite:///data/chat.db"
    retention = RetentionSettings()
    assert retention.history_days > 0 and retention.audit_days > 0
    assert PolicySettings().block_patterns == ()


@pytest.mark.parametrize("url", ["mysql://x/y", "postgresql://u@h/db", "chat.db"])
def test_unsupported_database_urls_are_refused(url):
    with pytest.raises(ValidationError, match="postgresql\\+psycopg"):
        DatabaseSettings(url=url)


def test_negative_retention_is_refused():
    with pytest.raises(ValidationError, match="history_days"):
        RetentionSettings(history_days=-1)


def test_bad_mask_pattern_is_refused():
    with pytest.raises(ValidationError, match=r"mask_patterns\[0\]: invalid regular expression"):
        PolicySettings(mask_patterns=["(["])
