"""The call history's state: filters, numbered pages, the side panel's call, notes, cases, CSV export.

Over 400 lines: one state class, because the filters, the page, the panel and the export
read and reset each other's vars (a delete refetches the page; an export uses the filters).
"""

from __future__ import annotations

import asyncio
import time as clock
from urllib.parse import urlencode

import reflex as rx
from pydantic import BaseModel
from reflex.config import get_config

from services import accounts, call_center, clients, db, live
from services.pbx import recordings
from services.authz import Permission, allowed
from services.errors import DomainError, Invalid, NotFound
from services.models import CallDetail, CallDirection, CallFilters, CallOrder, CallPublic, CallStatus, Principal
from services.timestamps import local_day_range

from watheeq_ui import exports, formatting, live_tabs
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import tr
from watheeq_ui.pages.calls.legs import LegView, leg_views
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tab_session_id, tenant_timezone
from watheeq_ui.state.lang import LangState

PAGE_SIZE = 50
PAGE_WINDOW = 2
CLIENT_SUGGESTIONS = 8
STATUSES = [s.value for s in CallStatus]
# The filters a user sets one at a time; set_filter changes no other var.
FILTERS = ("date_from", "date_to", "direction", "status", "agent", "number")


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
    id: int = 0
    # A link signed for the tab's session (the <audio> element sends no bearer token).
    url: str = ""
    duration: str = ""
    # "stored" (playable), "pending" (still at the PBX), "failed" (the PBX never gave it) or
    # "purged" (deleted after retention).
    state: str = ""


def _recording_state(stored: bool, purged: bool, failed: bool) -> str:
    if stored:
        return "stored"
    return "purged" if purged else ("failed" if failed else "pending")


