"""The one rule for "the path inside the app", which the gate, the allowlist and the limits share."""

from __future__ import annotations

import pytest

from core.app_path import app_path


@pytest.mark.parametrize(
    ("root_path", "path", "inside"),
    [
        ("", "/admin/audit.csv", "/admin/audit.csv"),
        ("/chat", "/chat/admin/audit.csv", "/admin/audit.csv"),
        ("/chat", "/chat", "/"),
        ("/chat", "/chat/", "/"),
        # Not a whole segment: left alone, as Starlette's router leaves it.
        ("/chat", "/chatadmin/audit.csv", "/chatadmin/audit.csv"),
        ("/chat", "/admin", "/admin"),
    ],
)
def test_root_path_is_cut_only_at_a_segment_boundary(root_path, path, inside):
    assert app_path({"type": "http", "root_path": root_path, "path": path}) == inside
