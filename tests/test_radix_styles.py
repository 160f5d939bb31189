"""The Radix stylesheet cut to the components compiled (watheeq_ui/radix_styles.py)."""

from __future__ import annotations

from pathlib import Path

import reflex as rx
from reflex_components_radix.themes.base import RadixThemesComponent

from watheeq_ui.radix_styles import (
    FULL,
    PACKAGE,
    UsedRadixThemesPlugin,
    component_classes,
    cut_stylesheet,
    filter_stylesheet,
    module_name,
    used_stylesheet,
)

SHEET = """
/* tokens */
:root, .light { --gray-1: #fcfcfc; }
.radix-themes { --cursor-button: default; }
.rt-reset:where(a) { all: unset; }
.rt-BaseButton { height: 32px; }
.rt-Button:where(.rt-variant-solid) { color: white; }
.rt-SliderRoot { width: 100%; }
.rt-SliderRoot .rt-SliderThumb, .rt-Button .rt-Spinner { outline: none; }
@media (min-width: 520px) {
  .rt-SliderRoot:where(.xs\\:rt-r-size-1) { height: 4px; }
  .rt-Button:where(.xs\\:rt-r-size-1) { height: 24px; }
}
@media (hover: hover) {
  .rt-SliderThumb:hover { color: red; }
}
@supports (color: color(display-p3 1 1 1)) {
  @media (color-gamut: p3) { .rt-TableRoot { color: color(display-p3 0 0 0); } }
}
@keyframes rt-fade-in { from { opacity: 0; } to { opacity: 1; } }
.rt-r-size-2 { --size: 2; }
"""


def _package(root: Path, modules: dict[str, str]) -> Path:
    folder = root / PACKAGE / "dist" / "esm" / "components"
    folder.mkdir(parents=True)
    for name, source in modules.items():
        (folder / f"{name}.js").write_text(source)
    return folder


def test_module_names_follow_the_packages_files():
    assert module_name("AlertDialog.Content") == "alert-dialog"
    assert module_name("Select.Root") == "select"
    assert module_name("TextField.Slot") == "text-field"
    assert module_name("Button") == "button"


def test_rules_of_components_not_kept_are_dropped_and_everything_else_stays():
    out = filter_stylesheet(SHEET, {"rt-BaseButton", "rt-Button", "rt-TableRoot"})
    # Tokens, resets, utilities, keyframes: no component class, kept.
    for kept in (":root, .light", ".radix-themes", ".rt-reset:where(a)", ".rt-r-size-2", "@keyframes rt-fade-in", "to { opacity: 1; }"):
        assert kept in out, kept
    # The kept components' rules, inside media and supports blocks too.
    assert ".rt-Button:where(.rt-variant-solid) { color: white; }" in out
    assert ".rt-Button:where(.xs\\:rt-r-size-1)" in out
    assert ".rt-TableRoot" in out and "@supports" in out and "(color-gamut: p3)" in out
    # A selector list naming a kept component stays whole.
    assert ".rt-SliderRoot .rt-SliderThumb, .rt-Button .rt-Spinner" in out
    # The slider's own rules go, and a media block left empty goes with them.
    assert ".rt-SliderRoot { width" not in out
    assert "xs\\:rt-r-size-1) { height: 4px" not in out
    assert "(hover: hover)" not in out
    assert "/* tokens */" not in out


def test_nothing_is_dropped_when_every_component_is_kept():
    out = filter_stylesheet(SHEET, {"rt-BaseButton", "rt-Button", "rt-TableRoot", "rt-SliderRoot", "rt-SliderThumb", "rt-Spinner"})

    def squeezed(css: str) -> str:
        return "".join(css.replace("/* tokens */", "").split())

    assert squeezed(out) == squeezed(SHEET)


def test_css_the_reader_cannot_read_back_exactly_keeps_the_whole_stylesheet(tmp_path):
    assert cut_stylesheet(SHEET, {"rt-Button"}) == filter_stylesheet(SHEET, {"rt-Button"})
    assert cut_stylesheet(".rt-Button { a: b; } stray text", {"rt-Button"}) is None
    assert cut_stylesheet(".rt-Button { a: b; ", {"rt-Button"}) is None
    assert cut_stylesheet('.rt-Button::after { content: "x; } ', {"rt-Button"}) is None  # unclosed string
    # Braces and semicolons in a string are text, not a block's end.
    assert cut_stylesheet('.rt-SliderRoot::after { content: "}"; } .rt-Button::after { content: \'{;\\\'\' }', {"rt-Button"}) == (
        ".rt-Button::after { content: '{;\\'' }\n"
    )
    # An empty block and a statement come out as they went in.
    assert cut_stylesheet("@import url('x.css');\n@font-face {}\n.rt-SliderRoot { a: b; }", set()) == "@import url('x.css');\n@font-face {}\n"
    _package(tmp_path, {"button": 'const b="rt-Button";'})
    (tmp_path / PACKAGE / "styles.css").write_text(".rt-Button { a: b; } stray")
    assert used_stylesheet(tmp_path, ["Button"]) == f"@import url('{FULL}');\n"


