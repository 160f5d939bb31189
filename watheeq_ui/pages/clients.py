"""Clients: a searchable list, and one client's cases with their files, and calls and WhatsApp
messages on one timeline."""

from __future__ import annotations

import reflex as rx
from pydantic import BaseModel

from services import call_center, case_files, clients, db, whatsapp
from services.errors import NotFound
from services.models import CallFilters

from watheeq_ui import formatting, routes
from watheeq_ui.components.case_files import CaseFileRow, case_file_item, case_file_rows
from watheeq_ui.components.softphone import call_button
from watheeq_ui.components.ui import card, direction_icon, empty_state, name_text, section_title, status_badge
from watheeq_ui.i18n import t, t_fmt
from watheeq_ui.layout import template
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tab_session_id, tenant_timezone
from watheeq_ui.state.lang import LangState

PAGE_SIZE = 25
TIMELINE_ITEMS = 100


class ClientRow(BaseModel):
    id: int
    name: str
    phone: str
    email: str


class CaseRow(BaseModel):
    id: int
    title: str
    reference: str
    status: str
    files: list[CaseFileRow] = []


class TimelineEntry(BaseModel):
    kind: str  # "call" | "message"
    at: str
    sort_key: str
    direction: str
    status: str
    title: str
    body: str


class ClientsState(rx.State):
    search: str = ""
    page: int = 1
    total: int = 0
    rows: list[ClientRow] = []

    @rx.var
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    @rx.var
    def total_label(self) -> str:
        return formatting.count(self.total)

    @rx.event
    async def load(self):
        principal = await principal_for_page(self)
        if principal is None:
            return
        found = await offloop.call(
            clients.list_clients, principal, search=self.search, limit=PAGE_SIZE, offset=(self.page - 1) * PAGE_SIZE
        )
        self.total = found.count
        self.rows = [ClientRow(id=c.id, name=c.name, phone=c.phone, email=c.email or "") for c in found.data]

    @rx.event
    async def set_search(self, value: str):
        self.search = value
        self.page = 1
        await self.load()

    @rx.event
    async def go_to_page(self, page: int):
        self.page = max(1, min(int(page), self.pages))
        await self.load()


class ClientState(rx.State):
    found: bool = False
    missing: bool = False
    client_id: int = 0
    name: str = ""
    phone: str = ""
    email: str = ""
    cases: list[CaseRow] = []
    timeline: list[TimelineEntry] = []

    @rx.event
    async def load(self):
        principal = await principal_for_page(self)
        if principal is None:
            return
        tz = await tenant_timezone(self)
        raw_id = self.router.url.path.rstrip("/").rpartition("/")[2]
        self.found = self.missing = False
        self.timeline = []
        if not raw_id.isdigit():
            self.missing = True
            return
        try:
            client, cases, files, calls, messages = await offloop.run(_read_client, principal, int(raw_id))
        except NotFound:
            self.missing = True
            return
        self.found = True
        self.client_id, self.name, self.phone, self.email = client.id, client.name, client.phone, client.email or ""
        rows = case_file_rows(files, tz, await tab_session_id(self))
        self.cases = [
            CaseRow(id=c.id, title=c.title, reference=c.reference, status=c.status.value, files=[r for r in rows if r.case_id == c.id]) for c in cases
        ]
        entries = [
            TimelineEntry(
                kind="call",
                at=formatting.local_time(c.started_at, tz),
                sort_key=c.started_at.isoformat(),
                direction=c.direction.value,
                status=c.status.value,
                title=c.agent_name or "",
                body=c.notes,
            )
            for c in calls.data
        ] + [
            TimelineEntry(
                # A WhatsApp voice call the client made (services.whatsapp.calls).
                kind="wa_call" if m.message_type == "call" else "message",
                at=formatting.local_time(m.created_at, tz),
                sort_key=m.created_at.isoformat(),
                direction=m.direction.value,
                status=m.status.value,
                title=m.client_name or m.push_name or "",
                body=m.body,
            )
            for m in messages.data
        ]
        # Both sources are UTC ISO strings: their order is the time order.
        self.timeline = sorted(entries, key=lambda e: e.sort_key, reverse=True)[:TIMELINE_ITEMS]


