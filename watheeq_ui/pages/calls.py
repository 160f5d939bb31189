"""Call history: filters, numbered pages, a side panel per call, notes, cases, CSV export."""

from __future__ import annotations

import asyncio
import time as clock
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import reflex as rx
from pydantic import BaseModel

from services import accounts, call_center, clients, db
from services.errors import DomainError, Invalid, NotFound
from services.models import CallDetail, CallDirection, CallFilters, CallOrder, CallPublic, CallStatus, Principal

from watheeq_ui import exports, formatting, routes
from watheeq_ui.components.softphone import call_button
from watheeq_ui.components.ui import card, date_field, direction_icon, empty_state, field_error, name_text, status_badge
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import t, t_fmt, tr
from watheeq_ui.layout import template
from watheeq_ui.state.auth import AuthState, principal_for_page, tenant_timezone
from watheeq_ui.state.lang import LangState

PAGE_SIZE = 50
PAGE_WINDOW = 2
CLIENT_SUGGESTIONS = 8
STATUSES = [s.value for s in CallStatus]


class Option(BaseModel):
    value: str
    label: str


class CallRow(BaseModel):
    id: int
    started: str
    direction: str
    status: str
    remote: str
    client: str
    agent: str
    duration: str
    case: str


class NoteView(BaseModel):
    author: str
    body: str
    at: str


class RecordingView(BaseModel):
    url: str
    duration: str


class CallView(BaseModel):
    id: int = 0
    started: str = ""
    answered: str = ""
    ended: str = ""
    direction: str = ""
    status: str = ""
    remote_number: str = ""
    remote_e164: str = ""
    agent: str = ""
    extension: str = ""
    client_id: str = ""
    client_name: str = ""
    case_id: str = ""
    case_title: str = ""
    ring: str = ""
    talk: str = ""
    hangup_cause: str = ""
    notes: list[NoteView] = []
    recordings: list[RecordingView] = []


def _row(call: CallPublic, tz: str) -> CallRow:
    return CallRow(
        id=call.id,
        started=formatting.local_time(call.started_at, tz),
        direction=call.direction.value,
        status=call.status.value,
        remote=call.remote_number or call.remote_e164 or "",
        client=call.client_name or "",
        agent=call.agent_name or "",
        duration=formatting.duration(call.talk_seconds) if call.talk_seconds else "—",
        case=call.case_title or "",
    )


def _view(call: CallDetail, tz: str) -> CallView:
    return CallView(
        id=call.id,
        started=formatting.local_time(call.started_at, tz, "%Y-%m-%d %H:%M:%S"),
        answered=formatting.local_time(call.answered_at, tz, "%H:%M:%S"),
        ended=formatting.local_time(call.ended_at, tz, "%H:%M:%S"),
        direction=call.direction.value,
        status=call.status.value,
        remote_number=call.remote_number,
        remote_e164=call.remote_e164 or "",
        agent=call.agent_name or "",
        extension=call.extension or "",
        client_id=str(call.client_id or ""),
        client_name=call.client_name or "",
        case_id=str(call.case_id or ""),
        case_title=call.case_title or "",
        ring=formatting.duration(call.ring_seconds),
        talk=formatting.duration(call.talk_seconds),
        hangup_cause=call.hangup_cause or "",
        notes=[
            NoteView(author=n.author_name or "—", body=n.body, at=formatting.local_time(n.created_at, tz))
            for n in reversed(call.note_entries)
        ],
        recordings=[RecordingView(url=r.url, duration=formatting.duration(r.duration_seconds)) for r in call.recordings],
    )


