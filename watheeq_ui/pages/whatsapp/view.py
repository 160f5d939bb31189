"""How the WhatsApp page looks: the line panel (``line_panel``), the chats with their filters, the send box."""

from __future__ import annotations

import reflex as rx

from services.models import MessageStatus

from watheeq_ui import routes
from watheeq_ui.components.ui import card, date_field, empty_state, field_error, labelled, message_kind_label, name_text, section_title
from watheeq_ui.i18n import t, t_fmt
from watheeq_ui.layout import template
from watheeq_ui.pages.whatsapp.case_files_panel import WhatsappCaseFilesState, case_document_picker, save_to_case
from watheeq_ui.pages.whatsapp.guardrails_panel import guardrails_panel
from watheeq_ui.pages.whatsapp.ingest_panel import WhatsappIngestState, ingest_panel
from watheeq_ui.pages.whatsapp.line_panel import failure_sentence, line_panel, unlink_dialog
from watheeq_ui.pages.whatsapp.rows import ChatGroup, ChatMessage
from watheeq_ui.pages.whatsapp.state import WhatsappState


def _filter(name: str):
    """The change handler of one filter of the list."""
    return lambda value: WhatsappState.set_filter(name, value)


def _draft(name: str):
    """The change handler of one field of the send form."""
    return lambda value: WhatsappState.set_draft(name, value)


# An outbound message's tick per state: (icon, colour).
_TICKS = {
    "PENDING": ("clock", "gray"),
    "SENDING": ("clock", "gray"),
    "UNCERTAIN": ("circle-help", "amber"),
    "SENT": ("check", "gray"),
    "DELIVERED": ("check-check", "gray"),
    "READ": ("check-check", "blue"),
    "FAILED": ("circle-alert", "red"),
}


def _status_ticks(status: rx.Var) -> rx.Component:
    ticks = [(s, rx.tooltip(rx.icon(icon, size=14, color=rx.color(color, 10)), content=t(f"msg_{s}"))) for s, (icon, color) in _TICKS.items()]
    return rx.match(status, *ticks, rx.fragment())


def _status_word(status: rx.Var) -> rx.Var:
    return rx.match(status, *[(s.value, t(f"msg_{s.value}")) for s in MessageStatus], status)


def _media_stored(m: ChatMessage) -> rx.Component:
    """The file as the page shows it: a thumbnail that opens full size, a player, or a named file."""
    return rx.match(
        m.media_kind,
        (
            "image",
            rx.link(
                rx.image(src=m.media_url, alt=m.media_name, max_width="240px", max_height="240px", border_radius="6px", data_testid="wa-media-image"),
                href=m.media_url,
                is_external=True,
            ),
        ),
        ("audio", rx.el.audio(src=m.media_url, controls=True, preload="metadata", data_testid="wa-media-audio")),
        ("video", rx.el.video(src=m.media_url, controls=True, preload="metadata", max_width="320px", data_testid="wa-media-video")),
        rx.link(
            rx.hstack(rx.icon("file-text", size=16), rx.text(m.media_name, size="2"), rx.text(m.media_size, size="1", color_scheme="gray"), spacing="1", align="center"),
            href=m.media_url + "&download=true",
            is_external=True,
            data_testid="wa-media-document",
        ),
    )


def _media(m: ChatMessage) -> rx.Component:
    return rx.match(
        m.media_state,
        ("stored", _media_stored(m)),
        ("pending", rx.text(t("wa_media_pending"), size="1", color_scheme="gray", data_testid="wa-media-pending")),
        (
            "failed",
            rx.hstack(
                rx.text(t("wa_media_failed"), size="1", color_scheme="red"),
                rx.button(rx.icon("refresh-cw", size=12), t("wa_media_retry"), size="1", variant="soft", on_click=WhatsappState.retry_media(m.id), data_testid="wa-media-retry"),
                spacing="2",
                align="center",
                data_testid="wa-media-failed",
            ),
        ),
        ("too_large", rx.text(t("wa_media_too_large"), size="1", color_scheme="amber", data_testid="wa-media-refused")),
        ("over_quota", rx.text(t("wa_media_over_quota"), size="1", color_scheme="amber", data_testid="wa-media-refused")),
        rx.fragment(),
    )


