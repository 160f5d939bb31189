"""The call history's side panel: one call's details, its client and case, notes, recordings, delete."""

from __future__ import annotations

import reflex as rx

from watheeq_ui.components.softphone import call_button
from watheeq_ui.components.ui import direction_icon, field_error, name_text, status_badge
from watheeq_ui.i18n import t
from watheeq_ui.pages.calls.legs import legs_section
from watheeq_ui.pages.calls.state import CallsState
from watheeq_ui.state.auth import AuthState
from watheeq_ui.state.lang import LangState


def _detail_line(label_key: str, value: rx.Var | rx.Component) -> rx.Component:
    return rx.hstack(
        rx.text(t(label_key), size="2", color_scheme="gray", min_width="130px"),
        rx.text(value, size="2", weight="medium"),
        width="100%",
    )


def _delete_call() -> rx.Component:
    """Delete, confirmed in place: a dialog over the modal drawer would open under its overlay."""
    return rx.vstack(
        rx.divider(),
        rx.cond(
            CallsState.confirming_delete,
            rx.callout.root(
                rx.callout.text(t("delete_call_confirm")),
                rx.hstack(
                    rx.button(t("cancel"), variant="soft", color_scheme="gray", on_click=CallsState.set_confirming_delete(False), data_testid="delete-call-cancel"),
                    rx.button(t("delete"), color_scheme="red", on_click=CallsState.delete_call, data_testid="delete-call-confirm"),
                    justify="end",
                    width="100%",
                ),
                color_scheme="red",
                role="alertdialog",
                width="100%",
                data_testid="delete-call-confirmation",
            ),
            rx.button(
                rx.icon("trash-2", size=14),
                t("delete_call"),
                variant="soft",
                color_scheme="red",
                on_click=CallsState.set_confirming_delete(True),
                data_testid="delete-call",
            ),
        ),
        width="100%",
        align="start",
    )


class _Player(type(rx.el.audio())):  # type: ignore[misc]
    """``<audio>`` with its ``error`` event, which Reflex's element does not expose."""

    on_error: rx.EventHandler[rx.event.no_args_event_spec]


def _recording(rec: rx.Var) -> rx.Component:
    """One recording: a player that streams and seeks (HTTP ranges through a link signed for
    this tab's session), its length and a download; or why it cannot be played."""
    return rx.match(
        rec.state,
        (
            "stored",
            rx.vstack(
                _Player.create(
                    src=rec.url, controls=True, preload="metadata", style={"width": "100%"},
                    # An expired link (the panel left open a long time) is renewed.
                    on_error=CallsState.renew_recording_links, data_testid="recording-audio",
                ),
                rx.hstack(
                    rx.text(t("recording_length"), ": ", rec.duration, size="1", color_scheme="gray", data_testid="recording-duration"),
                    rx.spacer(),
                    rx.link(
                        rx.hstack(rx.icon("download", size=14), rx.text(t("download"), size="1")),
                        href=rec.url + "&download=true",
                        is_external=False,
                        data_testid="recording-download",
                    ),
                    width="100%",
                ),
                width="100%",
                spacing="1",
                data_testid="recording",
            ),
        ),
        ("purged", rx.text(t("recording_purged"), size="2", color_scheme="gray", data_testid="recording-purged")),
        ("failed", rx.text(t("recording_failed"), size="2", color_scheme="red", data_testid="recording-failed")),
        rx.text(t("recording_pending"), size="2", color_scheme="gray", data_testid="recording-pending"),
    )


