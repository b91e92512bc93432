"""The documentation's relative links lead somewhere: the repository passes the checker, a broken link fails it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "scripts" / "check_links.py"


def run_checker(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), str(root)], capture_output=True, text=True, timeout=60
    )


def test_every_relative_link_in_the_repository_docs_exists():
    result = run_checker(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_link_fails_and_is_named(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "[guide](docs/guide.md#intro) [web](https://example.com) [top](#top)\n"
        "`[code](not/a/link.md)`\n\n[missing](docs/missing.md#part)\n",
        encoding="utf-8",
    )
    result = run_checker(tmp_path)
    assert result.returncode == 1
    assert "README.md: broken link -> docs/missing.md#part" in result.stdout
    assert "guide.md" not in result.stdout and "not/a/link.md" not in result.stdout


def test_links_between_docs_resolve_from_the_linking_file(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "settings.toml").write_text("", encoding="utf-8")
    (tmp_path / "docs" / "a.md").write_text("[b](b.md) [settings](../settings.toml)\n", "utf-8")
    (tmp_path / "docs" / "b.md").write_text("![image](images/none.png)\n", encoding="utf-8")
    result = run_checker(tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "docs/b.md: broken link -> images/none.png"
