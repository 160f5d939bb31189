"""The extensions page (OWNER/ADMIN): the users and their extensions, the assignment, PBX and bulk forms."""

from __future__ import annotations

import reflex as rx

from watheeq_ui import routes
from watheeq_ui.components.ui import card, confirm_dialog, field_error, labelled, name_text, role_label, section_title
from watheeq_ui.i18n import t, t_fmt
from watheeq_ui.layout import template
from watheeq_ui.pages.extensions.call_records import CallRecordsState, call_records_card
from watheeq_ui.pages.extensions.feed_health import feed_health_line
from watheeq_ui.pages.extensions.state import ExtensionsState


def _users_table() -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                *[rx.table.column_header_cell(t(k)) for k in ("user", "email", "extension", "display_name")],
                rx.table.column_header_cell(""),
            )
        ),
        rx.table.body(
            rx.foreach(
                ExtensionsState.users,
                lambda u: rx.table.row(
                    rx.table.row_header_cell(rx.vstack(rx.text(name_text(u.name), weight="medium"), rx.text(role_label(u.role), size="1", color_scheme="gray"), spacing="0")),
                    rx.table.cell(u.email),
                    rx.table.cell(
                        rx.cond(
                            u.extension != "",
                            rx.badge(u.extension, size="2", variant="soft", data_testid="extension-number"),
                            rx.text(t("no_extension"), color_scheme="gray", size="2"),
                        )
                    ),
                    rx.table.cell(name_text(u.display_name)),
                    rx.table.cell(
                        rx.hstack(
                            rx.button(rx.icon("pencil", size=14), t("edit"), size="1", variant="soft", on_click=ExtensionsState.edit(u.user_id)),
                            rx.cond(
                                u.extension_id != "",
                                rx.button(
                                    rx.icon("trash-2", size=14),
                                    t("delete"),
                                    size="1",
                                    variant="soft",
                                    color_scheme="red",
                                    on_click=ExtensionsState.ask_delete(u.extension_id, u.extension),
                                    data_testid="extension-delete",
                                ),
                            ),
                        )
                    ),
                    data_testid="user-row",
                ),
            )
        ),
        variant="ghost",
        width="100%",
        data_testid="extensions-table",
    )


# The secret fields' element ids: the submit chain empties them whatever the outcome.
PASSWORD_FIELD_ID = "assign-password"
TURN_CREDENTIAL_FIELD_ID = "pbx-turn-credential"


def _assign_form() -> rx.Component:
    errors = ExtensionsState.form_errors
    return card(
        section_title("assign_extension"),
        rx.form(
            rx.vstack(
                labelled(
                    "user",
                    rx.select.root(
                        rx.select.trigger(placeholder=t("choose_user"), width="100%", data_testid="assign-user"),
                        rx.select.content(rx.foreach(ExtensionsState.user_options, lambda o: rx.select.item(o.label, value=o.value))),
                        value=ExtensionsState.form_user,
                        on_change=ExtensionsState.set_form_user,
                    ),
                    errors.get("user_id", ""),
                ),
                labelled(
                    "extension",
                    rx.input(value=ExtensionsState.form_extension, on_change=ExtensionsState.set_form_extension, inputmode="numeric", data_testid="assign-extension"),
                    errors.get("extension", ""),
                ),
                labelled(
                    "display_name",
                    rx.input(value=ExtensionsState.form_display_name, on_change=ExtensionsState.set_form_display_name, data_testid="assign-display-name"),
                    errors.get("display_name", ""),
                ),
                labelled(
                    "sip_password",
                    rx.input(
                        type="password",
                        name="password",
                        id=PASSWORD_FIELD_ID,
                        auto_complete="new-password",
                        data_testid="assign-password",
                    ),
                    errors.get("password", ""),
                    hint_key="sip_password_hint",
                ),
                rx.button(rx.icon("check", size=14), t("assign"), type="submit", data_testid="assign-submit"),
                spacing="3",
                width="100%",
            ),
            on_submit=[ExtensionsState.assign, rx.set_value(PASSWORD_FIELD_ID, "")],
            width="100%",
        ),
    )


def _pbx_input(label_key: str, name: str, value: rx.Var, error_key: str, hint_key: str | None = None, **props) -> rx.Component:
    return labelled(
        label_key,
        # Host names, ports, paths and URLs read left to right in both languages ("/ws", not "ws/").
        rx.input(value=value, on_change=lambda v: ExtensionsState.set_pbx_field(name, v), dir="ltr", data_testid=f"pbx-{name}", **props),
        ExtensionsState.pbx_errors.get(error_key, ""),
        hint_key=hint_key,
    )


