"""The login page: email and password, with clear messages for every refusal."""

from __future__ import annotations

import reflex as rx

from watheeq_ui import routes
from watheeq_ui.i18n import t, t_fmt
from watheeq_ui.layout import public_page
from watheeq_ui.state.auth import AuthState
from watheeq_ui.state.lang import LangState


def _error() -> rx.Component:
    message = rx.match(
        AuthState.login_error,
        ("wrong_login", t("wrong_login")),
        ("account_disabled", t("account_disabled")),
        ("too_many_attempts", t_fmt("too_many_attempts", n=AuthState.login_wait)),
        "",
    )
    return rx.cond(
        AuthState.login_error != "",
        rx.callout(message, icon="triangle-alert", color_scheme="red", role="alert", data_testid="login-error", width="100%"),
    )


def _notice() -> rx.Component:
    message = rx.match(
        AuthState.notice,
        ("idle_logged_out", t("idle_logged_out")),
        ("session_expired", t("session_expired")),
        ("account_disabled", t("account_disabled")),
        "",
    )
    return rx.cond(
        (AuthState.notice != "") & (AuthState.login_error == ""),
        rx.callout(message, icon="info", color_scheme="blue", data_testid="login-notice", width="100%"),
    )


@rx.page(route=routes.LOGIN, title=t("app_name") + " — " + t("sign_in"), on_load=AuthState.login_page_loaded)
def login() -> rx.Component:
    return public_page(
        rx.hstack(
            rx.box(rx.icon("scale", size=26, color="white"), background=rx.color("teal", 9), padding="0.55rem", border_radius="11px"),
            rx.vstack(
                rx.heading(t("app_name"), size="7"),
                rx.text(t("app_tagline"), color_scheme="gray", size="2"),
                spacing="0",
            ),
            align="center",
            spacing="3",
        ),
        rx.card(
            rx.form(
                rx.vstack(
                    rx.heading(t("sign_in_title"), size="5"),
                    _notice(),
                    _error(),
                    rx.text(t("email"), size="2", weight="medium"),
                    rx.input(
                        name="email",
                        type="email",
                        required=True,
                        auto_complete="username",
                        size="3",
                        width="100%",
                        data_testid="login-email",
                    ),
                    rx.text(t("password"), size="2", weight="medium"),
                    rx.input(
                        name="password",
                        type="password",
                        required=True,
                        auto_complete="current-password",
                        size="3",
                        width="100%",
                        data_testid="login-password",
                    ),
                    rx.button(
                        rx.cond(AuthState.submitting, t("signing_in"), t("sign_in")),
                        type="submit",
                        size="3",
                        width="100%",
                        loading=AuthState.submitting,
                        data_testid="login-submit",
                    ),
                    spacing="3",
                    width="100%",
                ),
                on_submit=AuthState.login,
                width="100%",
            ),
            size="4",
            width="400px",
        ),
        rx.hstack(
            rx.button(
                rx.icon("languages", size=16),
                t("language"),
                on_click=LangState.toggle_lang,
                variant="ghost",
                color_scheme="gray",
                data_testid="toggle-language",
            ),
            rx.color_mode.button(variant="ghost", color_scheme="gray"),
        ),
    )