def _day(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise Invalid(field, "a date such as 2025-01-31") from None
    # The service clamps any bound, but year 9999 + one day overflows here first.
    if not 2000 <= day.year <= 2099:
        raise Invalid(field, "a date from 2000-01-01 to 2099-12-31")
    return day


class CallsState(rx.State):
    date_from: str = ""
    date_to: str = ""
    direction: str = "any"
    status: str = "any"
    agent: str = "any"
    client_id: str = ""
    client_label: str = ""
    client_query: str = ""
    client_options: list[Option] = []
    number: str = ""
    errors: dict[str, str] = {}

    page: int = 1
    oldest_first: bool = False
    total: int = 0
    rows: list[CallRow] = []
    agents: list[Option] = []
    loading: bool = False
    can_export: bool = False

    panel_open: bool = False
    call: CallView = CallView()
    cases: list[Option] = []
    note: str = ""
    case_choice: str = ""
    panel_errors: dict[str, str] = {}
    confirming_delete: bool = False

    exporting: bool = False
    export_done: int = 0
    export_total: int = 0

    @rx.var
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    @rx.var
    def page_numbers(self) -> list[int]:
        first = max(1, min(self.page - PAGE_WINDOW, self.pages - 2 * PAGE_WINDOW))
        last = min(self.pages, first + 2 * PAGE_WINDOW)
        return list(range(first, last + 1))

    @rx.var
    def total_label(self) -> str:
        return formatting.count(self.total)

    # ------------------------------------------------------------------ helpers

    def _order(self) -> CallOrder:
        return CallOrder.OLDEST_FIRST if self.oldest_first else CallOrder.NEWEST_FIRST

    def _filters(self, tz: str) -> CallFilters:
        zone = ZoneInfo(tz)
        start = _day(self.date_from, "date_from")
        end = _day(self.date_to, "date_to")
        if start and end and start > end:
            raise Invalid("date_to", "the end date is on or after the start date")
        number = self.number.strip()
        if number and not any(ch.isdigit() for ch in number):
            raise Invalid("number", "search by the digits of a number")
        return CallFilters(
            date_from=datetime.combine(start, time(0), tzinfo=zone) if start else None,
            # The end date is inclusive on screen: the filter ends at the next local midnight.
            date_to=datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone) if end else None,
            direction=CallDirection(self.direction) if self.direction != "any" else None,
            statuses=[CallStatus(self.status)] if self.status != "any" else [],
            agent_user_id=int(self.agent) if self.agent not in ("any", "") else None,
            client_id=int(self.client_id) if self.client_id else None,
            number=number or None,
        )

    async def _fetch(self, principal: Principal) -> None:
        tz = await tenant_timezone(self)
        try:
            filters = self._filters(tz)
            with db.session_scope() as session:
                result = call_center.get_call_history(
                    session=session,
                    tenant_id=principal.tenant_id,
                    actor=principal,
                    filters=filters,
                    page=self.page,
                    page_size=PAGE_SIZE,
                    order=self._order(),
                )
        except Invalid as exc:
            self.errors = {exc.field or "number": error_text((await self.get_state(LangState)).lang, exc)}
            return
        self.errors = {}
        self.total = result.count
        self.rows = [_row(c, tz) for c in result.data]

    # ------------------------------------------------------------------ page load and filters

    @rx.event
    async def load(self):
        principal = await principal_for_page(self)
        if principal is None:
            return
        self.can_export = principal.is_supervisor
        if principal.is_supervisor:
            with db.session_scope() as session:
                users = accounts.list_users(session=session, tenant_id=principal.tenant_id)
            self.agents = [Option(value=str(u.id), label=u.full_name or u.email) for u in users]
        else:
            self.agents = []
        wanted_client = self.router.url.query_parameters.get("client", "")
        if wanted_client.isdigit():
            try:
                with db.session_scope() as session:
                    client = clients.get_client(session=session, tenant_id=principal.tenant_id, client_id=int(wanted_client))
                self.client_id, self.client_label = str(client.id), client.name
            except NotFound:
                self.client_id, self.client_label = "", ""
        self.page = 1
        self.panel_open = False
        await self._fetch(principal)

    async def _refilter(self):
        principal = await principal_for_page(self)
        if principal is None:
            return
        self.page = 1
        await self._fetch(principal)

    @rx.event
    async def set_date_from(self, value: str):
        self.date_from = value
        await self._refilter()

    @rx.event
    async def set_date_to(self, value: str):
        self.date_to = value
        await self._refilter()

    @rx.event
    async def set_direction(self, value: str):
        self.direction = value
        await self._refilter()

    @rx.event
    async def set_status(self, value: str):
        self.status = value
        await self._refilter()

    @rx.event
    async def set_agent(self, value: str):
        self.agent = value
        await self._refilter()

    @rx.event
    async def set_number(self, value: str):
        self.number = value
        await self._refilter()

    @rx.event
    async def search_clients(self, value: str):
        self.client_query = value
        principal = await principal_for_page(self)
        if principal is None or not value.strip():
            self.client_options = []
            return
        with db.session_scope() as session:
            found = clients.list_clients(
                session=session, tenant_id=principal.tenant_id, search=value, limit=CLIENT_SUGGESTIONS
            )
        self.client_options = [Option(value=str(c.id), label=f"{c.name} · {c.phone}") for c in found.data]

    @rx.event
    async def choose_client(self, client_id: str, label: str):
        self.client_id, self.client_label = client_id, label
        self.client_query, self.client_options = "", []
        await self._refilter()

    @rx.event
    async def clear_filters(self):
        self.date_from = self.date_to = self.number = self.client_id = self.client_label = ""
        self.direction = self.status = self.agent = "any"
        await self._refilter()

    @rx.event
    async def toggle_order(self):
        self.oldest_first = not self.oldest_first
        await self._refilter()

    @rx.event
    async def go_to_page(self, page: int):
        principal = await principal_for_page(self)
        if principal is None:
            return
        self.page = max(1, min(int(page), self.pages))
        await self._fetch(principal)

    # ------------------------------------------------------------------ side panel

    def _show(self, detail: CallDetail, tz: str, principal: Principal) -> None:
        self.call = _view(detail, tz)
        self.case_choice = self.call.case_id
        self.cases = []
        if detail.client_id is not None:
            with db.session_scope() as session:
                found = clients.list_cases(session=session, tenant_id=principal.tenant_id, client_id=detail.client_id)
            self.cases = [Option(value=str(c.id), label=f"{c.title} ({c.reference})" if c.reference else c.title) for c in found]

    @rx.event
    async def open_call(self, call_id: int):
        principal = await principal_for_page(self)
        if principal is None:
            return
        tz = await tenant_timezone(self)
        try:
            with db.session_scope() as session:
                detail = call_center.get_call(session=session, tenant_id=principal.tenant_id, actor=principal, call_id=call_id)
        except NotFound:
            return
        self.note = ""
        self.panel_errors = {}
        self.confirming_delete = False
        self._show(detail, tz, principal)
        self.panel_open = True

    @rx.event
    def set_panel_open(self, value: bool):
        self.panel_open = value

    @rx.event
    def set_note(self, value: str):
        self.note = value

    @rx.event
    def set_case_choice(self, value: str):
        self.case_choice = value

    async def _annotate(self, *, note: str | None = None, case_id: int | None = None):
        principal = await principal_for_page(self)
        if principal is None or not self.call.id:
            return None
        tz = await tenant_timezone(self)
        lang = (await self.get_state(LangState)).lang
        try:
            with db.session_scope() as session:
                detail = call_center.add_notes(
                    session=session,
                    tenant_id=principal.tenant_id,
                    actor=principal,
                    call_id=self.call.id,
                    note=note,
                    case_id=case_id,
                )
        except Invalid as exc:
            self.panel_errors = {exc.field or "note": error_text(lang, exc)}
            return None
        except DomainError as exc:
            return rx.toast.error(error_text(lang, exc))
        self.panel_errors = {}
        self._show(detail, tz, principal)
        updated = _row(detail, tz)
        self.rows = [updated if r.id == updated.id else r for r in self.rows]
        return rx.toast.success(tr(lang, "saved"))

    @rx.event
    async def add_note(self):
        if not self.note.strip():
            self.panel_errors = {"note": error_text((await self.get_state(LangState)).lang, "write a note first")}
            return None
        result = await self._annotate(note=self.note)
        if not self.panel_errors:
            self.note = ""
        return result

    @rx.event
    async def link_case(self):
        if not self.case_choice:
            self.panel_errors = {"case_id": error_text((await self.get_state(LangState)).lang, "choose a case")}
            return None
        return await self._annotate(case_id=int(self.case_choice))

    @rx.event
    def set_confirming_delete(self, value: bool):
        self.confirming_delete = value

    @rx.event
    async def delete_call(self):
        principal = await principal_for_page(self, "admin")
        if principal is None or not self.call.id:
            return None
        lang = (await self.get_state(LangState)).lang
        try:
            with db.session_scope() as session:
                call_center.delete_call(session=session, tenant_id=principal.tenant_id, actor=principal, call_id=self.call.id)
        except DomainError as exc:
            self.confirming_delete = False
            return rx.toast.error(error_text(lang, exc))
        self.confirming_delete = False
        self.panel_open = False
        self.call = CallView()
        await self._fetch(principal)
        return rx.toast.success(tr(lang, "call_deleted"))

    # ------------------------------------------------------------------ export

    @rx.event(background=True)
    async def export_csv(self):
        async with self:
            principal = await principal_for_page(self, "supervisor")
            if principal is None or self.exporting:
                return
            tz = await tenant_timezone(self)
            lang = (await self.get_state(LangState)).lang
            try:
                filters = self._filters(tz)
            except Invalid as exc:
                self.errors = {exc.field or "number": error_text(lang, exc)}
                return
            order = self._order()
            self.exporting, self.export_done, self.export_total = True, 0, self.total
        loop = asyncio.get_running_loop()
        last_push = [0.0]

        async def push(done: int, total: int) -> None:
            async with self:
                self.export_done, self.export_total = done, total

        def progress(done: int, total: int) -> None:
            # Progress at most a few times a second: each push is a websocket message.
            now = clock.monotonic()
            if now - last_push[0] >= 0.25 or done >= total:
                last_push[0] = now
                asyncio.run_coroutine_threadsafe(push(done, total), loop).result()

        try:
            ticket, written = await asyncio.to_thread(
                exports.write_history_csv,
                principal=principal,
                filters=filters,
                timezone=tz,
                progress=progress,
                order=order,
            )
        except DomainError as exc:
            async with self:
                self.exporting = False
            yield rx.toast.error(error_text(lang, exc))
            return
        async with self:
            self.exporting = False
            self.export_done = written
        yield rx.call_script(exports.download_script(ticket))
        yield rx.toast.success(tr(lang, "export_ready", n=formatting.count(written)))


