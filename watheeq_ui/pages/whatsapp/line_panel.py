"""The WhatsApp line panel: its state as the firm's people may see it (the QR only for OWNER/ADMIN;
the code never even reaches another role's browser), link and unlink, and failures."""

from __future__ import annotations

import reflex as rx

from services.whatsapp.failures import Failure

from watheeq_ui.components.ui import card, name_text, section_title
from watheeq_ui.i18n import t, t_fmt
from watheeq_ui.pages.whatsapp.state import WhatsappState
from watheeq_ui.state.auth import AuthState


def failure_sentence(code: rx.Var) -> rx.Var:
    return rx.match(code, *[(f.value, t(f"wa_fail_{f.value}")) for f in Failure], t("wa_fail_unknown"))


def _failure_notice(color: str, icon: str, test_id: str) -> rx.Component:
    """What went wrong and what to do; the raw detail only for OWNER/ADMIN, collapsed."""
    return rx.vstack(
        rx.callout(failure_sentence(WhatsappState.error_code), icon=icon, color_scheme=color, size="1", data_testid=test_id, data_code=WhatsappState.error_code),
        rx.cond(
            AuthState.is_admin,
            rx.vstack(
                rx.button(
                    rx.cond(WhatsappState.error_detail != "", t("wa_hide_details"), t("wa_details")),
                    variant="ghost",
                    size="1",
                    color_scheme="gray",
                    on_click=WhatsappState.toggle_error_detail,
                    data_testid="wa-error-details-toggle",
                ),
                rx.cond(
                    WhatsappState.error_detail != "",
                    rx.code(WhatsappState.error_detail, dir="ltr", white_space="pre-wrap", word_break="break-all", data_testid="wa-error-detail"),
                ),
                spacing="1",
                align="start",
            ),
        ),
        spacing="1",
        align="start",
        width="100%",
    )


def _disconnected_panel() -> rx.Component:
    return rx.vstack(
        rx.hstack(rx.icon("unplug", size=22, color=rx.color("gray", 10)), rx.heading(t("wa_DISCONNECTED"), size="4"), align="center"),
        rx.text(t("wa_not_linked_body"), color_scheme="gray"),
        rx.cond(WhatsappState.error_code != "", _failure_notice("amber", "info", "wa-last-error")),
        rx.cond(
            AuthState.is_admin,
            rx.button(rx.icon("qr-code", size=16), t("wa_link"), on_click=WhatsappState.link, size="3", data_testid="wa-link"),
            rx.text(t("wa_admin_only"), size="2", color_scheme="gray"),
        ),
        spacing="3",
        align="start",
        data_testid="wa-panel-disconnected",
    )


def _qr_panel() -> rx.Component:
    return rx.hstack(
        rx.box(
            rx.image(
                src=WhatsappState.qr_image,
                alt="WhatsApp QR",
                width="264px",
                height="264px",
                # When the sidecar wrote this code (epoch ms): what the QR latency is measured from.
                data_issued=WhatsappState.qr_issued_ms,
                data_testid="wa-qr",
            ),
            padding="8px",
            background="white",
            border_radius="12px",
            border=f"1px solid {rx.color('gray', 6)}",
        ),
        rx.vstack(
            rx.heading(t("wa_scan_title"), size="4"),
            rx.hstack(rx.icon("smartphone", size=16), rx.text(t("wa_scan_steps"), weight="medium", data_testid="wa-steps"), align="center"),
            rx.cond(
                WhatsappState.qr_seconds_left > 0,
                rx.badge(t_fmt("wa_code_refresh", n=WhatsappState.qr_seconds_left), variant="soft", size="2", data_testid="wa-countdown"),
                rx.badge(t("wa_code_refreshing"), variant="soft", color_scheme="gray", size="2", data_testid="wa-countdown"),
            ),
            rx.cond(
                AuthState.is_admin,
                rx.button(t("wa_cancel_link"), variant="soft", color_scheme="gray", on_click=WhatsappState.unlink, data_testid="wa-cancel-link"),
            ),
            spacing="3",
            align="start",
        ),
        spacing="5",
        align="center",
        wrap="wrap",
        data_testid="wa-panel-qr",
    )


