"""JSON bodies the app parses itself: limits on depth and size, and no values that fail later."""

from __future__ import annotations

import pytest

from guards.json_body import BadJson, parse_json


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_plain_json_parses():
    assert parse_json(b'{"data": ["hi", null, 1.5], "x": {"y": [true]}}') == {
        "data": ["hi", None, 1.5],
        "x": {"y": [True]},
    }


def test_depth_is_limited_exactly():
    assert parse_json(nested(32)) is not None
    with pytest.raises(BadJson, match="deeper than 32"):
        parse_json(nested(33))
    with pytest.raises(BadJson, match="deeper than 32"):
        parse_json(nested(100_000))  # Python's parser alone raises RecursionError


@pytest.mark.parametrize(
    "body",
    [b"NaN", b"[Infinity]", b"[-1e999]", b'["\\ud800"]', b'{"\\udfff": 1}', b"\xff", b"{", b""],
)
def test_values_that_would_fail_later_are_refused(body):
    with pytest.raises(BadJson):
        parse_json(body)


def test_size_is_limited():
    with pytest.raises(BadJson, match="larger than 10 bytes"):
        parse_json(b'"' + b"x" * 20 + b'"', max_bytes=10)