# ---------------------------------------------------------------------- view


def _select(value: rx.Var, on_change, items: list[tuple[str, rx.Var | str]], test_id: str, width: str = "150px") -> rx.Component:
    return rx.select.root(
        rx.select.trigger(width=width, data_testid=test_id),
        rx.select.content(*[rx.select.item(label, value=v) for v, label in items]),
        value=value,
        on_change=on_change,
    )


def _filter_field(label_key: str, control: rx.Component, error_key: str | None = None) -> rx.Component:
    return rx.vstack(
        rx.text(t(label_key), size="1", weight="medium", color_scheme="gray"),
        control,
        field_error(CallsState.errors.get(error_key, "")) if error_key else rx.fragment(),
        spacing="1",
    )


def _client_picker() -> rx.Component:
    return rx.box(
        rx.cond(
            CallsState.client_id != "",
            rx.badge(
                CallsState.client_label,
                rx.icon("x", size=12, cursor="pointer", on_click=CallsState.choose_client("", "")),
                size="2",
                variant="soft",
                height="32px",
                data_testid="filter-client-chosen",
            ),
            rx.input(
                placeholder=t("all_clients"),
                value=CallsState.client_query,
                on_change=CallsState.search_clients.debounce(250),
                width="180px",
                data_testid="filter-client",
            ),
        ),
        rx.cond(
            CallsState.client_options.length() > 0,
            rx.card(
                rx.vstack(
                    rx.foreach(
                        CallsState.client_options,
                        lambda o: rx.button(
                            o.label,
                            variant="ghost",
                            width="100%",
                            justify="start",
                            on_click=CallsState.choose_client(o.value, o.label),
                        ),
                    ),
                    spacing="1",
                ),
                position="absolute",
                z_index="20",
                width="280px",
                margin_top="4px",
            ),
        ),
        position="relative",
    )


