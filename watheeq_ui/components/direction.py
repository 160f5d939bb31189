"""The reading direction every Radix component follows.

Radix components (scroll areas around tables, selects, menus, popovers) take their
direction from a React context, never from the page's ``dir`` attribute, and the root
Radix Themes ``Theme`` sets that context to ``ltr`` once for the whole app. This
provider sits inside the theme (app-wrap order 19 < the theme's 20) and sets the context
from the chosen language instead.
"""

from __future__ import annotations

import reflex as rx

from watheeq_ui.state.lang import LangState

# The package Radix Themes itself takes its Direction provider from: importing the same
# module guarantees the same React context object.
RADIX_UI = "radix-ui@1.8.1"
WRAP_ORDER = 19


class DirectionProvider(rx.Component):
    library = RADIX_UI
    tag = "Direction.Provider"

    dir: rx.Var[str]


def app_wraps() -> dict[tuple[int, str], object]:
    """The entry for ``rx.App(extra_app_wraps=...)``."""
    return {(WRAP_ORDER, "DirectionProvider"): lambda _stateful: DirectionProvider.create(dir=LangState.direction)}
