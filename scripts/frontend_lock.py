"""Keep a start of the app from rewriting the committed ``reflex.lock/package.json``.

``reflex.lock/`` is Reflex's persisted pair (``package.json`` with the resolved pins and
``bun.lock``): it restores both into ``.web`` and installs with ``--frozen-lockfile``, so
it is what makes a fresh clone install the same frontend packages, and it is committed.
Reflex writes ``package.json`` as one line of ``json.dumps``; when bun adds a package it
re-indents ``.web/package.json``. Reflex then leaves that copy alone as long as its
*content* matches the committed one, but copies its *bytes* back over the committed file
on every start, and the checkout turns dirty. Before Reflex starts, this gives ``.web``
the committed bytes whenever the content is the same; a real dependency change (different
content) is left for Reflex and bun to handle and shows up as a change to commit.
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


def align_web_package_json(root: Path) -> bool:
    """Give ``.web/package.json`` the committed file's bytes when their content is equal.

    Returns whether ``.web/package.json`` was rewritten.
    """
    committed = root / LOCK_DIR / PACKAGE_JSON
    built = root / ".web" / PACKAGE_JSON
    if not committed.is_file() or not built.is_file():
        return False
    wanted = committed.read_bytes()
    if built.read_bytes() == wanted:
        return False
    content = _content(built)
    if content is None or content != _content(committed):
        return False
    built.write_bytes(wanted)
    return True


if __name__ == "__main__":
    align_web_package_json(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
