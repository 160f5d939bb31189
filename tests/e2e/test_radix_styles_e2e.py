"""The Radix stylesheet cut to the components compiled (watheeq_ui/radix_styles.py), in the
browser: every Radix component class on the app's pages has its rules, and the rules of
components the app does not use are gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login
from watheeq_ui.radix_styles import PACKAGE, component_classes

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / ".web"  # where scripts/run.sh compiled and built the app under test

pytestmark = pytest.mark.e2e

# The component classes (rt- and a capital) on the page that no rule of the page's
# stylesheets names; and whether a class is named by any rule at all.
UNSTYLED = """() => {
  const named = new Set();
  const visit = (rules) => {
    for (const rule of rules) {
      if (rule.selectorText) for (const m of rule.selectorText.matchAll(/\\.(rt-[A-Z][A-Za-z]*)/g)) named.add(m[1]);
      if (rule.cssRules) visit(rule.cssRules);
    }
  };
  for (const sheet of document.styleSheets) visit(sheet.cssRules);
  const used = new Set();
  for (const el of document.querySelectorAll('[class*="rt-"]')) {
    for (const c of el.classList) if (/^rt-[A-Z]/.test(c)) used.add(c);
  }
  return {missing: [...used].filter((c) => !named.has(c)).sort(), used: used.size, named: [...named]};
}"""

PAGES = ["/", "/calls", "/clients", "/callbacks", "/whatsapp", "/wallboard", "/agent-report", "/extensions", "/users", "/recordings", "/account"]


def _check(page, where: str, seen: set[str]) -> list[str]:
    found = page.evaluate(UNSTYLED)
    seen.update(found["named"])
    assert found["used"] > 0, where
    return [f"{where}: {c}" for c in found["missing"]]


def test_every_radix_class_on_the_pages_has_its_rules(page):
    login(page, "OWNER")
    missing: list[str] = []
    named: set[str] = set()
    for route in PAGES:
        page.goto(route)
        page.get_by_test_id("page-title").wait_for()
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)  # the page's data drawn after its loaders' updates
        missing += _check(page, route, named)
    # What opens over a page: a select's list (portalled), a dialog.
    page.goto("/calls")
    page.get_by_test_id("filter-status").click()
    expect(page.get_by_role("option").first).to_be_visible()
    missing += _check(page, "/calls, status list open", named)
    page.keyboard.press("Escape")
    assert missing == [], missing
    # Every component the compiled app imports from the package, whether or not it is on
    # screen now (a menu or popover opens on a click, an item's menu is in a list), read from
    # the compiled sources rather than from the plugin: each of its classes that the package's
    # stylesheet styles is styled in the page.
    imported: set[str] = set()
    for folder in ("app", "app_components", "components", "utils"):
        for source in (WEB / folder).rglob("*.js*"):
            for names in re.findall(r'import\s*\{([^}]*)\}\s*from\s*"@radix-ui/themes"', source.read_text(encoding="utf-8")):
                imported.update(n.split(" as ")[0].strip() for n in names.split(",") if n.strip())
    assert {"Button", "Select", "DropdownMenu", "Popover", "TextArea"} <= imported, imported
    package = WEB / PACKAGE
    classes = component_classes(package / "dist" / "esm" / "components", sorted(imported))
    assert classes is not None
    full = set(re.findall(r"\.(rt-[A-Z][A-Za-z]*)", (package / "styles.css").read_text(encoding="utf-8")))
    assert sorted((classes & full) - named) == []
    # Cut: components the app never renders have no rules left.
    assert {"rt-SliderRoot", "rt-TabsContent", "rt-DataListRoot", "rt-SwitchRoot"}.isdisjoint(named)
    assert {"rt-Button", "rt-SelectTrigger", "rt-SelectContent", "rt-TableRoot"} <= named
