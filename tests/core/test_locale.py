"""The page language rule, and the English-keyed catalogs the auth and guard pages translate with."""

from __future__ import annotations

import pytest

from core.locale import Catalog, pick_locale


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("ZH", "zh-CN"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr-FR,zh-CN;q=0.5", "zh-CN"),  # the first of ours the browser lists
        ("fr-FR", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_chinese_for_any_chinese_tag_english_otherwise(header, locale):
    assert pick_locale(header) == locale


def test_sentences_with_values_are_translated_and_keep_the_values():
    catalog = Catalog(
        {"Try again in {s} seconds.": "请在 {s} 秒后再试。", "Access refused": "访问被拒绝"}
    )
    assert catalog.translate("Try again in 42 seconds.", "zh-CN") == "请在 42 秒后再试。"
    assert catalog.translate("Access refused", "zh-CN") == "访问被拒绝"
    assert catalog.translate("Try again in 42 seconds.", "en") == "Try again in 42 seconds."
    # Anything else stays as it was written, and the catalog says so.
    assert catalog.translate("Try again later.", "zh-CN") == "Try again later."
    assert catalog.untranslated(["Access refused", "Try again later."]) == ["Try again later."]
