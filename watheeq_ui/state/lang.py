"""The chosen language, kept in the browser so it survives reloads and new tabs."""

from __future__ import annotations

import reflex as rx


class LangState(rx.State):
    lang: str = rx.LocalStorage("en", name="watheeq_lang", sync=True)

    @rx.var
    def is_ar(self) -> bool:
        return self.lang == "ar"

    @rx.var
    def direction(self) -> str:
        return "rtl" if self.lang == "ar" else "ltr"

    @rx.event
    def toggle_lang(self):
        # Only labels change: dates and numbers are sent language-neutral (tenant time,
        # Western digits as Saudi firms write them), so no page data is reloaded.
        self.lang = "en" if self.lang == "ar" else "ar"
        # Portals (dialogs, menus) live outside the page box: the document carries the direction.
        direction = "rtl" if self.lang == "ar" else "ltr"
        return rx.call_script(f"document.documentElement.dir='{direction}';document.documentElement.lang='{self.lang}'")
