"""Hypothesis strategies for the Gradio queue protocol and for the chat page's handler inputs.

Each strategy mixes what a well-behaved page sends (a known function, inputs of the component's
type, a session hash of the caller's own) with what a script could send instead: any JSON value,
numbers out of range, another user's ids. `known` values are ids a caller may have learnt of
another user (a conversation id from a shared link, a session hash or event id from a URL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# UTF-8 text: a lone surrogate cannot be sent as JSON at all (tests/webui/test_bad_input.py sends one).
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
HASHLIKE = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


def half(first: st.SearchStrategy[Any], second: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Either strategy, about as often (st.one_of would flatten nested choices into equal shares)."""
    return st.booleans().flatmap(lambda pick: first if pick else second)


def json_values(known: Sequence[str] = ()) -> st.SearchStrategy[Any]:
    """Any JSON value, small, sometimes one of the `known` strings."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        TEXT,
        *([st.sampled_from(known)] if known else []),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
        max_leaves=8,
    )


@dataclass(frozen=True)
class Input:
    """An input component of a handler: its type and, for a choice, the values it offers."""

    type: str
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Handler:
    """One function of the page, as /config (or the render message) describes it."""

    fn_index: int
    name: str
    inputs: tuple[Input, ...]
    python: bool  # has a Python function (else it runs in the browser, or only cancels)
    cancels: tuple[int, ...] = ()

    @property
    def backend(self) -> bool:
        """Whether the page ever sends it to the server."""
        return self.python or bool(self.cancels)


def handlers(*configs: dict[str, Any]) -> list[Handler]:
    """The functions of a page from its /config and its render config (per-user functions)."""
    components = {c["id"]: c for config in configs for c in config["components"]}
    found = {}
    for config in configs:
        for dependency in config["dependencies"]:
            inputs = tuple(_input(components.get(i, {})) for i in dependency["inputs"])
            name = dependency.get("api_name") or f"fn{dependency['id']}"
            python, cancels = bool(dependency.get("backend_fn")), dependency.get("cancels") or ()
            found[dependency["id"]] = Handler(
                dependency["id"], name, inputs, python, tuple(cancels)
            )
    return [found[key] for key in sorted(found)]


def _input(component: dict[str, Any]) -> Input:
    choices = component.get("props", {}).get("choices") or []
    return Input(component.get("type", "unknown"), tuple(value for _, value in choices))


def component_value(component: Input, known: Sequence[str]) -> st.SearchStrategy[Any]:
    """A value of the component's own type (what the page sends), or any JSON value."""
    kind, choices = component.type, list(component.choices)
    natural = {
        "textbox": TEXT | st.sampled_from(known or [""]),
        "api": TEXT | st.sampled_from(known or [""]),
        "number": st.integers(min_value=-5, max_value=200)
        | st.floats(allow_nan=False, allow_infinity=False),  # JSON has no NaN or infinity
        "checkbox": st.booleans(),
        "radio": st.sampled_from(choices) if choices else st.none(),
        "dropdown": st.sampled_from(choices) if choices else st.none(),
        "state": st.none(),  # Gradio keeps State on the server; what the client sends is ignored
    }.get(kind, st.nothing())
    return natural | json_values(known)


def handler_inputs(handler: Handler, known: Sequence[str]) -> st.SearchStrategy[list[Any]]:
    """The `data` of a queue/join for `handler`: one value per input, of any type."""
    return st.tuples(*(component_value(c, known) for c in handler.inputs)).map(list)


def session_hashes(own: Sequence[str], known: Sequence[str]) -> st.SearchStrategy[Any]:
    """Mostly the caller's own tabs; sometimes another user's, a new one, or not a hash at all."""
    others = st.one_of(st.sampled_from(list(known) or list(own)), HASHLIKE, TEXT, json_values())
    return half(st.sampled_from(list(own)), others)


def fn_indexes(known: Sequence[int]) -> st.SearchStrategy[Any]:
    """Mostly a function of the caller's page; sometimes any number or any JSON value."""
    others = st.integers(min_value=-3, max_value=2**40) | json_values()
    return half(st.sampled_from(list(known)), others)


def event_ids(issued: Sequence[str], known: Sequence[str]) -> st.SearchStrategy[Any]:
    """An event id the caller was handed, another user's, a made-up one, or any JSON value."""
    return st.one_of(
        *([st.sampled_from(list(issued))] if issued else []),
        st.sampled_from(list(known)),
        HASHLIKE,
        json_values(),
    )


def join_extras(known: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Optional fields of a join body: those the page sends and those Gradio's model also reads."""
    return st.fixed_dictionaries(
        {},
        optional={
            "event_data": json_values(known),
            "trigger_id": st.none() | st.integers(min_value=-3, max_value=2**40),
            "event_id": HASHLIKE | json_values(known),
            "batched": json_values(),
            "simple_format": json_values(),
            "oauth_token": TEXT,
        },
    )
