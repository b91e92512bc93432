"""Calling a tab's Gradio handlers directly, as the queue would, in the tab tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def answering_every_output(dependency: Any) -> Callable[..., Any]:
    """The dependency's function, checked to return one value per output as Gradio requires."""

    def call(*args: Any) -> Any:
        result = dependency.fn(*args)
        assert len(result) == len(dependency.outputs), dependency.name
        return result

    return call