def _filters() -> rx.Component:
    statuses = [("any", t("any"))] + [(s, t(f"st_{s}")) for s in STATUSES]
    return card(
        rx.flex(
            _filter_field(
                "date_from",
                date_field(CallsState.date_from, CallsState.set_date_from, "filter-from", "date_from"),
                "date_from",
            ),
            _filter_field(
                "date_to",
                date_field(CallsState.date_to, CallsState.set_date_to, "filter-to", "date_to"),
                "date_to",
            ),
            _filter_field(
                "direction",
                _select(
                    CallsState.direction,
                    CallsState.set_direction,
                    [("any", t("any")), ("INBOUND", t("dir_INBOUND")), ("OUTBOUND", t("dir_OUTBOUND"))],
                    "filter-direction",
                    "130px",
                ),
            ),
            _filter_field("status", _select(CallsState.status, CallsState.set_status, statuses, "filter-status", "140px")),
            rx.cond(
                AuthState.is_supervisor,
                _filter_field(
                    "agent",
                    rx.select.root(
                        rx.select.trigger(width="170px", data_testid="filter-agent"),
                        rx.select.content(
                            rx.select.item(t("all_agents"), value="any"),
                            rx.foreach(CallsState.agents, lambda o: rx.select.item(o.label, value=o.value)),
                        ),
                        value=CallsState.agent,
                        on_change=CallsState.set_agent,
                    ),
                ),
            ),
            _filter_field("client", _client_picker()),
            _filter_field(
                "number",
                rx.input(
                    rx.input.slot(rx.icon("search", size=14)),
                    placeholder=t("search_number"),
                    value=CallsState.number,
                    on_change=CallsState.set_number.debounce(350),
                    width="170px",
                    data_testid="filter-number",
                ),
                "number",
            ),
            rx.vstack(
                rx.text("\u00a0", size="1"),
                rx.button(rx.icon("x", size=14), t("clear_filters"), variant="ghost", color_scheme="gray", on_click=CallsState.clear_filters),
                spacing="1",
            ),
            wrap="wrap",
            spacing="4",
            align="start",
        ),
    )