def test_a_components_classes_include_those_of_the_modules_it_imports(tmp_path):
    folder = _package(tmp_path, {
        "alert-dialog": 'import{a}from"./base-dialog.js";const c="rt-AlertDialogContent";',
        "base-dialog": 'import{x}from"../helpers/x.js";const o=`rt-BaseDialogOverlay`;const p="rt-r-size";',
        "slider": 'const s="rt-SliderRoot";',
    })
    assert component_classes(folder, ["AlertDialog.Root", "AlertDialog.Content"]) == {"rt-AlertDialogContent", "rt-BaseDialogOverlay"}


def test_a_tag_without_a_module_keeps_the_whole_stylesheet(tmp_path):
    folder = _package(tmp_path, {"button": 'const b="rt-Button";'})
    assert component_classes(folder, ["Button", "Mystery.Root"]) is None
    (tmp_path / PACKAGE / "styles.css").write_text(SHEET)
    assert used_stylesheet(tmp_path, ["Button", "Mystery.Root"]) == f"@import url('{FULL}');\n"


def test_without_the_package_the_whole_stylesheet_is_imported(tmp_path):
    assert used_stylesheet(tmp_path, ["Button"]) == f"@import url('{FULL}');\n"


def test_the_stylesheet_is_cut_from_the_packages_own(tmp_path):
    _package(tmp_path, {"button": 'import"./base-button.js";import{a}from"./base-button.js";const b="rt-Button";', "base-button": 'const b="rt-BaseButton";'})
    (tmp_path / PACKAGE / "styles.css").write_text(SHEET)
    out = used_stylesheet(tmp_path, ["Button"])
    assert ".rt-BaseButton { height: 32px; }" in out and ".rt-SliderRoot { width" not in out


def test_the_plugin_records_the_radix_components_it_is_shown():
    plugin = UsedRadixThemesPlugin()
    for component in (rx.button("x"), rx.select(["a", "b"]), rx.el.div("plain"), rx.text("t")):
        plugin.enter_component(component, page_context=None, compile_context=None)
    assert {"Button", "Text"} <= plugin.tags
    assert "TextArea" not in plugin.tags
    # A debounced text area is a DebounceInput naming Radix's TextArea in a prop only.
    debounced = rx.text_area(value=rx.Var.create("draft"), on_change=rx.console_log(""))
    assert not isinstance(debounced, RadixThemesComponent)
    plugin.enter_component(debounced, page_context=None, compile_context=None)
    assert any(module_name(tag) == "text-area" for tag in plugin.tags), plugin.tags
    assert all(tag and tag[0].isupper() for tag in plugin.tags)
    assert plugin.enabled
    assert plugin.get_stylesheet_paths() == ("./radix_themes.css",)


def test_a_pages_root_brings_every_import_of_its_tree():
    # The walk does not enter what rx.foreach renders per item; the page's root knows its imports.
    rows = rx.Var.create(["a", "b"])
    page = rx.box(rx.foreach(rows, lambda row: rx.menu.root(rx.menu.trigger(rx.text(row)), rx.menu.content(rx.menu.item(row)))))
    plugin = UsedRadixThemesPlugin()
    plugin.enter_component(rx.box(), page_context=None, compile_context=None)  # no page: its own imports only
    assert not any(module_name(tag) == "dropdown-menu" for tag in plugin.tags)
    context = object()
    plugin.enter_component(page, page_context=context, compile_context=None)
    assert any(module_name(tag) == "dropdown-menu" for tag in plugin.tags), plugin.tags
    # Its other components, entered after it, add their own imports only.
    plugin.enter_component(rx.badge("x"), page_context=context, compile_context=None)
    assert "Badge" in plugin.tags


def test_the_app_is_configured_with_it():
    from rxconfig import config

    assert any(isinstance(plugin, UsedRadixThemesPlugin) for plugin in config.plugins)
