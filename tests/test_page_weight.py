"""What every page's first load carries: no lucide DynamicIcon (its map of every icon)."""

from __future__ import annotations

import pytest
import reflex as rx
from reflex_base.registry import RegistrationContext

import watheeq_ui.watheeq_ui  # noqa: F401  (importing registers every page)

PAGES = sorted(((kwargs.get("route", fn.__name__), fn) for fn, kwargs in RegistrationContext.ensure_context().decorated_pages), key=lambda p: p[0])


def _dynamic_icons(component: rx.Component) -> list[str]:
    return [lib for lib, names in component._get_all_imports().items() if any(name.tag == "DynamicIcon" for name in names)]


def test_every_page_is_checked():
    routes = {route for route, _ in PAGES}
    assert {"/", "/calls", "/callbacks", "/wallboard", "/login"} <= routes, routes


@pytest.mark.parametrize(("route", "render"), PAGES, ids=[route for route, _ in PAGES])
def test_no_page_names_an_icon_by_a_var(route, render):
    # rx.icon(<var>) compiles to lucide's DynamicIcon: its import map of every icon (600 KB
    # of JavaScript) then sits in the pages' shared module, on every page's first load.
    assert _dynamic_icons(render()) == [], route


def test_an_icon_named_by_a_var_is_what_the_check_catches():
    flag = rx.Var.create(True)
    assert _dynamic_icons(rx.box(rx.icon(rx.cond(flag, "minimize", "maximize"))))
    assert not _dynamic_icons(rx.box(rx.cond(flag, rx.icon("minimize"), rx.icon("maximize"))))
