"""The path inside the app: the one rule every middleware and the gate use to read a request's path."""

from __future__ import annotations

from starlette.types import Scope


def app_path(scope: Scope) -> str:
    """The path without the server's root_path, cut only at a segment boundary (Starlette's rule).

    "/chatty/x" under root_path "/chat" stays "/chatty/x": a prefix that is not a whole segment must
    not make one rule's path differ from another's.
    """
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path