def _clients_table() -> rx.Component:
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(t(k)) for k in ("name", "phone", "email")])),
        rx.table.body(
            rx.foreach(
                ClientsState.rows,
                lambda c: rx.table.row(
                    rx.table.row_header_cell(rx.link(name_text(c.name), href="/clients/" + c.id.to_string(), weight="medium")),
                    rx.table.cell(rx.text(c.phone, dir="ltr", as_="span")),
                    rx.table.cell(c.email),
                    data_testid="client-row",
                ),
            )
        ),
        variant="ghost",
        width="100%",
        data_testid="clients-table",
    )


@template(route=routes.CLIENTS, title_key="nav_clients", on_load=ClientsState.load)
def clients_list() -> rx.Component:
    return card(
        rx.hstack(
            rx.input(
                rx.input.slot(rx.icon("search", size=14)),
                placeholder=t("search_clients"),
                value=ClientsState.search,
                on_change=ClientsState.set_search.debounce(300),
                width="320px",
                data_testid="clients-search",
            ),
            rx.spacer(),
            rx.text(t_fmt("clients_total", n=ClientsState.total_label), size="2", color_scheme="gray"),
            width="100%",
            align="center",
            margin_bottom="0.75rem",
        ),
        rx.cond(ClientsState.rows.length() > 0, _clients_table(), empty_state("no_data", "users")),
        rx.hstack(
            rx.spacer(),
            rx.text(t_fmt("page_of", p=ClientsState.page, n=ClientsState.pages), size="2", color_scheme="gray"),
            rx.icon_button(rx.icon("chevron-left", size=16), variant="soft", disabled=ClientsState.page <= 1, on_click=ClientsState.go_to_page(ClientsState.page - 1)),
            rx.icon_button(
                rx.icon("chevron-right", size=16),
                variant="soft",
                disabled=ClientsState.page >= ClientsState.pages,
                on_click=ClientsState.go_to_page(ClientsState.page + 1),
            ),
            width="100%",
            align="center",
            margin_top="0.75rem",
            dir="ltr",
        ),
    )


def _case_status(status: rx.Var) -> rx.Var:
    return rx.match(status, ("OPEN", t("case_OPEN")), ("PENDING", t("case_PENDING")), ("CLOSED", t("case_CLOSED")), status)


def _message_status(status: rx.Var) -> rx.Var:
    return rx.match(
        status,
        *[(s, t(f"msg_{s}")) for s in ("PENDING", "SENT", "DELIVERED", "READ", "FAILED", "RECEIVED")],
        status,
    )


def _case(c: CaseRow) -> rx.Component:
    """A case with its files (name, size, where each came from, a download link)."""
    return rx.vstack(
        rx.hstack(
            rx.text(name_text(c.title), size="2", weight="medium"),
            rx.text(c.reference, size="1", color_scheme="gray"),
            rx.spacer(),
            rx.badge(_case_status(c.status), variant="soft"),
            width="100%",
            align="center",
        ),
        rx.cond(
            c.files.length() > 0,
            rx.vstack(rx.foreach(c.files, case_file_item), spacing="0", width="100%", padding_inline_start="0.75rem"),
            rx.text(t("cf_no_files"), size="1", color_scheme="gray"),
        ),
        spacing="1",
        width="100%",
        padding_y="0.4rem",
        border_bottom=f"1px solid {rx.color('gray', 4)}",
        key=c.id,
        data_testid="client-case",
    )