def recording_url(session_id: int, recording_id: int, renewal: int = 0) -> str:
    """The player's link. A link signed now is the same for minutes (a re-read keeps the player
    going); ``renewal`` makes a renewed one differ from the link the player gave up on, or the
    browser would keep the broken source it already has."""
    sig = recordings.sign_link(session_id=session_id, recording_id=recording_id)
    query = urlencode({"session": session_id, "sig": sig, **({"renewal": renewal} if renewal else {})})
    return f"{get_config().api_url}/api/v1/call-center/recordings/{recording_id}?{query}"


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
        recordings=[
            RecordingView(id=r.id, duration=formatting.duration(r.duration_seconds), state=_recording_state(r.stored, r.purged_at is not None, r.fetch_failed))
            for r in call.recordings
        ],
    )


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
    # A number search counts up to a bound (services' COUNT_BOUND): past it, "more than" the total.
    total_is_lower_bound: bool = False
    has_next: bool = False
    rows: list[CallRow] = []
    agents: list[Option] = []
    loading: bool = False
    can_export: bool = False

    panel_open: bool = False
    # When the recordings' signed links were last renewed after a player error (monotonic s).
    _links_renewed_at: float = 0.0
    _link_renewals: int = 0
    call: CallView = CallView()
    legs: list[LegView] = []
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
        counted = max(1, -(-self.total // PAGE_SIZE))
        # Past the bound the pages are not all counted: as many as counted, or up to the next one.
        return max(counted, self.page + 1 if self.has_next else self.page) if self.total_is_lower_bound else counted

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
        # The end date is inclusive on screen: the range ends at the next local midnight.
        start, end = local_day_range(self.date_from, self.date_to, tz)
        number = self.number.strip()
        if number and not any(ch.isdigit() for ch in number):
            raise Invalid("number", "search by the digits of a number")
        return CallFilters(
            date_from=start,
            date_to=end,
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
            result = await offloop.call(
                call_center.get_call_history,
                principal,
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
        self.total_is_lower_bound = result.count_is_lower_bound
        self.has_next = result.next_cursor is not None
        self.rows = [_row(c, tz) for c in result.data]

    # ------------------------------------------------------------------ page load and filters

    @rx.event
    async def load(self):
        principal = await principal_for_page(self)
        if principal is None:
            return
        self.can_export = allowed(principal, Permission.EXPORT)
        if allowed(principal, Permission.VIEW_ALL_CALLS):
            users = await offloop.call(accounts.list_users, principal)
            self.agents = [Option(value=str(u.id), label=u.full_name or u.email) for u in users]
        else:
            self.agents = []
        wanted_client = self.router.url.query_parameters.get("client", "")
        if wanted_client.isdigit():
            try:
                client = await offloop.call(clients.get_client, principal, client_id=int(wanted_client))
                self.client_id, self.client_label = str(client.id), client.name
            except NotFound:
                self.client_id, self.client_label = "", ""
        self.page = 1
        self.panel_open = False
        await self._fetch(principal)
        # A call logged, changed or deleted in the firm (any tab, the API, the PBX ledger) is pushed.
        live_tabs.follow(self, principal.tenant_id, principal.user_id, "calls")

    async def on_live_change(self, change: live.Change) -> None:
        """A call of the firm changed: the page shown is read again (same filters and page)."""
        principal = await principal_for_page(self, activity=False)
        if principal is not None:
            await self._fetch(principal)

    async def _refilter(self):
        principal = await principal_for_page(self)
        if principal is None:
            return
        self.page = 1
        await self._fetch(principal)

    @rx.event
    async def set_filter(self, name: str, value: str):
        """Set one of :data:`FILTERS` and show the first page of what it matches."""
        if name not in FILTERS:
            return
        setattr(self, name, value)
        await self._refilter()

    @rx.event
    async def search_clients(self, value: str):
        self.client_query = value
        principal = await principal_for_page(self)
        if principal is None or not value.strip():
            self.client_options = []
            return
        found = await offloop.call(clients.list_clients, principal, search=value, limit=CLIENT_SUGGESTIONS)
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

    async def _show(self, detail: CallDetail, tz: str, principal: Principal, session_id: int) -> None:
        # The same call shown again (a note added) keeps its links: a new src would stop a
        # recording that is playing.
        links = {r.id: r.url for r in self.call.recordings} if self.call.id == detail.id else {}
        view = _view(detail, tz)
        for rec in view.recordings:
            if rec.state == "stored" and session_id:
                rec.url = links.get(rec.id) or recording_url(session_id, rec.id)
        self.call = view
        self.case_choice = self.call.case_id
        self.cases = []
        if detail.client_id is not None:
            found = await offloop.call(clients.list_cases, principal, client_id=detail.client_id)
            self.cases = [Option(value=str(c.id), label=f"{c.title} ({c.reference})" if c.reference else c.title) for c in found]

    @rx.event
    async def open_call(self, call_id: int):
        principal = await principal_for_page(self)
        if principal is None:
            return
        tz = await tenant_timezone(self)
        try:
            detail, legs = await offloop.run(_read_call, principal, call_id)
        except NotFound:
            return
        self.legs = leg_views(legs, tz)
        self.note = ""
        self.panel_errors = {}
        self.confirming_delete = False
        self.call = CallView()
        await self._show(detail, tz, principal, await tab_session_id(self))
        self.panel_open = True

    @rx.event
    async def renew_recording_links(self):
        """The player's error handler: a panel left open past the links' lifetime gets fresh
        links. At most once a minute, so a recording that is really gone cannot loop."""
        principal = await principal_for_page(self)
        if principal is None or clock.monotonic() - self._links_renewed_at < 60:
            return
        self._links_renewed_at = clock.monotonic()
        self._link_renewals += 1
        session_id, renewal = await tab_session_id(self), self._link_renewals
        self.call = self.call.model_copy(
            update={"recordings": [r.model_copy(update={"url": recording_url(session_id, r.id, renewal)}) if r.url else r for r in self.call.recordings]}
        )

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
            detail = await offloop.call(call_center.add_notes, principal, call_id=self.call.id, note=note, case_id=case_id)
        except Invalid as exc:
            self.panel_errors = {exc.field or "note": error_text(lang, exc)}
            return None
        except DomainError as exc:
            return rx.toast.error(error_text(lang, exc))
        self.panel_errors = {}
        await self._show(detail, tz, principal, await tab_session_id(self))
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
        principal = await principal_for_page(self, Permission.DELETE_CALLS)
        if principal is None or not self.call.id:
            return None
        lang = (await self.get_state(LangState)).lang
        try:
            await offloop.call(call_center.delete_call, principal, call_id=self.call.id)
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
            principal = await principal_for_page(self, Permission.EXPORT)
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
            ticket, written = await offloop.run(
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


def _read_call(principal: Principal, call_id: int):
    """A call and its PBX legs in one unit of work (run off the event loop)."""
    with db.session_scope() as session:
        detail = call_center.get_call(session=session, tenant_id=principal.tenant_id, actor=principal, call_id=call_id)
        legs = call_center.get_call_legs(session=session, tenant_id=principal.tenant_id, actor=principal, call_id=call_id)
    return detail, legs
