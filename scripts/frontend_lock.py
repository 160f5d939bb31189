"""Keep a start of the app from rewriting the committed ``reflex.lock/package.json``.

``reflex.lock/`` is Reflex's persisted pair (``package.json`` with the resolved pins and
``bun.lock``): it restores both into ``.web`` and installs with ``--frozen-lockfile``, so
it is what makes a fresh clone install the same frontend packages, and it is committed.
Reflex writes ``package.json`` as one line of ``json.dumps``; when bun adds a package it
re-indents ``.web/package.json``. Reflex then leaves that copy alone as long as its
*content* matches the committed one, but copies its *bytes* back over the committed file
on every start, and the checkout turns dirty. This writes both copies the way Reflex does
whenever their content is the same; a real dependency change (different content) is left
alone and shows up as a change to commit. Run before Reflex starts and once it has
installed the frontend packages.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LOCK_DIR = "reflex.lock"
PACKAGE_JSON = "package.json"


def _content(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def normalize_package_json(root: Path) -> list[Path]:
    """Write the committed package.json, and ``.web``'s copy of the same content, as Reflex does.

    Returns the files that were rewritten.
    """
    committed = root / LOCK_DIR / PACKAGE_JSON
    content = _content(committed)
    if not isinstance(content, dict):
        return []
    # Reflex renders package.json with json.dumps and its default separators.
    canonical = json.dumps(content)
    rewritten: list[Path] = []
    for path in (committed, root / ".web" / PACKAGE_JSON):
        if path.is_file() and _content(path) == content and path.read_text(encoding="utf-8") != canonical:
            path.write_text(canonical, encoding="utf-8")
            rewritten.append(path)
    return rewritten


if __name__ == "__main__":
    normalize_package_json(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