def _message_bubble(m: ChatMessage, client_id: rx.Var) -> rx.Component:
    outbound = m.direction == "OUTBOUND"
    return rx.box(
        rx.vstack(
            rx.cond(m.kind != "text", rx.badge(message_kind_label(m.kind), variant="outline", size="1")),
            _media(m),
            # A file the client sent can be kept on one of their cases.
            rx.cond((~outbound) & (m.media_state == "stored") & (client_id != ""), save_to_case(m, client_id)),
            rx.text(m.body, size="2", white_space="pre-wrap"),
            rx.hstack(
                rx.text(m.at, size="1", color_scheme="gray"),
                rx.cond(outbound, _status_ticks(m.status)),
                rx.text(_status_word(m.status), size="1", color_scheme="gray", data_testid="wa-message-status"),
                spacing="1",
                align="center",
            ),
            rx.cond(
                m.error_code != "",
                rx.text(failure_sentence(m.error_code), size="1", color_scheme=rx.cond(m.status == "UNCERTAIN", "amber", "red"), data_testid="wa-message-error"),
            ),
            rx.cond(
                m.status == "UNCERTAIN",
                rx.hstack(
                    rx.button(rx.icon("send", size=12), t("wa_send_again"), size="1", variant="soft", on_click=WhatsappState.resend(m.id), data_testid="wa-send-again"),
                    rx.button(rx.icon("check", size=12), t("wa_mark_sent"), size="1", variant="soft", color_scheme="gray", on_click=WhatsappState.mark_sent(m.id), data_testid="wa-mark-sent"),
                    spacing="2",
                ),
            ),
            spacing="1",
        ),
        background=rx.cond(outbound, rx.color("green", 3), rx.color("gray", 3)),
        padding="0.5rem 0.75rem",
        border_radius="10px",
        max_width="75%",
        align_self=rx.cond(outbound, "flex-end", "flex-start"),
        data_testid="wa-message",
        # Keyed by the message, not its place: a new message must not hand this bubble's
        # player (a voice note being listened to) to another message.
        key=m.id,
        data_direction=m.direction,
        data_status=m.status,
    )


def _chat(group: ChatGroup) -> rx.Component:
    return rx.box(
        rx.hstack(
            rx.icon("message-circle", size=16, color=rx.color("green", 10)),
            rx.cond(
                group.client_id != "",
                rx.link(name_text(group.title), href="/clients/" + group.client_id, weight="bold", data_testid="wa-chat-title"),
                rx.text(name_text(group.title), weight="bold", data_testid="wa-chat-title"),
            ),
            rx.text(group.number, size="1", color_scheme="gray", dir="ltr"),
            rx.spacer(),
            rx.text(group.latest, size="1", color_scheme="gray"),
            align="center",
            width="100%",
        ),
        rx.vstack(rx.foreach(group.messages, lambda m: _message_bubble(m, group.client_id)), spacing="2", width="100%", margin_top="0.5rem"),
        padding_y="0.75rem",
        border_bottom=f"1px solid {rx.color('gray', 4)}",
        width="100%",
        key=group.chat_jid,
        data_testid="wa-chat",
    )


def _filters() -> rx.Component:
    errors = WhatsappState.filter_errors
    return rx.hstack(
        rx.vstack(
            rx.select.root(
                rx.select.trigger(placeholder=t("all_clients"), data_testid="wa-filter-client"),
                rx.select.content(
                    rx.select.item(t("all_clients"), value="any"),
                    rx.foreach(WhatsappState.client_options, lambda o: rx.select.item(o.label, value=o.value)),
                ),
                value=WhatsappState.filter_client,
                on_change=_filter("filter_client"),
            ),
            field_error(errors.get("client_id", "")),
            spacing="1",
        ),
        rx.select.root(
            rx.select.trigger(data_testid="wa-filter-direction"),
            rx.select.content(
                rx.select.item(t("any"), value="any"),
                rx.select.item(t("dir_INBOUND"), value="INBOUND"),
                rx.select.item(t("dir_OUTBOUND"), value="OUTBOUND"),
            ),
            value=WhatsappState.filter_direction,
            on_change=_filter("filter_direction"),
        ),
        rx.vstack(
            rx.hstack(
                rx.text(t("date_from"), size="2", color_scheme="gray"),
                date_field(WhatsappState.filter_from, _filter("filter_from"), "wa-filter-from", "date_from"),
                align="center",
            ),
            field_error(errors.get("date_from", "")),
            spacing="1",
        ),
        rx.vstack(
            rx.hstack(
                rx.text(t("date_to"), size="2", color_scheme="gray"),
                date_field(WhatsappState.filter_to, _filter("filter_to"), "wa-filter-to", "date_to"),
                align="center",
            ),
            field_error(errors.get("date_to", "")),
            spacing="1",
        ),
        rx.button(t("clear_filters"), variant="soft", color_scheme="gray", on_click=WhatsappState.clear_filters),
        spacing="2",
        wrap="wrap",
        align="start",
        margin_bottom="0.5rem",
    )