def _linking_panel() -> rx.Component:
    # The code itself never reaches a non-admin's browser (get_session_status withholds it).
    return rx.hstack(
        rx.spinner(size="2"),
        rx.text(t("wa_admin_linking"), color_scheme="gray"),
        align="center",
        data_testid="wa-panel-linking",
    )


def _connected_panel() -> rx.Component:
    def fact(label_key: str, value: rx.Var | rx.Component, test_id: str) -> rx.Component:
        return rx.vstack(
            rx.text(t(label_key), size="1", color_scheme="gray"),
            rx.text(value, size="3", weight="medium", dir="ltr", data_testid=test_id),
            spacing="0",
        )

    return rx.vstack(
        rx.hstack(rx.icon("circle-check", size=22, color=rx.color("green", 10)), rx.heading(t("wa_CONNECTED"), size="4"), align="center"),
        rx.hstack(
            fact("wa_linked_as", WhatsappState.phone_number, "wa-phone"),
            fact("wa_profile", name_text(WhatsappState.push_name), "wa-push-name"),
            fact("wa_since", WhatsappState.connected_since, "wa-since"),
            spacing="6",
            wrap="wrap",
        ),
        rx.cond(
            AuthState.is_admin,
            rx.button(rx.icon("unlink", size=14), t("wa_unlink"), color_scheme="red", variant="soft", on_click=WhatsappState.ask_unlink, data_testid="wa-unlink"),
        ),
        spacing="3",
        align="start",
        data_testid="wa-panel-connected",
    )


def _service_down_notice() -> rx.Component:
    """No sidecar holds the line: since when, and that messages wait for it (not a stale CONNECTED)."""
    return rx.callout(
        t_fmt("wa_service_down_since", x=WhatsappState.service_down_since),
        icon="server-off",
        color_scheme="red",
        size="1",
        data_testid="wa-service-down",
        data_code="service_down",
    )


def _error_panel() -> rx.Component:
    return rx.vstack(
        rx.hstack(rx.icon("triangle-alert", size=22, color=rx.color("red", 10)), rx.heading(t("wa_error_title"), size="4"), align="center"),
        rx.cond(WhatsappState.service_down_since != "", _service_down_notice(), _failure_notice("red", "circle-alert", "wa-error")),
        rx.cond(
            WhatsappState.next_retry != "",
            rx.text(t_fmt("wa_next_retry", x=WhatsappState.next_retry), size="2", color_scheme="gray", data_testid="wa-next-retry"),
        ),
        rx.cond(
            AuthState.is_admin,
            rx.button(t("wa_cancel_link"), variant="soft", color_scheme="gray", on_click=WhatsappState.unlink),
        ),
        spacing="3",
        align="start",
        data_testid="wa-panel-error",
    )


def line_panel() -> rx.Component:
    return card(
        section_title(
            "wa_line",
            rx.cond(WhatsappState.simulator, rx.badge(t("simulator"), color_scheme="purple", variant="outline", data_testid="wa-simulator")),
        ),
        rx.match(
            WhatsappState.status,
            ("CONNECTED", _connected_panel()),
            ("QR_PENDING", rx.cond(AuthState.is_admin, _qr_panel(), _linking_panel())),
            ("ERROR", _error_panel()),
            ("CONNECTING", rx.hstack(rx.spinner(size="3"), rx.text(t("wa_starting")), align="center", data_testid="wa-panel-connecting")),
            ("", rx.spinner(size="3")),
            _disconnected_panel(),
        ),
        data_testid="wa-line",
    )


def unlink_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(t("wa_unlink_confirm")),
            rx.alert_dialog.description(t("wa_unlink_body")),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button(t("cancel"), variant="soft", color_scheme="gray", on_click=WhatsappState.cancel_unlink)),
                rx.alert_dialog.action(rx.button(t("wa_unlink"), color_scheme="red", on_click=WhatsappState.unlink, data_testid="wa-unlink-confirm")),
                justify="end",
                spacing="3",
                margin_top="1rem",
            ),
        ),
        open=WhatsappState.confirm_unlink,
    )
