"""Recordings (OWNER/ADMIN): how long the firm keeps them, which cases are on legal hold, and
(owners only) the audit log of who played or downloaded which call's recording."""

from __future__ import annotations


import reflex as rx
from pydantic import BaseModel

from services import audit, db
from services.authz import Permission, allowed
from services.errors import DomainError
from services.models import CasePublic
from services.pbx import retention

from watheeq_ui import formatting, routes
from watheeq_ui.components.ui import card, field_error, labelled, name_text, section_title
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import t, tr
from watheeq_ui.layout import template
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tenant_timezone
from watheeq_ui.state.lang import LangState

AUDIT_ROWS = 200


class HoldCase(BaseModel):
    id: int
    title: str
    reference: str
    held: bool


class PlayRow(BaseModel):
    at: str
    who: str
    action: str
    call: str
    bytes_range: str


def _hold_case(c: CasePublic) -> HoldCase:
    return HoldCase(id=c.id, title=c.title, reference=c.reference, held=c.legal_hold)


class RecordingsState(rx.State):
    retention_days: str = ""
    retention_error: str = ""
    case_query: str = ""
    cases: list[HoldCase] = []
    plays: list[PlayRow] = []
    # The audit section is rendered for owners only; its rows are loaded only for them.
    reads_audit: bool = False

    @rx.event
    async def load(self):
        principal = await principal_for_page(self, Permission.MANAGE_RECORDINGS)
        if principal is None:
            return
        tz = await tenant_timezone(self)
        reads_audit = allowed(principal, Permission.READ_AUDIT_LOG)

        def read() -> tuple[int, list[CasePublic], list]:
            with db.session_scope() as session:
                days = retention.retention_days(session=session, tenant_id=principal.tenant_id)
                cases = retention.cases_for_hold(session=session, tenant_id=principal.tenant_id, actor=principal)
                events = (
                    audit.read_log(session=session, tenant_id=principal.tenant_id, actor=principal, object_type="call_recording", limit=AUDIT_ROWS)
                    if reads_audit
                    else []
                )
                return days, cases, events

        days, cases, events = await offloop.run(read)
        self.retention_days = str(days)
        self.retention_error = ""
        self.case_query = ""
        self.cases = [_hold_case(c) for c in cases]
        self.reads_audit = reads_audit
        self.plays = [
            PlayRow(
                at=formatting.local_time(e.at, tz, "%Y-%m-%d %H:%M:%S"),
                who=e.actor_email or "—",
                action=e.action.removeprefix("recording."),
                call=str(e.detail.get("call_id", "")) if e.action != "recording.purge" else str(e.detail.get("count", "")),
                bytes_range=str(e.detail.get("range", "")),
            )
            for e in events
        ]

    @rx.event
    def set_retention_days(self, value: str):
        self.retention_days = value

    @rx.event
    def set_case_query(self, value: str):
        self.case_query = value

    @rx.event
    async def save_retention(self):
        principal = await principal_for_page(self, Permission.MANAGE_RECORDINGS)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        raw = self.retention_days.strip()
        if not raw.isdigit():
            self.retention_error = error_text(lang, f"between {retention.MIN_RETENTION_DAYS} and {retention.MAX_RETENTION_DAYS} days")
            return None

        def save() -> int:
            with db.session_scope() as session:
                return retention.set_retention_days(session=session, tenant_id=principal.tenant_id, actor=principal, days=int(raw[:6]))

        try:
            days = await offloop.run(save)
        except DomainError as exc:
            self.retention_error = error_text(lang, exc)
            return None
        self.retention_error = ""
        self.retention_days = str(days)
        return rx.toast.success(tr(lang, "saved"))

    async def _reload_cases(self, principal) -> None:
        query = self.case_query

        def read() -> list[CasePublic]:
            with db.session_scope() as session:
                return retention.cases_for_hold(session=session, tenant_id=principal.tenant_id, actor=principal, query=query[:100])

        self.cases = [_hold_case(c) for c in await offloop.run(read)]

    @rx.event
    async def search_cases(self):
        principal = await principal_for_page(self, Permission.MANAGE_RECORDINGS)
        if principal is None:
            return
        await self._reload_cases(principal)

    @rx.event
    async def set_hold(self, case_id: int, hold: bool):
        principal = await principal_for_page(self, Permission.MANAGE_RECORDINGS)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang

        def save() -> None:
            with db.session_scope() as session:
                retention.set_legal_hold(session=session, tenant_id=principal.tenant_id, actor=principal, case_id=int(case_id), hold=bool(hold))

        try:
            await offloop.run(save)
        except DomainError as exc:
            return rx.toast.error(error_text(lang, exc))
        await self._reload_cases(principal)
        return rx.toast.success(tr(lang, "saved"))


