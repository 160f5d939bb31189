"""The public page of a one-time set-password link: the user chooses their password, then signs in.

The link's token comes from the URL each time and is never copied into a state var.
"""

from __future__ import annotations


import reflex as rx

from services import accounts, db
from services.errors import DomainError, Invalid

from watheeq_ui import routes
from watheeq_ui.components.ui import labelled
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import t, t_fmt, tr
from watheeq_ui.layout import public_page
from watheeq_ui.state.lang import LangState
from watheeq_ui.state import offloop


class SetPasswordState(rx.State):
    email: str = ""
    # "checking", "ready", "invalid" or "done"
    stage: str = "checking"
    errors: dict[str, str] = {}

    def _token(self) -> str:
        return self.router.url.query_parameters.get("token", "")

    @rx.event
    async def check(self):
        token = self._token()
        self.errors = {}

        def look_up() -> str:
            with db.session_scope() as session:
                return accounts.password_link_email(session=session, token=token)

        try:
            self.email = await offloop.run(look_up)
        except Invalid:
            self.email, self.stage = "", "invalid"
            return
        self.stage = "ready"

    @rx.event
    async def submit(self, form: dict):
        lang = (await self.get_state(LangState)).lang
        password = str(form.get("password") or "")
        if password != str(form.get("confirm_password") or ""):
            self.errors = {"confirm_password": tr(lang, "passwords_differ")}
            return
        token = self._token()

        def set_it() -> str:
            with db.session_scope() as session:
                return accounts.set_password_with_link(session=session, token=token, password=password)

        try:
            await offloop.run(set_it)
        except DomainError as exc:
            if exc.field == "token":
                self.stage = "invalid"
                return
            self.errors = {exc.field or "password": error_text(lang, exc)}
            return
        self.errors = {}
        self.stage = "done"


def _form() -> rx.Component:
    errors = SetPasswordState.errors
    return rx.form(
        rx.vstack(
            rx.text(t_fmt("set_password_for", x=SetPasswordState.email), color_scheme="gray", data_testid="set-password-email"),
            labelled(
                "new_password",
                rx.input(name="password", type="password", auto_complete="new-password", data_testid="set-password-password"),
                errors.get("password", ""),
            ),
            labelled(
                "confirm_password",
                rx.input(name="confirm_password", type="password", auto_complete="new-password", data_testid="set-password-confirm"),
                errors.get("confirm_password", ""),
            ),
            rx.button(t("set_password_submit"), type="submit", size="3", width="100%", data_testid="set-password-submit"),
            spacing="3",
            width="100%",
        ),
        on_submit=SetPasswordState.submit,
        reset_on_submit=False,
        width="100%",
    )


def _sign_in_link() -> rx.Component:
    return rx.link(rx.button(t("go_to_sign_in"), size="3", width="100%"), href=routes.LOGIN, width="100%", data_testid="go-to-sign-in")


@rx.page(route=routes.SET_PASSWORD, title=t("app_name") + " — " + t("set_password_title"), on_load=SetPasswordState.check)
def set_password() -> rx.Component:
    body = rx.match(
        SetPasswordState.stage,
        ("ready", _form()),
        (
            "invalid",
            rx.vstack(
                rx.callout(t("link_invalid"), icon="triangle-alert", color_scheme="red", data_testid="link-invalid", width="100%"),
                _sign_in_link(),
                width="100%",
            ),
        ),
        (
            "done",
            rx.vstack(
                rx.callout(t("set_password_done"), icon="circle-check", color_scheme="green", data_testid="set-password-done", width="100%"),
                _sign_in_link(),
                width="100%",
            ),
        ),
        rx.center(rx.spinner(size="3"), width="100%"),
    )
    return public_page(
        rx.heading(t("app_name"), size="7"),
        rx.card(
            rx.vstack(rx.heading(t("set_password_title"), size="5"), body, spacing="4", width="100%"),
            size="4",
            width="400px",
        ),
        rx.button(
            rx.icon("languages", size=16), t("language"), on_click=LangState.toggle_lang, variant="ghost", color_scheme="gray",
        ),
    )
