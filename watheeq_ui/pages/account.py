"""My account (every role): change my password, sign out everywhere.

Passwords travel in the submitted form only, never in a state var.
"""

from __future__ import annotations


import reflex as rx

from services import accounts, db
from services.errors import DomainError

from watheeq_ui import routes
from watheeq_ui.components.ui import card, labelled, section_title
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import t, tr
from watheeq_ui.layout import template
from watheeq_ui.state.auth import AuthState, principal_for_page
from watheeq_ui.state.lang import LangState
from watheeq_ui.state import offloop


class AccountState(rx.State):
    errors: dict[str, str] = {}

    @rx.event
    def load(self):
        self.errors = {}

    @rx.event
    async def change_password(self, form: dict):
        principal = await principal_for_page(self)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        auth = await self.get_state(AuthState)
        current, new = str(form.get("current_password") or ""), str(form.get("new_password") or "")
        if new != str(form.get("confirm_password") or ""):
            self.errors = {"confirm_password": tr(lang, "passwords_differ")}
            return None
        keep, source = auth._session_id, self.router.session.client_ip or None

        def change() -> int:
            with db.session_scope() as session:
                return accounts.change_own_password(
                    session=session, principal=principal, current_password=current, new_password=new,
                    keep_session_id=keep, source=source,
                )

        try:
            await offloop.run(change)
        except DomainError as exc:
            self.errors = {exc.field or "current_password": error_text(lang, exc)}
            return None
        self.errors = {}
        return [
            rx.call_script("document.getElementById('change-password-form').reset()"),
            rx.toast.success(tr(lang, "password_changed")),
        ]

    @rx.event
    async def sign_out_everywhere(self):
        principal = await principal_for_page(self)
        if principal is None:
            return None

        def sign_out() -> int:
            with db.session_scope() as session:
                return accounts.sign_out_everywhere(session=session, principal=principal)

        await offloop.run(sign_out)
        # This session ended with the others: sign the tab out as "log out" does.
        return AuthState.logout


def _password(name: str) -> rx.Component:
    return rx.input(name=name, type="password", auto_complete="current-password" if name == "current_password" else "new-password", data_testid=f"account-{name.replace('_', '-')}")


@template(route=routes.ACCOUNT, title_key="nav_account", on_load=AccountState.load)
def account() -> rx.Component:
    errors = AccountState.errors
    return rx.grid(
        card(
            section_title("change_password"),
            rx.text(t("change_password_hint"), size="2", color_scheme="gray", margin_bottom="0.75rem"),
            rx.form(
                rx.vstack(
                    labelled("current_password", _password("current_password"), errors.get("current_password", "")),
                    labelled("new_password", _password("new_password"), errors.get("new_password", "")),
                    labelled("confirm_password", _password("confirm_password"), errors.get("confirm_password", "")),
                    rx.button(rx.icon("key-round", size=14), t("change_password"), type="submit", data_testid="account-change-password"),
                    spacing="3",
                    width="100%",
                ),
                id="change-password-form",
                on_submit=AccountState.change_password,
                reset_on_submit=False,
            ),
        ),
        card(
            section_title("sign_out_everywhere"),
            rx.text(t("sign_out_everywhere_hint"), size="2", color_scheme="gray", margin_bottom="0.75rem"),
            rx.button(
                rx.icon("log-out", size=14), t("sign_out_everywhere"), color_scheme="red", variant="soft",
                on_click=AccountState.sign_out_everywhere, data_testid="account-sign-out-everywhere",
            ),
        ),
        columns=rx.breakpoints(initial="1", lg="2"),
        spacing="4",
        width="100%",
        max_width="960px",
    )