def _retention() -> rx.Component:
    return card(
        section_title("recording_retention"),
        rx.text(t("recording_retention_hint"), size="2", color_scheme="gray", margin_bottom="0.75rem"),
        rx.hstack(
            labelled(
                "retention_days",
                rx.input(
                    value=RecordingsState.retention_days,
                    on_change=RecordingsState.set_retention_days,
                    type="number",
                    min="1",
                    max="3650",
                    data_testid="retention-days",
                ),
            ),
            rx.button(t("save"), on_click=RecordingsState.save_retention, data_testid="retention-save"),
            align="end",
            width="100%",
        ),
        field_error(RecordingsState.retention_error),
    )


def _case_row(c: HoldCase) -> rx.Component:
    return rx.table.row(
        rx.table.cell(name_text(c.title)),
        rx.table.cell(c.reference),
        rx.table.cell(
            rx.cond(
                c.held,
                rx.button(t("release_hold"), size="1", variant="soft", color_scheme="gray", on_click=RecordingsState.set_hold(c.id, False), data_testid="hold-release"),
                rx.button(t("put_on_hold"), size="1", variant="soft", on_click=RecordingsState.set_hold(c.id, True), data_testid="hold-set"),
            )
        ),
        data_testid=rx.cond(c.held, "held-case", "case-result"),
    )


def _legal_holds() -> rx.Component:
    return card(
        section_title("legal_holds"),
        rx.text(t("legal_holds_hint"), size="2", color_scheme="gray", margin_bottom="0.75rem"),
        rx.form(
            rx.hstack(
                rx.input(value=RecordingsState.case_query, on_change=RecordingsState.set_case_query, placeholder=t("find_case"), max_length=100, width="100%", data_testid="hold-search"),
                rx.button(rx.icon("search", size=14), t("search"), type="submit", data_testid="hold-search-submit"),
                width="100%",
            ),
            on_submit=lambda _form: RecordingsState.search_cases(),
            reset_on_submit=False,
        ),
        rx.cond(
            RecordingsState.cases.length() > 0,
            rx.table.root(
                rx.table.header(rx.table.row(rx.table.column_header_cell(t("case")), rx.table.column_header_cell(t("reference")), rx.table.column_header_cell(""))),
                rx.table.body(rx.foreach(RecordingsState.cases, _case_row)),
                width="100%",
                margin_top="0.75rem",
            ),
            rx.text(t("no_legal_holds"), size="2", color_scheme="gray", margin_top="0.75rem"),
        ),
    )


def _plays() -> rx.Component:
    return card(
        section_title("recording_audit"),
        rx.text(t("recording_audit_hint"), size="2", color_scheme="gray", margin_bottom="0.75rem"),
        rx.cond(
            RecordingsState.plays.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[rx.table.column_header_cell(t(k)) for k in ("audit_when", "audit_who", "audit_action", "audit_call", "audit_range")]
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        RecordingsState.plays,
                        lambda p: rx.table.row(
                            rx.table.cell(p.at),
                            rx.table.cell(name_text(p.who)),
                            rx.table.cell(p.action),
                            rx.table.cell(p.call),
                            rx.table.cell(p.bytes_range),
                            data_testid="audit-row",
                        ),
                    )
                ),
                width="100%",
                data_testid="audit-table",
            ),
            rx.text(t("no_audit_events"), size="2", color_scheme="gray"),
        ),
    )


@template(route=routes.RECORDINGS, title_key="nav_recordings", access="admin", on_load=RecordingsState.load)
def recordings_page() -> rx.Component:
    return rx.vstack(
        rx.grid(_retention(), _legal_holds(), columns=rx.breakpoints(initial="1", lg="2"), spacing="4", width="100%"),
        rx.cond(RecordingsState.reads_audit, _plays()),
        spacing="4",
        width="100%",
    )