def _order_label() -> rx.Var:
    return rx.cond(CallsState.oldest_first, t("oldest_first"), t("newest_first"))


def _time_header() -> rx.Component:
    return rx.table.column_header_cell(
        rx.button(
            t("started"),
            rx.cond(CallsState.oldest_first, rx.icon("arrow-up", size=14), rx.icon("arrow-down", size=14)),
            variant="ghost",
            color_scheme="gray",
            size="1",
            on_click=CallsState.toggle_order,
            title=_order_label(),
            aria_label=_order_label(),
            data_testid="sort-started",
            data_order=rx.cond(CallsState.oldest_first, "oldest", "newest"),
        ),
        aria_sort=rx.cond(CallsState.oldest_first, "ascending", "descending"),
    )


def _table() -> rx.Component:
    headers = ["direction", "remote_number", "client", "agent", "status", "duration", "case"]
    return rx.table.root(
        rx.table.header(rx.table.row(_time_header(), *[rx.table.column_header_cell(t(h)) for h in headers])),
        rx.table.body(
            rx.foreach(
                CallsState.rows,
                lambda r: rx.table.row(
                    rx.table.cell(r.started),
                    rx.table.cell(direction_icon(r.direction)),
                    rx.table.cell(rx.text(r.remote, dir="ltr", as_="span")),
                    rx.table.cell(name_text(r.client)),
                    rx.table.cell(name_text(r.agent)),
                    rx.table.cell(status_badge(r.status)),
                    rx.table.cell(r.duration),
                    rx.table.cell(name_text(r.case)),
                    class_name="wq-row",
                    data_selected=(CallsState.panel_open & (CallsState.call.id == r.id)).to_string(),
                    on_click=CallsState.open_call(r.id),
                    data_testid="call-row",
                ),
            ),
        ),
        variant="ghost",
        size="2",
        width="100%",
        data_testid="calls-table",
    )


