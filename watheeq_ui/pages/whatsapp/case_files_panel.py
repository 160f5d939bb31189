"""Case files on the WhatsApp page: a received file saved to one of the client's cases in one click
(services.case_files; nothing is copied), and one of the client's case documents sent from the
send form instead of an attached file, through the same outbox."""

from __future__ import annotations

import reflex as rx

from services import case_files, clients
from services.errors import DomainError
from services.models import CaseFileSend, Principal

from watheeq_ui.components.ui import field_error
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import t, t_fmt, tr
from watheeq_ui.pages.whatsapp.rows import ChatMessage, Option
from watheeq_ui.pages.whatsapp.state import WhatsappState
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tenant_timezone
from watheeq_ui.state.lang import LangState


class WhatsappCaseFilesState(rx.State):
    # The message whose case picker is open, and its client's cases.
    save_for: int = 0
    save_cases: list[Option] = []
    # Message id -> the case its file was saved to in this visit (the confirmation under it).
    saved: dict[str, str] = {}
    # The send form's client's case documents, and the one chosen.
    documents: list[Option] = []
    document: str = ""

    @rx.event
    async def open_save(self, message_id: int, client_id: str, is_open: bool):
        """The case picker of a message opened (its client's cases are read) or closed."""
        if not is_open:
            self.save_for = 0
            return None
        principal = await principal_for_page(self)
        if principal is None:
            return None
        self.save_for, self.save_cases = message_id, []
        if not client_id.isdigit():
            return None
        try:
            cases = await offloop.call(clients.list_cases, principal, client_id=int(client_id))
        except DomainError as exc:
            self.save_for = 0
            return rx.toast.error(error_text((await self.get_state(LangState)).lang, exc))
        self.save_cases = [Option(value=str(c.id), label=f"{c.title} · {c.reference}" if c.reference else c.title) for c in cases]
        return None

    @rx.event
    async def save_to_case(self, message_id: int, case_id: str):
        """Keep the message's file on the case: one click, confirmed under the file and by a toast."""
        principal = await principal_for_page(self)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        try:
            saved = await offloop.call(case_files.save_message_file, principal, case_id=int(case_id), message_id=message_id)
        except DomainError as exc:
            return rx.toast.error(error_text(lang, exc))
        self.save_for = 0
        self.saved = {**self.saved, str(message_id): saved.case_title}
        chat = await self.get_state(WhatsappState)
        if chat.send_mode == "client" and chat.send_client.isdigit():
            await self._load_documents(principal, chat.send_client)
        return rx.toast.success(tr(lang, "cf_saved" if saved.created else "cf_already_saved", case=saved.case_title))

    async def _load_documents(self, principal: Principal, client_id: str) -> None:
        if not client_id.isdigit():
            self.documents, self.document = [], ""
            return
        try:
            files = await offloop.call(case_files.list_client_case_files, principal, client_id=int(client_id))
        except DomainError:
            files = []
        self.documents = [Option(value=str(f.id), label=f"{f.name} · {f.case_title}") for f in files]
        if self.document not in {o.value for o in self.documents}:
            self.document = ""

    @rx.event
    async def choose_client(self, client_id: str):
        """The send form's client changed: their case documents are offered."""
        principal = await principal_for_page(self)
        if principal is None:
            return
        self.document = ""
        await self._load_documents(principal, client_id)

    @rx.event
    def set_document(self, value: str):
        self.document = value

    @rx.event
    async def send_document(self):
        """Send the chosen case document to the send form's client, the message as its caption."""
        principal = await principal_for_page(self)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        chat = await self.get_state(WhatsappState)
        if chat.send_mode != "client" or not chat.send_client.isdigit():
            chat.send_errors = {"client_id": tr(lang, "wa_choose_client")}
            return None
        if not self.document.isdigit():
            chat.send_errors = {"case_file_id": tr(lang, "cf_choose_document")}
            return None
        try:
            data = CaseFileSend(client_id=int(chat.send_client), caption=chat.send_body)
            await offloop.call(case_files.send_case_file, principal, case_file_id=int(self.document), data=data)
        except DomainError as exc:
            # The caption is the form's message field.
            field = "body" if exc.field == "caption" else exc.field or "status"
            chat.send_errors = {field: error_text(lang, exc)}
            return None
        chat.send_errors = {}
        chat.send_body = ""
        self.document = ""
        await chat._load_messages(principal, await tenant_timezone(self))
        return rx.toast.info(tr(lang, "wa_queued"))


def save_to_case(m: ChatMessage, client_id: rx.Var) -> rx.Component:
    """Under a received stored file of a client's chat: "Save to case", a list of the client's
    cases (one click saves), and once saved, which case it went to."""
    state = WhatsappCaseFilesState
    # Saved in this visit (at once), else as the message log says.
    saved_to = state.saved.get(m.id.to_string(), m.saved_to)
    picker = rx.popover.root(
        rx.popover.trigger(
            rx.button(rx.icon("folder-input", size=12), t("cf_save_to_case"), size="1", variant="soft", data_testid="wa-save-to-case"),
        ),
        rx.popover.content(
            rx.vstack(
                rx.text(t("cf_choose_case"), size="1", color_scheme="gray"),
                rx.cond(
                    state.save_cases.length() > 0,
                    rx.foreach(
                        state.save_cases,
                        lambda c: rx.button(
                            rx.icon("briefcase", size=12),
                            c.label,
                            size="1",
                            variant="ghost",
                            on_click=state.save_to_case(m.id, c.value),
                            data_testid="wa-save-case-option",
                        ),
                    ),
                    rx.text(t("cf_no_cases"), size="1"),
                ),
                spacing="1",
                align="start",
            ),
            size="1",
        ),
        open=state.save_for == m.id,
        on_open_change=lambda is_open: state.open_save(m.id, client_id, is_open),
    )
    return rx.hstack(
        picker,
        rx.cond(
            saved_to != "",
            rx.badge(rx.icon("check", size=12), t_fmt("cf_saved", case=saved_to), color_scheme="green", variant="soft", data_testid="wa-saved-to-case"),
        ),
        spacing="2",
        align="center",
        wrap="wrap",
    )


def case_document_picker() -> rx.Component:
    """In the send form, for a client: one of their case documents to send instead of a file."""
    state = WhatsappCaseFilesState
    return rx.cond(
        (WhatsappState.send_mode == "client") & (state.documents.length() > 0),
        rx.vstack(
            rx.text(t("cf_case_document"), size="2", weight="medium"),
            rx.select.root(
                rx.select.trigger(placeholder=t("cf_choose_document"), width="100%", max_width="100%", data_testid="wa-send-document-select"),
                rx.select.content(rx.foreach(state.documents, lambda o: rx.select.item(o.label, value=o.value))),
                value=state.document,
                on_change=state.set_document,
            ),
            field_error(WhatsappState.send_errors.get("case_file_id", "")),
            rx.button(
                rx.icon("file-check", size=14),
                t("cf_send_document"),
                variant="soft",
                disabled=state.document == "",
                on_click=state.send_document,
                data_testid="wa-send-document",
            ),
            spacing="2",
            width="100%",
            min_width="0",
            align="start",
        ),
    )
