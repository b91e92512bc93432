"""Gradio imports matplotlib around every handler call, streamed updates included; where it is not
installed (as here), that import must fail at once instead of searching sys.path each time."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from gradio.utils import MatplotlibBackendMananger

from webui.absent_modules import mark_absent


class Spy:
    """A finder at the front of sys.meta_path: every import that searches passes through it."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(self, name, path=None, target=None):
        self.searched.append(name)
        return None


@pytest.fixture
def spy(monkeypatch) -> Spy:
    assert importlib.util.find_spec("matplotlib") is None, "this test needs matplotlib absent"
    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)
    finder = Spy()
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    return finder


def test_without_the_mark_each_handler_call_searches_for_matplotlib(spy):
    with MatplotlibBackendMananger():
        pass
    assert spy.searched == ["matplotlib", "matplotlib"]


def test_once_marked_absent_a_handler_call_searches_nothing(spy):
    assert mark_absent() == ["matplotlib"]  # one search, at start-up
    spy.searched.clear()
    for _ in range(100):
        with MatplotlibBackendMananger():
            pass
    assert spy.searched == []
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401


def test_an_installed_module_is_never_marked(spy):
    assert mark_absent(("json", "matplotlib")) == ["matplotlib"]
    assert sys.modules["json"] is not None
