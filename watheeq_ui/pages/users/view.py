"""The users page (OWNER/ADMIN): the accounts table, the add form and the link, disable and reset dialogs."""

from __future__ import annotations

import reflex as rx

from watheeq_ui import routes
from watheeq_ui.components.ui import card, confirm_dialog, labelled, name_text, role_label, section_title
from watheeq_ui.i18n import t, t_fmt
from watheeq_ui.layout import template
from watheeq_ui.pages.users.state import UserRow, UsersState


def _role_cell(u: UserRow) -> rx.Component:
    return rx.cond(
        ~u.manageable,
        rx.hstack(
            rx.text(role_label(u.role), data_testid="user-role-text"),
            rx.cond(u.is_self, rx.badge(t("you"), variant="outline", size="1")),
            align="center",
        ),
        rx.select.root(
            rx.select.trigger(data_testid="user-role-select", min_width="8rem"),
            rx.select.content(
                rx.foreach(UsersState.role_options, lambda r: rx.select.item(role_label(r), value=r)),
            ),
            value=u.role,
            on_change=lambda role: UsersState.change_role(u.user_id, role),
            size="1",
        ),
    )


def _actions(u: UserRow) -> rx.Component:
    return rx.cond(
        ~u.manageable,
        rx.fragment(),
        rx.hstack(
            rx.cond(
                u.active,
                rx.button(
                    rx.icon("user-x", size=14), t("disable"), size="1", variant="soft", color_scheme="red",
                    on_click=UsersState.ask_disable(u.user_id, u.email), data_testid="user-disable",
                ),
                rx.button(
                    rx.icon("user-check", size=14), t("enable"), size="1", variant="soft", color_scheme="green",
                    on_click=UsersState.enable(u.user_id), data_testid="user-enable",
                ),
            ),
            rx.button(
                rx.icon("key-round", size=14), t("reset_password"), size="1", variant="soft",
                on_click=UsersState.ask_reset(u.user_id, u.email), data_testid="user-reset",
            ),
        ),
    )


def _users_table() -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                *[rx.table.column_header_cell(t(k)) for k in ("name", "email", "role", "status", "extension", "last_sign_in")],
                rx.table.column_header_cell(""),
            )
        ),
        rx.table.body(
            rx.foreach(
                UsersState.users,
                lambda u: rx.table.row(
                    rx.table.row_header_cell(rx.text(name_text(u.name), weight="medium")),
                    rx.table.cell(u.email, data_testid="user-email"),
                    rx.table.cell(_role_cell(u)),
                    rx.table.cell(
                        rx.cond(
                            u.active,
                            rx.badge(t("active"), color_scheme="green", variant="soft", data_testid="user-status"),
                            rx.badge(t("disabled"), color_scheme="red", variant="soft", data_testid="user-status"),
                        )
                    ),
                    rx.table.cell(rx.cond(u.extension != "", rx.badge(u.extension, variant="soft"), rx.text("—", color_scheme="gray"))),
                    rx.table.cell(rx.cond(u.last_sign_in != "", rx.text(u.last_sign_in, size="2"), rx.text(t("never"), color_scheme="gray", size="2"))),
                    rx.table.cell(_actions(u)),
                    data_testid="users-row",
                    data_email=u.email,
                ),
            )
        ),
        variant="ghost",
        width="100%",
        data_testid="users-table",
    )


def _password_mode(value: rx.Var, on_change) -> rx.Component:
    return rx.radio_group.root(
        rx.vstack(
            rx.radio_group.item(t("password_mode_link"), value="link", data_testid="mode-link"),
            rx.radio_group.item(t("password_mode_password"), value="password", data_testid="mode-password"),
            spacing="2",
        ),
        value=value,
        on_change=on_change,
    )


def _password_input(name: str, test_id: str) -> rx.Component:
    return rx.input(name=name, type="password", auto_complete="new-password", data_testid=test_id)


