"""Open-redirect attempts after login: only same-origin relative paths survive, the rest go to "/"."""

from __future__ import annotations

import pytest

from auth.safe_redirect import safe_next_path
from tests.auth.conftest import login

ATTACKS = [
    "//evil.example",
    "//evil.example/path",
    "/\\evil.example",
    "\\\\evil.example",
    "/%09/evil.example",
    "/\t/evil.example",
    "/%0a/evil.example",
    "/%2F/evil.example",
    "/%252F%252Fevil.example",
    "/%5Cevil.example",
    "https://evil.example",
    "http://127.0.0.1.evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
    "evil.example",
    "",
    "///evil.example",
    "/" + "a" * 5000,
]

KEPT = ["/", "/whoami", "/c/42?tab=history&x=1", "/gradio_api/info", "/a%20b", "/path#frag"]


@pytest.mark.parametrize("target", ATTACKS)
def test_attack_targets_fall_back_to_the_root(target):
    assert safe_next_path(target) == "/"


@pytest.mark.parametrize("target", KEPT)
def test_relative_paths_are_kept(target):
    assert safe_next_path(target) == target


def test_after_a_real_login_the_browser_stays_on_our_origin(chat_app):
    chat = chat_app()
    with chat.client() as client:
        response = login(client, next_path="//evil.example/whoami")
        assert response.status_code == 404  # "/" on the test app: ours, not evil.example
        assert str(response.url) == chat.base + "/"
        assert [r.url.host for r in response.history] == ["127.0.0.1"] * len(response.history)
