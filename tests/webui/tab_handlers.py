"""Calling a tab's Gradio handlers directly, as the queue would, in the tab tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr


def answering_every_output(dependency: Any) -> Callable[..., Any]:
    """The dependency's function, checked to return one value per output as Gradio requires."""

    def call(*args: Any) -> Any:
        result = dependency.fn(*args)
        assert len(result) == len(dependency.outputs), dependency.name
        return result

    return call


class BuiltTab:
    """A tab built as the page builds it (inside a gr.Tab, by `build`), its handlers called as
    Gradio would call them."""

    def __init__(self, title: str, build: Callable[[], object]) -> None:
        with gr.Blocks() as page, gr.Tabs(), gr.Tab(title) as tab:
            build()
        self.fns = list(page.fns.values())
        self.blocks = page.blocks
        self.tab = tab

    def names(self) -> set[str]:
        return {fn.name for fn in self.fns}

    def on(self, elem_id: str, event: str = "click") -> Callable[..., Any]:
        """The handler that `event` on the component `elem_id` runs; it must answer every output."""
        [dependency] = [
            f
            for f in self.fns
            if any(
                getattr(self.blocks.get(target), "elem_id", None) == elem_id and name == event
                for target, name in f.targets
            )
        ]
        return answering_every_output(dependency)

    def loaders(self) -> list[Callable[..., Any]]:
        """What opening the tab runs."""
        return [
            answering_every_output(f) for f in self.fns if (self.tab._id, "select") in f.targets
        ]
