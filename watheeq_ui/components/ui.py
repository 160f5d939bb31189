"""Small building blocks shared by the pages: cards, figures, badges, field errors."""

from __future__ import annotations

import reflex as rx

from watheeq_ui.i18n import t


def card(*children: rx.Component, **props) -> rx.Component:
    props.setdefault("width", "100%")
    return rx.card(*children, size="2", **props)


def section_title(key: str, *extra: rx.Component) -> rx.Component:
    return rx.hstack(
        rx.heading(t(key), size="4", weight="medium"),
        rx.spacer(),
        *extra,
        align="center",
        width="100%",
        margin_bottom="0.75rem",
    )


def icon_either(condition: rx.Var, when_true: str, when_false: str, **props) -> rx.Component:
    """One of two named icons. Never ``rx.icon(rx.cond(...))``: an icon named by a var
    compiles to lucide's DynamicIcon, whose map of every icon (600 KB of JavaScript)
    then loads with the pages' shared module on every page's first load."""
    return rx.cond(condition, rx.icon(when_true, **props), rx.icon(when_false, **props))


def stat_card(label_key: str, value: rx.Var | str, icon: str, color: str = "teal", test_id: str = "") -> rx.Component:
    return card(
        rx.hstack(
            rx.vstack(
                rx.text(t(label_key), size="2", color_scheme="gray"),
                rx.text(value, size="7", weight="bold", data_testid=test_id or None),
                spacing="1",
            ),
            rx.spacer(),
            rx.box(
                rx.icon(icon, size=22),
                color=rx.color(color, 11),
                background=rx.color(color, 3),
                padding="0.6rem",
                border_radius="10px",
            ),
            align="start",
            width="100%",
        ),
    )


def name_text(value: rx.Var | str, **props) -> rx.Component:
    """A name someone typed or a phone reported, isolated in a ``<bdi dir="auto">``.

    Its own direction (Arabic in an English row, or a stray control character in a row
    stored before names were cleaned) then cannot reorder the text around it.
    """
    return rx.el.bdi(value, dir="auto", data_name="", **props)


def field_error(message: rx.Var) -> rx.Component:
    """The reason a field was refused, under the field; nothing when empty."""
    return rx.cond(
        message != "",
        rx.text(message, color_scheme="red", size="1", role="alert", data_testid="field-error"),
    )


def labelled(label_key: str, control: rx.Component, error: rx.Var | None = None, hint_key: str | None = None) -> rx.Component:
    return rx.vstack(
        rx.text(t(label_key), size="2", weight="medium"),
        control,
        rx.text(t(hint_key), size="1", color_scheme="gray") if hint_key else rx.fragment(),
        field_error(error) if error is not None else rx.fragment(),
        spacing="1",
        width="100%",
        align="stretch",
    )


def confirm_dialog(*, title: rx.Var, body_key: str, confirm_key: str, is_open: rx.Var, on_cancel, on_confirm, test_id: str) -> rx.Component:
    """A red confirmation of what cannot be undone; Cancel (or Escape) runs ``on_cancel``."""
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(title),
            rx.alert_dialog.description(t(body_key)),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button(t("cancel"), variant="soft", color_scheme="gray", on_click=on_cancel)),
                rx.alert_dialog.action(rx.button(t(confirm_key), color_scheme="red", on_click=on_confirm, data_testid=test_id)),
                justify="end",
                spacing="3",
                margin_top="1rem",
            ),
        ),
        open=is_open,
    )


def date_field(value: rx.Var, on_change, test_id: str, label_key: str) -> rx.Component:
    """A day picker that writes the day as YYYY-MM-DD in both languages.

    Chromium draws a native date input in the browser's own locale (``mm/dd/yyyy`` on an
    English browser) whatever the page's ``lang``; this field shows the value the way every
    date in the dashboard is written and opens the native calendar for choosing it.
    """
    picker_id = f"{test_id}-picker"
    return rx.hstack(
        rx.box(
            rx.button(
                rx.icon("calendar", size=14),
                rx.cond(value != "", rx.text(value, dir="ltr", as_="span"), rx.text(t("date_placeholder"), as_="span", color_scheme="gray")),
                type="button",
                variant="surface",
                color_scheme="gray",
                # showPicker needs the click's user activation: it runs in the browser, no round trip.
                on_click=rx.call_script(f"document.getElementById('{picker_id}').showPicker()"),
                aria_label=t(label_key),
                width="150px",
                justify="start",
                data_testid=test_id,
            ),
            rx.el.input(
                type="date",
                value=value,
                on_change=on_change,
                id=picker_id,
                tab_index=-1,
                aria_hidden="true",
                # Under the button, so the calendar opens there; invisible and out of the way.
                style={"position": "absolute", "inset": "0", "opacity": "0", "pointer_events": "none"},
                data_testid=picker_id,
            ),
            position="relative",
        ),
        rx.cond(
            value != "",
            rx.icon_button(
                rx.icon("x", size=12),
                size="1",
                variant="ghost",
                color_scheme="gray",
                on_click=on_change(""),
                aria_label=t("clear_date"),
                data_testid=f"{test_id}-clear",
            ),
        ),
        align="center",
        spacing="1",
    )


def status_badge(status: rx.Var) -> rx.Component:
    return rx.match(
        status,
        ("COMPLETED", rx.badge(t("st_COMPLETED"), color_scheme="green", variant="soft")),
        ("ANSWERED", rx.badge(t("st_ANSWERED"), color_scheme="blue", variant="soft")),
        ("RINGING", rx.badge(t("st_RINGING"), color_scheme="amber", variant="soft")),
        ("MISSED", rx.badge(t("st_MISSED"), color_scheme="red", variant="soft")),
        ("REJECTED", rx.badge(t("st_REJECTED"), color_scheme="orange", variant="soft")),
        ("BUSY", rx.badge(t("st_BUSY"), color_scheme="orange", variant="soft")),
        ("FAILED", rx.badge(t("st_FAILED"), color_scheme="gray", variant="soft")),
        ("NO_ANSWER", rx.badge(t("st_NO_ANSWER"), color_scheme="red", variant="soft")),
        rx.badge(status, variant="soft"),
    )


def direction_icon(direction: rx.Var) -> rx.Component:
    return rx.cond(
        direction == "INBOUND",
        rx.tooltip(rx.icon("phone-incoming", size=16, color=rx.color("blue", 10)), content=t("dir_INBOUND")),
        rx.tooltip(rx.icon("phone-outgoing", size=16, color=rx.color("teal", 10)), content=t("dir_OUTBOUND")),
    )


def empty_state(key: str, icon: str = "inbox") -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.icon(icon, size=28, color=rx.color("gray", 9)),
            rx.text(t(key), color_scheme="gray"),
            align="center",
        ),
        padding="2rem",
        width="100%",
    )


MESSAGE_KINDS = ("image", "video", "document", "audio", "voice", "sticker", "location", "contact", "poll", "call")


def message_kind_label(kind: rx.Var) -> rx.Var:
    """What a WhatsApp message carries (image, voice note...), in the chosen language."""
    return rx.match(kind, *[(k, t(f"kind_{k}")) for k in MESSAGE_KINDS], kind)


def role_label(role: rx.Var) -> rx.Var:
    return rx.match(
        role,
        ("OWNER", t("role_OWNER")),
        ("ADMIN", t("role_ADMIN")),
        ("MANAGER", t("role_MANAGER")),
        ("AGENT", t("role_AGENT")),
        role,
    )
