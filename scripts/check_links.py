"""Fail if a relative link in the project's Markdown points at a file that does not exist.

Checks README.md, docs/*.md, bench/RESULTS.md and deploy/README.md under the given root (default:
the repository). Links with a scheme (http:, https:, mailto:) and pure #anchors are skipped; a
#fragment is stripped before the file is looked up. Fenced code blocks and inline code are ignored,
so an example in backticks is never taken for a link. Standard library only, so CI can run it
before anything is installed.

    python scripts/check_links.py [ROOT]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

# Inline links and images: [text](target) or ![alt](target "title"); reference definitions: [id]: target
_INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files(root: Path) -> list[Path]:
    """The documents whose links are checked, those that exist under root."""
    candidates = [root / "README.md", root / "bench" / "RESULTS.md", root / "deploy" / "README.md"]
    candidates += sorted((root / "docs").glob("*.md"))
    return [path for path in candidates if path.is_file()]


def link_targets(text: str) -> list[str]:
    """Every link target in the Markdown text, outside code."""
    text = _INLINE_CODE.sub("", _FENCE.sub("", text))
    return _INLINE.findall(text) + _REFERENCE.findall(text)


def broken_links(path: Path) -> list[str]:
    """The relative targets in one file that point at nothing on disk."""
    broken = []
    for target in link_targets(path.read_text(encoding="utf-8")):
        if target.startswith("#") or _SCHEME.match(target):
            continue
        relative = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not relative:
            continue
        if not (path.parent / relative).exists():
            broken.append(target)
    return broken


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    files = markdown_files(root)
    failures = 0
    for path in files:
        for target in broken_links(path):
            print(f"{path.relative_to(root)}: broken link -> {target}")
            failures += 1
    if failures:
        print(f"{failures} broken link(s); fix the path or the file name")
        return 1
    print(f"links ok in {len(files)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
