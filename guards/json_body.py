"""Parse a JSON request body the app reads itself, with limits on size, depth and content.

Python's parser raises RecursionError on deeply nested input and accepts NaN, Infinity and lone
surrogates, each of which fails later (a 500, or a database that refuses the text). Everything is
checked here once, so a handler sees plain, finite, encodable JSON or a clear 400.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32  # Gradio's deepest body (chat history in event data) nests about 8 levels
MAX_BYTES = 8 * 1024 * 1024


class BadJson(ValueError):
    """The body is not JSON the app accepts; the message is safe to show to the client."""


def parse_json(body: bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    if len(body) > max_bytes:
        raise BadJson(f"The request body is larger than {max_bytes} bytes.")
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except BadJson:
        raise
    except RecursionError:
        raise BadJson(f"The JSON body nests deeper than {max_depth} levels.") from None
    except (ValueError, UnicodeDecodeError):
        raise BadJson("The request body is not valid JSON.") from None
    _check(value, max_depth)
    return value


def _refuse_constant(name: str) -> float:
    raise BadJson(f"{name} is not a number this service accepts.")


def _check(value: Any, max_depth: int) -> None:
    """Depth and text checks without recursion (the input decides how deep the walk goes)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _encodable(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadJson("The JSON body holds a number too large to use.")
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise BadJson(f"The JSON body nests deeper than {max_depth} levels.")
            if isinstance(item, dict):
                for key in item:
                    _encodable(key)
                children = item.values()
            else:
                children = item
            pending.extend((child, depth + 1) for child in children)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadJson("The JSON body contains text that is not valid Unicode.") from None
