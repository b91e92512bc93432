"""The dependency rule of docs/architecture.md, checked on every import in the code (function-level too).

core holds what every layer shares and imports none of ours; guards, store and model build on core
alone; auth adds the request guards; webui may use them all; only the composition root
(app_factory.py), the settings schema (config.py) and launch.py see every package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"core", "guards", "store", "model", "auth", "webui", "config", "app_factory", "bench"}
ALLOWED = {
    "core": set(),
    "guards": {"core"},
    "store": {"core"},
    "model": {"core"},
    "auth": {"core", "guards"},
    "webui": {"core", "guards", "auth", "model", "store"},
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_layers_below_it(package):
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package] - {package})
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def test_the_rule_sees_a_forbidden_import(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text("def late():\n    from store.audit_log import AuditLog\n", encoding="utf-8")
    assert imported_packages(module) == {"store"}