def _add_form() -> rx.Component:
    errors = UsersState.form_errors
    return card(
        section_title("add_user"),
        rx.form(
            rx.vstack(
                labelled("full_name", rx.input(name="full_name", data_testid="new-user-name"), errors.get("full_name", "")),
                labelled("email", rx.input(name="email", type="email", data_testid="new-user-email"), errors.get("email", "")),
                labelled(
                    "role",
                    rx.select.root(
                        rx.select.trigger(width="100%", data_testid="new-user-role"),
                        rx.select.content(rx.foreach(UsersState.role_options, lambda r: rx.select.item(role_label(r), value=r))),
                        value=UsersState.new_role,
                        on_change=UsersState.set_new_role,
                    ),
                    errors.get("role", ""),
                ),
                _password_mode(UsersState.new_mode, UsersState.set_new_mode),
                rx.cond(
                    UsersState.new_mode == "password",
                    labelled("password", _password_input("password", "new-user-password"), errors.get("password", "")),
                ),
                rx.button(rx.icon("user-plus", size=14), t("add"), type="submit", data_testid="new-user-submit"),
                spacing="3",
                width="100%",
            ),
            id="add-user-form",
            on_submit=UsersState.add_user,
            reset_on_submit=False,
            width="100%",
        ),
    )


def _link_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(t_fmt("link_title", x=UsersState.link_email)),
            rx.dialog.description(t("link_body"), size="2"),
            rx.code(UsersState.link_url, word_break="break-all", data_testid="password-link", margin_y="1rem", display="block"),
            rx.hstack(
                rx.button(rx.icon("copy", size=14), t("copy"), variant="soft", on_click=rx.set_clipboard(UsersState.link_url)),
                rx.button(t("copied_close"), on_click=UsersState.close_link, data_testid="password-link-close"),
                justify="end",
                spacing="3",
            ),
        ),
        open=UsersState.link_url != "",
    )


def _disable_dialog() -> rx.Component:
    return confirm_dialog(
        title=t_fmt("confirm_disable", x=UsersState.disable_label),
        body_key="confirm_disable_body",
        confirm_key="disable",
        is_open=UsersState.disable_id != "",
        on_cancel=UsersState.cancel_disable,
        on_confirm=UsersState.confirm_disable,
        test_id="confirm-disable",
    )


def _reset_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(t_fmt("reset_password_for", x=UsersState.reset_label)),
            rx.dialog.description(t("reset_password_body"), size="2", margin_bottom="1rem"),
            rx.form(
                rx.vstack(
                    _password_mode(UsersState.reset_mode, UsersState.set_reset_mode),
                    rx.cond(
                        UsersState.reset_mode == "password",
                        rx.vstack(
                            labelled("new_password", _password_input("password", "reset-password")),
                            labelled("confirm_password", _password_input("confirm", "reset-confirm")),
                            width="100%",
                        ),
                    ),
                    rx.cond(
                        UsersState.reset_error != "",
                        rx.callout(UsersState.reset_error, color_scheme="red", icon="triangle-alert", data_testid="reset-error", width="100%"),
                    ),
                    rx.hstack(
                        rx.button(t("cancel"), type="button", variant="soft", color_scheme="gray", on_click=UsersState.cancel_reset),
                        rx.button(t("reset_password"), type="submit", data_testid="confirm-reset"),
                        justify="end",
                        spacing="3",
                        width="100%",
                    ),
                    spacing="3",
                    width="100%",
                ),
                on_submit=UsersState.confirm_reset,
                reset_on_submit=False,
            ),
        ),
        open=UsersState.reset_id != "",
    )


@template(route=routes.USERS, title_key="nav_users", access="admin", on_load=UsersState.load)
def users() -> rx.Component:
    return rx.vstack(
        card(
            section_title("users_title", rx.badge(t_fmt("users_count", n=UsersState.users_label), variant="soft")),
            rx.box(_users_table(), overflow_x="auto", width="100%"),
        ),
        rx.box(_add_form(), max_width="520px", width="100%"),
        _link_dialog(),
        _disable_dialog(),
        _reset_dialog(),
        spacing="4",
        width="100%",
    )