def call_panel() -> rx.Component:
    c = CallsState.call
    return rx.drawer.root(
        rx.drawer.portal(
            rx.drawer.overlay(z_index="40"),
            rx.drawer.content(
                rx.scroll_area(
                    rx.vstack(
                        rx.hstack(
                            rx.heading(t("call_details"), size="5"),
                            rx.spacer(),
                            rx.drawer.close(rx.icon_button(rx.icon("x", size=18), variant="ghost", color_scheme="gray", data_testid="panel-close")),
                            width="100%",
                        ),
                        rx.hstack(direction_icon(c.direction), status_badge(c.status), rx.text(c.started, size="2"), align="center"),
                        rx.divider(),
                        _detail_line("remote_number", c.remote_number),
                        call_button(
                            c.remote_number,
                            label_key="call_back",
                            test_id="panel-call-back",
                            size="2",
                            # Closed first: the drawer is modal and would cover the phone's controls.
                            before=[CallsState.set_panel_open(False)],
                        ),
                        _detail_line("agent", name_text(c.agent)),
                        _detail_line("extension", c.extension),
                        _detail_line("answered_at", c.answered),
                        _detail_line("ended_at", c.ended),
                        _detail_line("ring_time", c.ring),
                        _detail_line("talk_time", c.talk),
                        _detail_line("hangup_cause", c.hangup_cause),
                        rx.divider(),
                        legs_section(CallsState.legs),
                        rx.divider(),
                        rx.text(t("client"), weight="bold"),
                        rx.cond(
                            c.client_id != "",
                            rx.link(rx.hstack(rx.icon("user", size=16), rx.text(name_text(c.client_name))), href="/clients/" + c.client_id, data_testid="panel-client"),
                            rx.text(t("no_client_match"), color_scheme="gray", size="2"),
                        ),
                        rx.text(t("linked_case"), weight="bold", margin_top="0.5rem"),
                        rx.text(rx.cond(c.case_title != "", name_text(c.case_title), t("no_case")), size="2", data_testid="panel-case"),
                        rx.cond(
                            CallsState.cases.length() > 0,
                            rx.hstack(
                                # A native select: a Radix one would open its menu under the drawer's overlay.
                                rx.el.select(
                                    rx.el.option(t("link_case"), value=""),
                                    rx.foreach(CallsState.cases, lambda o: rx.el.option(o.label, value=o.value)),
                                    value=CallsState.case_choice,
                                    on_change=CallsState.set_case_choice,
                                    class_name="rt-reset rt-TextFieldRoot",
                                    style={"flex": "1", "height": "32px", "padding": "0 8px", "border": f"1px solid {rx.color('gray', 7)}", "border_radius": "6px", "background": rx.color("gray", 1), "color": rx.color("gray", 12)},
                                    data_testid="case-select",
                                ),
                                rx.button(t("link_case"), on_click=CallsState.link_case, data_testid="case-link"),
                                width="100%",
                            ),
                        ),
                        field_error(CallsState.panel_errors.get("case_id", "")),
                        rx.divider(),
                        rx.text(t("notes"), weight="bold"),
                        rx.text_area(
                            value=CallsState.note,
                            on_change=CallsState.set_note,
                            placeholder=t("note_placeholder"),
                            rows="3",
                            width="100%",
                            data_testid="note-input",
                        ),
                        field_error(CallsState.panel_errors.get("note", "")),
                        rx.button(rx.icon("plus", size=14), t("add_note"), on_click=CallsState.add_note, data_testid="note-add"),
                        rx.cond(
                            c.notes.length() > 0,
                            rx.vstack(
                                rx.foreach(
                                    c.notes,
                                    lambda n: rx.box(
                                        rx.hstack(rx.text(name_text(n.author), size="1", weight="bold"), rx.spacer(), rx.text(n.at, size="1", color_scheme="gray")),
                                        rx.text(n.body, size="2", white_space="pre-wrap"),
                                        padding="0.6rem",
                                        border_radius="8px",
                                        background=rx.color("gray", 3),
                                        width="100%",
                                        data_testid="note-entry",
                                    ),
                                ),
                                width="100%",
                            ),
                            rx.text(t("no_notes"), size="2", color_scheme="gray"),
                        ),
                        rx.divider(),
                        rx.text(t("recordings"), weight="bold"),
                        rx.cond(
                            c.recordings.length() > 0,
                            rx.foreach(c.recordings, _recording),
                            rx.text(t("no_recordings"), size="2", color_scheme="gray"),
                        ),
                        rx.cond(AuthState.is_admin, _delete_call()),
                        spacing="3",
                        padding="1.5rem",
                        width="100%",
                        align="start",
                    ),
                    height="100%",
                ),
                height="100%",
                width="440px",
                max_width="100vw",
                top="0",
                right=rx.cond(LangState.is_ar, "auto", "0"),
                left=rx.cond(LangState.is_ar, "0", "auto"),
                background=rx.color("gray", 1),
                dir=LangState.direction,
                z_index="50",
                data_testid="call-panel",
            ),
        ),
        open=CallsState.panel_open,
        on_open_change=CallsState.set_panel_open,
        direction=rx.cond(LangState.is_ar, "left", "right"),
        # No swipe to close (the drawer has no handle): vaul takes a click made while the
        # panel still slides in for a swipe of the distance left to slide, and closes it.
        # The close button, Escape and a click outside close it.
        handle_only=True,
    )
