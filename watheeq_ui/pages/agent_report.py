"""Agent report (OWNER, ADMIN, MANAGER): per agent per day the time in each state, calls
handled, callbacks made and their outcomes; callback time p50/p90 per day; CSV export."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import reflex as rx
from pydantic import BaseModel

from services import db, live_reports
from services.errors import DomainError
from services.models import AgentStatus, CallbackOutcome, Principal

from watheeq_ui import exports, formatting, routes
from watheeq_ui.components.ui import card, empty_state, name_text, section_title
from watheeq_ui.i18n import t
from watheeq_ui.layout import template
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tenant_timezone

DEFAULT_DAYS = 7
STATES = [s.value for s in AgentStatus]
OUTCOMES = [o.value for o in CallbackOutcome]
AGENT_COLUMNS = ["day", "agent", *[f"{s.lower()}_seconds" for s in STATES], "calls_handled", "callbacks_made", *[o.lower() for o in OUTCOMES]]
CALLBACK_COLUMNS = ["day", "missed_items", "called_back", "p50_seconds", "p90_seconds"]


class ReportRow(BaseModel):
    day: str
    agent: str
    states: list[str]
    calls_handled: str
    callbacks_made: str
    outcomes: list[str]


class TimeRow(BaseModel):
    day: str
    missed_items: str
    called_back: str
    p50: str
    p90: str


def _agent_dicts(rows: list[live_reports.AgentDayRow]) -> list[dict]:
    return [
        {
            "day": r.day, "agent": r.agent_name,
            **{f"{s.lower()}_seconds": r.seconds.get(s, 0) for s in STATES},
            "calls_handled": r.calls_handled, "callbacks_made": r.callbacks_made,
            **{o.lower(): r.outcomes.get(o, 0) for o in OUTCOMES},
        }
        for r in rows
    ]


class AgentReportState(rx.State):
    date_from: str = ""
    date_to: str = ""
    rows: list[ReportRow] = []
    times: list[TimeRow] = []
    error: str = ""

    def _range(self, tz: str) -> tuple[date, date]:
        today = datetime.now(ZoneInfo(tz)).date()
        try:
            start = date.fromisoformat(self.date_from) if self.date_from else today - timedelta(days=DEFAULT_DAYS - 1)
            end = date.fromisoformat(self.date_to) if self.date_to else today
        except ValueError:
            start, end = today - timedelta(days=DEFAULT_DAYS - 1), today
        self.date_from, self.date_to = start.isoformat(), end.isoformat()
        return start, end

    async def _fetch(self, principal: Principal, tz: str):
        start, end = self._range(tz)
        return await offloop.run(_read_report, principal, start, end)

    @rx.event
    async def load(self):
        principal = await principal_for_page(self, "supervisor")
        if principal is None:
            return None
        try:
            rows, times = await self._fetch(principal, await tenant_timezone(self))
        except DomainError as exc:
            self.error = exc.message
            return None
        self.error = ""
        self.rows = [
            ReportRow(
                day=r.day, agent=r.agent_name, states=[formatting.duration(r.seconds.get(s, 0)) for s in STATES],
                calls_handled=formatting.count(r.calls_handled), callbacks_made=formatting.count(r.callbacks_made),
                outcomes=[formatting.count(r.outcomes.get(o, 0)) for o in OUTCOMES],
            )
            for r in rows
        ]
        self.times = [
            TimeRow(day=r.day, missed_items=formatting.count(r.missed_items), called_back=formatting.count(r.called_back),
                    p50=formatting.duration(r.p50_seconds), p90=formatting.duration(r.p90_seconds))
            for r in times
        ]
        return None

    @rx.event
    async def set_range(self, form: dict):
        principal = await principal_for_page(self, "supervisor")
        if principal is None:
            return None
        self.date_from, self.date_to = str(form.get("date_from") or ""), str(form.get("date_to") or "")
        return AgentReportState.load

    @rx.event
    async def export(self, kind: str):
        principal = await principal_for_page(self, "supervisor")
        if principal is None or kind not in exports.REPORT_KINDS:
            return None
        try:
            rows, times = await self._fetch(principal, await tenant_timezone(self))
        except DomainError as exc:
            return rx.toast.error(exc.message)
        if kind == "agents":
            ticket = exports.write_report_csv("agents", _agent_dicts(rows), AGENT_COLUMNS)
        else:
            ticket = exports.write_report_csv("callbacks", [r.model_dump() for r in times], CALLBACK_COLUMNS)
        return rx.call_script(exports.download_script(ticket))


def _export_button(kind: str) -> rx.Component:
    return rx.button(rx.icon("download", size=14), t("rep_export"), size="1", variant="soft",
                     on_click=AgentReportState.export(kind), data_testid=f"export-{kind}")


@template(route=routes.AGENT_REPORT, title_key="rep_title", access="supervisor", on_load=AgentReportState.load)
def agent_report_page() -> rx.Component:
    s = AgentReportState
    return rx.vstack(
        rx.form(
            rx.hstack(
                rx.input(name="date_from", type="date", default_value=s.date_from, key=s.date_from, data_testid="report-from"),
                rx.input(name="date_to", type="date", default_value=s.date_to, key=s.date_to, data_testid="report-to"),
                rx.button(t("rep_show"), type="submit", data_testid="report-apply"),
                align="center",
            ),
            on_submit=s.set_range,
        ),
        rx.cond(s.error != "", rx.callout(s.error, color_scheme="red", data_testid="report-error")),
        card(
            section_title("rep_title", _export_button("agents")),
            rx.cond(
                s.rows.length() > 0,
                rx.table.root(
                    rx.table.header(rx.table.row(
                        rx.table.column_header_cell(t("day")), rx.table.column_header_cell(t("agent")),
                        *[rx.table.column_header_cell(t(f"ag_{st}")) for st in STATES],
                        rx.table.column_header_cell(t("wb_answered")), rx.table.column_header_cell(t("call_back")),
                        *[rx.table.column_header_cell(t(f"outcome_{o}")) for o in OUTCOMES],
                    )),
                    rx.table.body(rx.foreach(s.rows, lambda r: rx.table.row(
                        rx.table.cell(r.day), rx.table.row_header_cell(name_text(r.agent)),
                        rx.foreach(r.states, lambda v: rx.table.cell(v, dir="ltr")),
                        rx.table.cell(r.calls_handled), rx.table.cell(r.callbacks_made),
                        rx.foreach(r.outcomes, lambda v: rx.table.cell(v)),
                        data_testid="report-row",
                    ))),
                    variant="ghost", width="100%",
                ),
                empty_state("no_data", "users"),
            ),
        ),
        card(
            section_title("rep_callback_time", _export_button("callbacks")),
            rx.table.root(
                rx.table.header(rx.table.row(
                    rx.table.column_header_cell(t("day")), rx.table.column_header_cell(t("missed")),
                    rx.table.column_header_cell(t("rep_called_back")), rx.table.column_header_cell("p50"), rx.table.column_header_cell("p90"),
                )),
                rx.table.body(rx.foreach(s.times, lambda r: rx.table.row(
                    rx.table.cell(r.day), rx.table.cell(r.missed_items), rx.table.cell(r.called_back),
                    rx.table.cell(r.p50, dir="ltr"), rx.table.cell(r.p90, dir="ltr"), data_testid="callback-time-row",
                ))),
                variant="ghost", width="100%",
            ),
        ),
        width="100%",
        spacing="4",
    )


def _read_report(principal: Principal, start, end):
    """The agents' figures and the callback times of a range in one unit of work (off the loop)."""
    with db.session_scope() as session:
        rows = live_reports.agent_report(session=session, tenant_id=principal.tenant_id, actor=principal, date_from=start, date_to=end)
        times = live_reports.callback_times(session=session, tenant_id=principal.tenant_id, actor=principal, date_from=start, date_to=end)
    return rows, times