def _timeline_item(e: TimelineEntry) -> rx.Component:
    is_call = e.kind == "call"
    return rx.hstack(
        rx.box(
            rx.cond(is_call, rx.icon("phone", size=16), rx.icon("message-circle", size=16)),
            color=rx.cond(is_call, rx.color("teal", 11), rx.color("green", 11)),
            background=rx.cond(is_call, rx.color("teal", 3), rx.color("green", 3)),
            padding="0.5rem",
            border_radius="999px",
        ),
        rx.vstack(
            rx.hstack(
                rx.text(rx.cond(is_call, t("call"), rx.cond(e.kind == "wa_call", t("wa_call"), t("whatsapp"))), weight="bold", size="2"),
                direction_icon(e.direction),
                rx.cond(is_call, status_badge(e.status), rx.badge(_message_status(e.status), variant="outline", size="1")),
                rx.text(e.title, size="1", color_scheme="gray"),
                rx.spacer(),
                rx.text(e.at, size="1", color_scheme="gray"),
                width="100%",
                align="center",
            ),
            rx.cond(e.body != "", rx.text(e.body, size="2", white_space="pre-wrap")),
            spacing="1",
            width="100%",
        ),
        width="100%",
        padding_y="0.6rem",
        border_bottom=f"1px solid {rx.color('gray', 4)}",
        data_testid="timeline-entry",
    )


@template(route=routes.CLIENT, title_key="nav_clients", on_load=ClientState.load)
def client_page() -> rx.Component:
    return rx.cond(
        ClientState.found,
        rx.grid(
            rx.vstack(
                card(
                    rx.vstack(
                        rx.link(
                            # "Back" points the way the page reads: right in Arabic.
                            rx.hstack(rx.cond(LangState.is_ar, rx.icon("arrow-right", size=14), rx.icon("arrow-left", size=14)), t("back_to_clients")),
                            href=routes.CLIENTS,
                            size="2",
                        ),
                        rx.heading(name_text(ClientState.name), size="6", data_testid="client-name"),
                        rx.hstack(
                            rx.icon("phone", size=14),
                            rx.text(ClientState.phone, dir="ltr"),
                            call_button(ClientState.phone, label_key="call_client", test_id="client-call"),
                            align="center",
                        ),
                        rx.cond(ClientState.email != "", rx.hstack(rx.icon("mail", size=14), rx.text(ClientState.email))),
                        rx.link(
                            rx.button(rx.icon("list", size=14), t("nav_calls"), variant="soft", size="2"),
                            href=routes.CALLS + "?client=" + ClientState.client_id.to_string(),
                        ),
                        spacing="2",
                    )
                ),
                card(
                    section_title("cases"),
                    rx.foreach(ClientState.cases, _case),
                ),
                spacing="4",
            ),
            card(
                section_title("timeline"),
                rx.cond(ClientState.timeline.length() > 0, rx.foreach(ClientState.timeline, _timeline_item), empty_state("timeline_empty")),
                grid_column=rx.breakpoints(initial="auto", lg="span 2"),
                data_testid="timeline",
            ),
            columns=rx.breakpoints(initial="1", lg="3"),
            spacing="4",
            width="100%",
        ),
        rx.cond(ClientState.missing, empty_state("client_not_found", "user-x"), rx.center(rx.spinner(size="3"), padding="4rem", width="100%")),
    )


def _read_client(principal, client_id: int):
    """The client, their cases and the cases' files, calls and messages in one unit of work (run
    off the event loop)."""
    with db.session_scope() as session:
        client = clients.get_client(session=session, tenant_id=principal.tenant_id, client_id=client_id)
        cases = clients.list_cases(session=session, tenant_id=principal.tenant_id, client_id=client.id)
        files = case_files.list_client_case_files(session=session, tenant_id=principal.tenant_id, actor=principal, client_id=client.id)
        calls = call_center.get_call_history(
            session=session,
            tenant_id=principal.tenant_id,
            actor=principal,
            filters=CallFilters(client_id=client.id),
            page_size=TIMELINE_ITEMS,
        )
        messages = whatsapp.get_messages(
            session=session, tenant_id=principal.tenant_id, actor=principal, client_id=client.id, limit=TIMELINE_ITEMS
        )
    return client, cases, files, calls, messages
