"""Radix Themes' stylesheet cut down to the components the app compiles.

Reflex's Radix plugin imports the whole of ``@radix-ui/themes/styles.css`` (~800 KB, ~700 KB
in the build) into every page. A browser parses all of it in each new tab before the page can
be drawn, and about a seventh of it styles components the app never renders (sliders,
switches, tabs, data lists, …). This plugin records the Radix Themes components the app's
pages import (``enter_component``, the hook Reflex's own plugin uses to switch itself on) and
gives the build a copy of ``styles.css`` without the rules of the other components:

- the components used are the package's names imported by each page's whole component tree
  (its root's ``_get_all_imports()``: the walk alone misses an item's menu inside
  ``rx.foreach``, a popover, a debounced ``TextArea`` named only in a prop), and every component
  the compile walks (``Select.Root`` → ``select.js``); with them, what their modules in Radix's
  package import from their own folder (``alert-dialog.js`` → ``base-dialog`` and so on);
- their class names (``rt-SelectTrigger``, ``rt-BaseButton``, …) are the ``rt-`` literals in
  those modules;
- a style rule is dropped only when its selector names component classes (``.rt-`` followed by
  a capital) and none of them is one of those. Tokens, utilities (``rt-r-size-2``, written at
  run time from props), resets, keyframes and at-rules stay as they are.

When a compiled tag has no module in the package, the package is not installed, or the
stylesheet holds CSS this module's reader does not read back exactly (checked on each build:
kept whole, the cut must give the stylesheet back), the stylesheet is the whole of
``styles.css`` (nothing may go unstyled for a saving).
``tests/e2e/test_radix_styles_e2e.py`` checks in the browser that every Radix class on the app's
pages has its rules, and so has every component the compiled sources import from the package.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from reflex_components_radix.plugin import RadixThemesPlugin
from reflex_components_radix.themes.base import RadixThemesComponent

logger = logging.getLogger(__name__)

PACKAGE = Path("node_modules") / "@radix-ui" / "themes"
STYLESHEET = "radix_themes.css"  # written into .web/styles/, beside the root stylesheet
FULL = "@radix-ui/themes/styles.css"
RADIX_LIBRARY = "@radix-ui/themes"

_CLASS_LITERAL = re.compile(r"rt-[A-Z][A-Za-z]*")
_SELECTOR_CLASS = re.compile(r"\.(rt-[A-Z][A-Za-z]*)")
_LOCAL_IMPORT = re.compile(r"""from\s*["'](\./[^"']+\.js)["']""")
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
# What delimits CSS's blocks and statements; a quoted string (escapes included) is one token.
_TOKENS = re.compile(r"""\"(?:\\.|[^\"\\])*\"?|'(?:\\.|[^'\\])*'?|[{};]""", re.S)
_NESTING = ("@media", "@supports", "@layer", "@container")


def module_name(tag: str) -> str:
    """The package module of a compiled tag: ``AlertDialog.Content`` → ``alert-dialog``."""
    head = tag.split(".", 1)[0]
    return re.sub(r"(?<!^)([A-Z])", r"-\1", head).lower()


def component_classes(components_dir: Path, tags: Iterable[str]) -> set[str] | None:
    """The ``rt-`` component classes of the modules behind ``tags`` and of the modules they
    import from their folder; None when a tag has no module (then nothing may be dropped)."""
    pending = []
    for tag in tags:
        path = components_dir / f"{module_name(tag)}.js"
        if not path.is_file():
            logger.warning("Radix Themes tag %s has no module %s: the whole stylesheet is kept", tag, path.name)
            return None
        pending.append(path)
    seen: set[Path] = set()
    classes: set[str] = set()
    while pending:
        path = pending.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        source = path.read_text(encoding="utf-8")
        classes.update(_CLASS_LITERAL.findall(source))
        pending.extend((path.parent / name).resolve() for name in _LOCAL_IMPORT.findall(source))
    return classes


def _blocks(text: str) -> list[tuple[str, str | None]]:
    """The top-level parts of CSS without comments: (prelude, body without its braces), or
    (statement, None) for an at-rule without a block (``@import …;``). Braces and semicolons
    inside quoted strings are text. Raises ValueError on what it cannot read (unbalanced
    braces or quotes, text that is neither)."""
    out: list[tuple[str, str | None]] = []
    start = depth = 0
    head_end = -1
    for token in _TOKENS.finditer(text):
        mark, at = token.group(), token.start()
        if mark[0] in "\"'":
            if len(mark) < 2 or mark[-1] != mark[0]:
                raise ValueError("an unclosed string in the stylesheet")
        elif mark == "{":
            if depth == 0:
                head_end = at
            depth += 1
        elif mark == "}":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced braces in the stylesheet")
            if depth == 0:
                out.append((text[start:head_end].strip(), text[head_end + 1 : at]))
                start = at + 1
        elif depth == 0:  # ";" outside any block ends a statement
            statement = text[start : at + 1].strip()
            if not statement.startswith("@"):
                raise ValueError(f"unreadable text in the stylesheet: {statement[:80]!r}")
            out.append((statement, None))
            start = at + 1
    if depth or text[start:].strip():
        raise ValueError("unbalanced braces or unreadable end of the stylesheet")
    return out