def _conversations() -> rx.Component:
    return card(
        section_title("wa_conversations", rx.badge(t_fmt("wa_messages_count", n=WhatsappState.messages_label), variant="soft", data_testid="wa-count")),
        _filters(),
        rx.cond(
            WhatsappState.chats.length() > 0,
            rx.vstack(rx.foreach(WhatsappState.chats, _chat), spacing="0", width="100%"),
            empty_state("wa_no_messages", "message-circle"),
        ),
        data_testid="wa-conversations",
    )


def _send_box() -> rx.Component:
    errors = WhatsappState.send_errors
    return card(
        section_title("wa_send_title"),
        rx.vstack(
            rx.segmented_control.root(
                rx.segmented_control.item(t("wa_to_client"), value="client"),
                rx.segmented_control.item(t("wa_to_number"), value="number"),
                value=WhatsappState.send_mode,
                on_change=WhatsappState.set_send_mode,
                data_testid="wa-send-mode",
            ),
            rx.cond(
                WhatsappState.send_mode == "client",
                labelled(
                    "client",
                    rx.select.root(
                        rx.select.trigger(placeholder=t("wa_choose_client"), width="100%", data_testid="wa-send-client"),
                        rx.select.content(rx.foreach(WhatsappState.client_options, lambda o: rx.select.item(o.label, value=o.value))),
                        value=WhatsappState.send_client,
                        # The client's case documents are offered once a client is chosen.
                        on_change=lambda value: [WhatsappState.set_draft("send_client", value), WhatsappCaseFilesState.choose_client(value)],
                    ),
                    errors.get("client_id", ""),
                ),
                labelled(
                    "number",
                    rx.input(
                        value=WhatsappState.send_to,
                        on_change=_draft("send_to"),
                        placeholder=t("wa_number_placeholder"),
                        inputmode="tel",
                        dir="ltr",
                        data_testid="wa-send-to",
                    ),
                    errors.get("to", ""),
                ),
            ),
            labelled(
                "wa_message",
                rx.text_area(value=WhatsappState.send_body, on_change=_draft("send_body"), rows="3", data_testid="wa-send-body"),
                errors.get("body", ""),
            ),
            field_error(errors.get("status", "")),
            field_error(errors.get("file", "")),
            case_document_picker(),
            rx.hstack(
                rx.button(rx.icon("send", size=14), t("wa_send"), on_click=WhatsappState.send, data_testid="wa-send"),
                rx.upload(
                    rx.button(rx.icon("paperclip", size=14), t("wa_attach"), variant="soft", type="button"),
                    id="wa_file",
                    max_files=1,
                    border="none",
                    padding="0",
                    data_testid="wa-attach",
                ),
                rx.cond(
                    rx.selected_files("wa_file").length() > 0,
                    rx.button(
                        rx.icon("file-up", size=14),
                        t("wa_send_file"),
                        rx.text(rx.selected_files("wa_file").join(", "), size="1"),
                        on_click=WhatsappState.send_file(rx.upload_files(upload_id="wa_file")),
                        data_testid="wa-send-file",
                    ),
                ),
                spacing="2",
                align="center",
                wrap="wrap",
            ),
            spacing="3",
            width="100%",
        ),
    )


@template(route=routes.WHATSAPP, title_key="nav_whatsapp", on_load=[WhatsappState.load, WhatsappIngestState.refresh])
def whatsapp_page() -> rx.Component:
    return rx.vstack(
        line_panel(),
        guardrails_panel(),
        ingest_panel(),
        rx.grid(
            rx.box(_conversations(), grid_column=rx.breakpoints(initial="auto", lg="span 2")),
            _send_box(),
            columns=rx.breakpoints(initial="1", lg="3"),
            spacing="4",
            width="100%",
            align_items="start",
        ),
        unlink_dialog(),
        # Leaving the page stops the pushed updates to it.
        rx.box(on_unmount=WhatsappState.stop_watching, display="none"),
        spacing="4",
        width="100%",
    )
