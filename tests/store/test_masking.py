"""Masking table: what must disappear from the audit trail and logs, and what must survive."""

from __future__ import annotations

import pytest

from store.masking import Masker, luhn_valid, resident_id_valid

MASKED = [
    # Mainland China mobiles, next to CJK characters and punctuation, with and without +86.
    ("我的电话是13800138000，请回电", "我的电话是[PHONE]，请回电"),
    ("手机：139-1234-5678。", "手机：[PHONE]。"),
    ("call 86 15912345678 today", "call [PHONE] today"),
    ("+86 138 0013 8000", "[PHONE]"),
    ("+8613800138000", "[PHONE]"),
    # International numbers.
    ("call +44 20 7946 0958 now", "call [PHONE] now"),
    ("US office +1 (555) 123-4567.", "US office [PHONE]."),
    # E-mail addresses, including right next to Chinese text.
    ("邮箱zhang.san@example.com谢谢", "邮箱[EMAIL]谢谢"),
    ("Mail Bob.Smith+chat@mail.corp.example.cn, thanks", "Mail [EMAIL], thanks"),
    # Resident ID numbers with a valid check character (lower-case x too).
    ("身份证11010519491231002X已登记", "身份证[ID]已登记"),
    ("id 11010519491231002x", "id [ID]"),
    # Bank cards passing Luhn, plain or grouped.
    ("卡号6222021234567894（工行）", "卡号[CARD]（工行）"),
    ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
    ("银联 6222-0212-3456-7890-12", "银联 [CARD]"),
    # Credentials.
    ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "Authorization: [SECRET]"),
    ("key sk-proj-abcdefghijklmnop1234", "key [SECRET]"),
    ("令牌chat_AbCdEf0123456789xyzXYZ已泄露", "令牌[SECRET]已泄露"),
    ("jwt=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "jwt=[SECRET]"),
    ("password=hunter22 and api_key: 'abcd1234'", "[SECRET] and [SECRET]'"),
]

KEPT = [
    "价格 1234 元，版本 3.14.159",
    "订单号20240101123456789",  # 17 digits: no ID, fails Luhn
    "身份证110105194912310021",  # wrong check digit
    "4111111111111112",  # fails Luhn
    "12345678901",  # 11 digits but not a mobile prefix
    "2024-01-01 12:00, ip 192.168.1.10",
    "chat_session cookie, sk-short, Bearer",  # prefixes without a secret behind them
    "hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "请把报告发给市场部",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_sensitive_data_is_masked(text, expected):
    assert Masker().mask(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_text_and_numbers_survive(text):
    assert Masker().mask(text) == text


def test_configured_patterns_are_masked_too():
    masker = Masker(extra_patterns=[r"PRJ-\d{4}", "机密"])
    assert masker.mask("项目prj-0042是机密") == "项目[MASKED]是[MASKED]"


@pytest.mark.parametrize("pattern", ["(unclosed", "a*"])
def test_bad_configured_pattern_is_refused_with_its_position(pattern):
    with pytest.raises(ValueError, match=r"mask_patterns\[1\]"):
        Masker(extra_patterns=["ok", pattern])


def test_nested_values_are_masked_and_keys_kept():
    value = {"prompt": "电话13800138000", "list": ["a@b.example", 3], "n": None}
    assert Masker().mask_value(value) == {
        "prompt": "电话[PHONE]",
        "list": ["[EMAIL]", 3],
        "n": None,
    }


def test_checksums():
    assert resident_id_valid("11010519491231002X")
    assert not resident_id_valid("11010519491331002X")  # month 13
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