def _pager() -> rx.Component:
    return rx.hstack(
        rx.text(t_fmt("calls_total", n=CallsState.total_label), size="2", color_scheme="gray", data_testid="calls-total"),
        rx.spacer(),
        rx.text(t_fmt("page_of", p=CallsState.page, n=CallsState.pages), size="2", color_scheme="gray", data_testid="page-of"),
        rx.icon_button(rx.icon("chevrons-left", size=16), variant="soft", disabled=CallsState.page <= 1, on_click=CallsState.go_to_page(1)),
        rx.icon_button(
            rx.icon("chevron-left", size=16),
            variant="soft",
            disabled=CallsState.page <= 1,
            on_click=CallsState.go_to_page(CallsState.page - 1),
            data_testid="page-prev",
        ),
        rx.foreach(
            CallsState.page_numbers,
            lambda n: rx.button(
                n,
                variant=rx.cond(n == CallsState.page, "solid", "soft"),
                on_click=CallsState.go_to_page(n),
                min_width="36px",
                data_testid="page-button",
            ),
        ),
        rx.icon_button(
            rx.icon("chevron-right", size=16),
            variant="soft",
            disabled=CallsState.page >= CallsState.pages,
            on_click=CallsState.go_to_page(CallsState.page + 1),
            data_testid="page-next",
        ),
        rx.icon_button(
            rx.icon("chevrons-right", size=16),
            variant="soft",
            disabled=CallsState.page >= CallsState.pages,
            on_click=CallsState.go_to_page(CallsState.pages),
            data_testid="page-last",
        ),
        align="center",
        spacing="2",
        width="100%",
        dir="ltr",
    )


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


def _panel() -> rx.Component:
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
                            rx.foreach(
                                c.recordings,
                                lambda rec: rx.vstack(rx.el.audio(src=rec.url, controls=True, preload="none", width="100%"), rx.text(rec.duration, size="1")),
                            ),
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
    )


@template(route=routes.CALLS, title_key="nav_calls", on_load=CallsState.load)
def calls() -> rx.Component:
    return rx.vstack(
        _filters(),
        card(
            rx.vstack(
                rx.hstack(
                    rx.text(_order_label(), size="2", color_scheme="gray", data_testid="calls-order"),
                    rx.spacer(),
                    rx.cond(
                        CallsState.exporting,
                        rx.hstack(
                            rx.spinner(size="2"),
                            rx.text(t_fmt("exporting", n=CallsState.export_done), size="2", data_testid="export-progress"),
                            rx.progress(value=CallsState.export_done, max=rx.cond(CallsState.export_total > 0, CallsState.export_total, 1), width="120px"),
                            align="center",
                        ),
                    ),
                    rx.cond(
                        CallsState.can_export,
                        rx.button(
                            rx.icon("download", size=14),
                            t("export_csv"),
                            on_click=CallsState.export_csv,
                            disabled=CallsState.exporting,
                            variant="soft",
                            data_testid="export-csv",
                        ),
                    ),
                    width="100%",
                    align="center",
                ),
                rx.cond(CallsState.rows.length() > 0, _table(), empty_state("no_calls_match", "phone-off")),
                _pager(),
                width="100%",
            ),
        ),
        _panel(),
        spacing="4",
        width="100%",
    )