def filter_stylesheet(css: str, keep: set[str]) -> str:
    """``css`` without the style rules that name component classes, none of them in ``keep``."""

    def walk(text: str) -> list[str]:
        kept: list[str] = []
        for prelude, body in _blocks(text):
            if body is None:
                kept.append(prelude)  # a statement (@import, @charset, @layer a, b;)
            elif prelude.startswith(_NESTING):
                inner = walk(body)
                if inner:
                    kept.append(prelude + " {\n" + "\n".join(inner) + "\n}")
            elif prelude.startswith("@"):
                kept.append(prelude + " {" + body + "}")  # @keyframes, @font-face, @property: as they are
            else:
                named = set(_SELECTOR_CLASS.findall(prelude))
                if not named or named & keep:
                    kept.append(prelude + " {" + body + "}")
        return kept

    return "\n".join(walk(_COMMENT.sub("", css))) + "\n"


def _squeezed(css: str) -> str:
    return "".join(_COMMENT.sub("", css).split())


def cut_stylesheet(css: str, keep: set[str]) -> str | None:
    """:func:`filter_stylesheet`, or None when this reader does not read ``css`` exactly: kept
    whole, every rule must come out as it went in (whitespace and comments aside)."""
    try:
        every = set(_SELECTOR_CLASS.findall(css))
        if _squeezed(filter_stylesheet(css, every)) != _squeezed(css):
            return None
        return filter_stylesheet(css, keep)
    except ValueError:
        return None


def used_stylesheet(web_dir: Path, tags: Iterable[str]) -> str:
    """The stylesheet the build imports for the compiled ``tags``."""
    package = web_dir / PACKAGE
    full = package / "styles.css"
    if not full.is_file():
        logger.warning("%s is not installed: the whole Radix stylesheet is kept", full)
        return f"@import url('{FULL}');\n"
    keep = component_classes(package / "dist" / "esm" / "components", sorted(tags))
    cut = None if keep is None else cut_stylesheet(full.read_text(encoding="utf-8"), keep)
    if cut is None:
        logger.warning("the Radix stylesheet is kept whole (a component without a module, or CSS this reader does not read)")
        return f"@import url('{FULL}');\n"
    return cut


@dataclasses.dataclass
class UsedRadixThemesPlugin(RadixThemesPlugin):
    """Reflex's Radix Themes plugin, with the stylesheet of the components compiled only."""

    tags: set[str] = dataclasses.field(default_factory=set, repr=False)
    # The pages whose root component was seen (a page's first component entered is its root).
    _pages: list[Any] = dataclasses.field(default_factory=list, init=False, repr=False)

    def enter_component(self, comp: Any, /, **context: Any) -> None:
        super().enter_component(comp, **context)
        if isinstance(comp, RadixThemesComponent) and comp.tag:
            self.tags.add(comp.tag)
        page = context.get("page_context")
        if page is not None and not any(seen is page for seen in self._pages):
            # A page's root: everything its tree imports, the parts the walk does not enter
            # included (an item's menu inside rx.foreach, a memoised part, a debounced text
            # area whose Radix TextArea is named only in its `element` prop).
            self._pages.append(page)
            imports = comp._get_all_imports()
        else:
            imports = comp._get_imports()
        for library, names in imports.items():
            if library.startswith(RADIX_LIBRARY):
                self.tags.update(name.tag for name in names if name.tag and name.tag[0].isupper())

    def get_stylesheet_paths(self, **context: Any) -> tuple[str, ...]:
        return (f"./{STYLESHEET}",) if self.enabled else ()

    def get_static_assets(self, **context: Any) -> Sequence[tuple[Path, str | bytes]]:
        # Called after the compile has walked every page and installed the frontend's
        # packages (Reflex's compiler), so both the tags and the package are there.
        if not self.enabled:
            return []
        from reflex.utils.prerequisites import get_web_dir

        self._pages.clear()  # this compile's pages are done (a dev server compiles again)
        return [(Path("styles") / STYLESHEET, used_stylesheet(get_web_dir(), self.tags))]