def _pbx_form() -> rx.Component:
    return card(
        section_title("pbx_settings", rx.code(ExtensionsState.pbx_wss_url, size="1")),
        rx.form(
            rx.grid(
                _pbx_input("pbx_host", "host", ExtensionsState.pbx_host, "host", placeholder="pbx.example.local"),
                _pbx_input("sip_domain", "domain", ExtensionsState.pbx_domain, "sip_domain"),
                _pbx_input("pbx_did", "did", ExtensionsState.pbx_did, "did", hint_key="pbx_did_hint",
                           placeholder="+966110000000"),
                labelled(
                    "pbx_transport",
                    rx.select.root(
                        rx.select.trigger(width="100%", data_testid="pbx-transport"),
                        rx.select.content(
                            rx.select.item(t("pbx_transport_wss"), value="wss"),
                            rx.select.item(t("pbx_transport_ws"), value="ws"),
                        ),
                        value=ExtensionsState.pbx_transport,
                        on_change=lambda v: ExtensionsState.set_pbx_field("transport", v),
                    ),
                    ExtensionsState.pbx_errors.get("transport", ""),
                ),
                _pbx_input("wss_port", "port", ExtensionsState.pbx_port, "wss_port", inputmode="numeric"),
                _pbx_input("wss_path", "path", ExtensionsState.pbx_path, "wss_path"),
                columns="2",
                spacing="3",
                width="100%",
            ),
            rx.vstack(
                labelled(
                    "stun_servers",
                    rx.text_area(
                        value=ExtensionsState.pbx_stun,
                        on_change=lambda v: ExtensionsState.set_pbx_field("stun", v),
                        placeholder="stun:stun.example.local:3478",
                        rows="2",
                        dir="ltr",
                        data_testid="pbx-stun",
                    ),
                ),
                rx.grid(
                    _pbx_input("turn_server", "turn_url", ExtensionsState.pbx_turn_url, "turn", placeholder="turn:turn.example.local:3478"),
                    _pbx_input("turn_username", "turn_username", ExtensionsState.pbx_turn_username, "turn_username"),
                    columns="2",
                    spacing="3",
                    width="100%",
                ),
                labelled(
                    "turn_credential",
                    rx.input(
                        type="password",
                        name="turn_credential",
                        id=TURN_CREDENTIAL_FIELD_ID,
                        auto_complete="new-password",
                        data_testid="pbx-turn_credential",
                    ),
                    ExtensionsState.pbx_errors.get("turn_credential", ""),
                    hint_key="turn_credential_hint",
                ),
                field_error(ExtensionsState.pbx_errors.get("ice", "")),
                rx.button(rx.icon("save", size=14), t("save"), type="submit", data_testid="pbx-save"),
                spacing="3",
                width="100%",
                margin_top="0.75rem",
            ),
            on_submit=[ExtensionsState.save_pbx, rx.set_value(TURN_CREDENTIAL_FIELD_ID, ""), CallRecordsState.load],
            width="100%",
        ),
    )


def _bulk() -> rx.Component:
    return card(
        section_title("bulk_assign"),
        rx.text(t("bulk_hint"), size="2", color_scheme="gray"),
        rx.hstack(
            rx.upload(
                rx.button(rx.icon("file-up", size=14), t("choose_csv"), variant="soft", type="button"),
                rx.text(rx.selected_files("bulk_csv").join(", "), size="2"),
                id="bulk_csv",
                accept={"text/csv": [".csv"]},
                max_files=1,
                border="none",
                padding="0",
                data_testid="bulk-upload",
            ),
            rx.button(
                t("import"),
                on_click=ExtensionsState.bulk_assign(rx.upload_files(upload_id="bulk_csv")),
                data_testid="bulk-import",
            ),
            align="center",
            margin_y="0.75rem",
        ),
        field_error(ExtensionsState.bulk_error),
        rx.cond(
            ExtensionsState.bulk_results.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(*[rx.table.column_header_cell(t(k)) for k in ("row", "email", "extension", "result")])
                ),
                rx.table.body(
                    rx.foreach(
                        ExtensionsState.bulk_results,
                        lambda r: rx.table.row(
                            rx.table.cell(r.row),
                            rx.table.cell(r.email),
                            rx.table.cell(r.extension),
                            rx.table.cell(
                                rx.cond(
                                    r.done,
                                    rx.badge(t("done"), color_scheme="green"),
                                    rx.hstack(rx.badge(t("rejected"), color_scheme="red"), rx.text(r.reason, size="1")),
                                )
                            ),
                            data_testid="bulk-result",
                        ),
                    )
                ),
                size="1",
                width="100%",
            ),
        ),
    )


def _delete_dialog() -> rx.Component:
    return confirm_dialog(
        title=t_fmt("confirm_delete", x=ExtensionsState.delete_label),
        body_key="confirm_delete_body",
        confirm_key="delete",
        is_open=ExtensionsState.delete_id != "",
        on_cancel=ExtensionsState.cancel_delete,
        on_confirm=ExtensionsState.confirm_delete,
        test_id="confirm-delete",
    )


@template(route=routes.EXTENSIONS, title_key="nav_extensions", access="admin",
          on_load=[ExtensionsState.load, CallRecordsState.load])
def extensions() -> rx.Component:
    return rx.vstack(
        rx.grid(
            card(
                section_title("extensions_title", rx.badge(t_fmt("users_count", n=ExtensionsState.users_label), variant="soft")),
                _users_table(),
                grid_column=rx.breakpoints(initial="auto", lg="span 2"),
            ),
            _assign_form(),
            columns=rx.breakpoints(initial="1", lg="3"),
            spacing="4",
            width="100%",
        ),
        rx.grid(_pbx_form(), _bulk(), columns=rx.breakpoints(initial="1", lg="2"), spacing="4", width="100%"),
        # Call records (issue 12): the source, its connection test, the feed's health.
        rx.grid(call_records_card(), card(feed_health_line()), columns=rx.breakpoints(initial="1", lg="2"), spacing="4", width="100%"),
        _delete_dialog(),
        spacing="4",
        width="100%",
    )
