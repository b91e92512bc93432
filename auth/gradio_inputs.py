"""The type each input component takes, checked before Gradio preprocesses it.

Gradio 6.31 hands a Textbox or a `gr.api` parameter whatever JSON value arrives, and fails inside
its own preprocessing on a Number that is not a number, so a script sending a list where text
belongs reached our handlers (or Gradio's traceback). The door checks the types here and answers
400 with what was expected: page components by kind (`null` allowed, as Gradio passes it), `gr.api`
parameters by the JSON schema Gradio derived from their type hints. Choices (Radio, Dropdown)
change per tab and are left to Gradio, which answers them with a clear error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gradio as gr
from gradio.components.api_component import Api

_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: _is_number(v),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def input_problem(component: Any, value: Any) -> str | None:
    """Why `value` cannot be this component's input, or None if it can."""
    if isinstance(component, Api):
        schema = component.api_info()
        return None if _matches(schema, value) else f"This input must be {_describe(schema)}."
    if value is None:
        return None
    if isinstance(component, gr.Textbox) and not isinstance(value, str):
        return f"{_name(component)} must be text."
    if isinstance(component, gr.Checkbox) and not isinstance(value, bool):
        return f"{_name(component)} must be true or false."
    if isinstance(component, gr.Number):
        return _number_problem(component, value)
    return None


def _number_problem(component: Any, value: Any) -> str | None:
    if not _is_number(value):
        return f"{_name(component)} must be a number."
    low, high = component.minimum, component.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        return f"{_name(component)} must be between {low} and {high}."
    return None


def _name(component: Any) -> str:
    label = getattr(component, "label", None)
    return f"'{label}'" if isinstance(label, str) and label else "This input"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _matches(schema: Any, value: Any) -> bool:
    """The subset of JSON schema Gradio derives from plain type hints; anything else passes."""
    if not isinstance(schema, dict):
        return True
    branches = schema.get("oneOf") or schema.get("anyOf")
    if isinstance(branches, list):
        return any(_matches(branch, value) for branch in branches)
    check = _JSON_TYPES.get(schema.get("type"))  # type: ignore[arg-type]
    return check is None or check(value)


def _describe(schema: Any) -> str:
    branches = schema.get("oneOf") or schema.get("anyOf") or [schema]
    kinds = [b.get("type") for b in branches if isinstance(b, dict) and b.get("type") != "null"]
    words = {"string": "text", "integer": "a whole number", "number": "a number"}
    return " or ".join(words.get(k, str(k)) for k in kinds) or "valid"
