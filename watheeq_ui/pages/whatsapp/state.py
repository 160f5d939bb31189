"""WhatsApp: link the firm's line by QR, watch its status live, read and send messages.

The page never talks to WhatsApp: it writes intent through the services (link, unlink,
queue a message) and a background task watches the session row and the newest messages,
pushing to the browser only what changed (a new QR, a status, a message moving from
pending to sent to delivered). The sidecar does the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import qrcode
import reflex as rx
from pydantic import BaseModel

from services import clients, db, whatsapp
from services.errors import DomainError
from services.models import MessageDirection, Principal, WhatsappMessagePublic, WhatsappSend, WhatsappStatusPublic
from services.whatsapp.failures import SENTENCES, Failure
from services.whatsapp.gateway import qr_code_lifetimes
from services.whatsapp.store import messages_fingerprint

from watheeq_ui import formatting, routes
from watheeq_ui.components.ui import card, date_field, empty_state, field_error, labelled, message_kind_label, name_text, section_title
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import LABELS, t, t_fmt, tr
from watheeq_ui.layout import template
from watheeq_ui.state.auth import AuthState, principal_for_page, tenant_timezone
from watheeq_ui.state.lang import LangState
from watheeq_ui.state.line import LineState

MESSAGES_WINDOW = 200
CLIENT_OPTIONS = 500
# The watcher reads two small rows-sets this often; it pushes only changes.
POLL_SECONDS = 0.3
# The page beats every few seconds while it is open; a watcher without beats stops.
BEAT_MS = 4000
BEAT_GRACE_SECONDS = 15.0
CHECK_SECONDS = 2.0

_LABELS: dict[str, tuple[str, str]] = {
    "nav_whatsapp": ("WhatsApp", "واتساب"),
    "wa_link": ("Link WhatsApp", "ربط واتساب"),
    "wa_unlink": ("Unlink", "إلغاء الربط"),
    "wa_unlink_confirm": ("Unlink the firm's WhatsApp line?", "إلغاء ربط خط واتساب للمكتب؟"),
    "wa_unlink_body": (
        "The device is logged out on the phone and its keys are deleted. Messages stay stored.",
        "سيُسجَّل خروج الجهاز من الهاتف وتُحذف مفاتيحه. تبقى الرسائل محفوظة.",
    ),
    "wa_not_linked_body": (
        "Link the firm's WhatsApp number to send and receive messages here.",
        "اربط رقم واتساب الخاص بالمكتب لإرسال الرسائل واستقبالها هنا.",
    ),
    "wa_admin_only": ("Only an owner or an admin can link the line.", "يستطيع المالك أو المسؤول فقط ربط الخط."),
    "wa_admin_linking": (
        "An owner or an admin is linking the line; the code to scan is shown only to them.",
        "يقوم المالك أو المسؤول بربط الخط؛ يظهر رمز المسح لهما فقط.",
    ),
    "wa_scan_title": ("Scan this code with the firm's phone", "امسح هذا الرمز بهاتف المكتب"),
    "wa_scan_steps": ("WhatsApp → Linked devices → Link a device", "واتساب ← الأجهزة المرتبطة ← ربط جهاز"),
    "wa_code_refresh": ("New code in {n} s", "رمز جديد خلال {n} ث"),
    "wa_code_refreshing": ("Waiting for a new code…", "بانتظار رمز جديد…"),
    "wa_starting": ("Starting the line…", "جارٍ تشغيل الخط…"),
    "wa_linked_as": ("Linked number", "الرقم المرتبط"),
    "wa_profile": ("WhatsApp name", "اسم واتساب"),
    "wa_since": ("Connected since", "متصل منذ"),
    "wa_error_title": ("The line is not connected", "الخط غير متصل"),
    "wa_next_retry": ("Next try at {x}", "المحاولة التالية عند {x}"),
    # Failures: the sentence per code comes from services.whatsapp.failures; the raw detail
    # is behind this toggle, for owners and admins.
    "wa_details": ("Technical details", "التفاصيل التقنية"),
    "wa_hide_details": ("Hide technical details", "إخفاء التفاصيل التقنية"),
    "wa_cancel_link": ("Cancel", "إلغاء"),
    "wa_conversations": ("Conversations", "المحادثات"),
    "wa_no_messages": ("No messages yet", "لا توجد رسائل بعد"),
    "wa_send_title": ("Send a message", "إرسال رسالة"),
    "wa_to_client": ("To a client", "إلى عميل"),
    "wa_to_number": ("To a number", "إلى رقم"),
    "wa_choose_client": ("Choose a client", "اختر عميلًا"),
    "wa_number_placeholder": ("05x xxx xxxx or +9665…", "05x xxx xxxx أو ‎+9665…"),
    "wa_message": ("Message", "الرسالة"),
    "wa_send": ("Send", "إرسال"),
    "wa_queued": ("Queued: sent as soon as the line allows", "في قائمة الانتظار: تُرسل فور سماح الخط"),
    "wa_ms_PENDING": ("Pending", "قيد الإرسال"),
    "wa_ms_SENDING": ("Sending", "جارٍ الإرسال"),
    "wa_ms_UNCERTAIN": ("May not have been sent", "ربما لم تُرسل"),
    "wa_send_again": ("Send again", "أعد الإرسال"),
    "wa_mark_sent": ("Mark as sent", "علّمها كمُرسلة"),
    "wa_resent": ("Queued again", "أُعيدت إلى قائمة الإرسال"),
    "wa_marked_sent": ("Marked as sent", "عُلّمت كمُرسلة"),
    "wa_ms_SENT": ("Sent", "أُرسلت"),
    "wa_ms_DELIVERED": ("Delivered", "وصلت"),
    "wa_ms_READ": ("Read", "قُرئت"),
    "wa_ms_FAILED": ("Failed", "فشلت"),
    "wa_ms_RECEIVED": ("Received", "مستلمة"),
    "wa_messages_count": ("{n} messages", "{n} رسالة"),
}
# The page's labels join the platform's table; a key the platform already defines keeps
# its text there, so this page can never change another page's wording.
for _key, _texts in _LABELS.items():
    LABELS.setdefault(_key, _texts)
for _code, _texts in SENTENCES.items():
    LABELS.setdefault(f"wa_fail_{_code.value}", _texts)


class ChatMessage(BaseModel):
    id: int
    direction: str
    status: str
    body: str
    kind: str
    at: str
    error_code: str


class ChatGroup(BaseModel):
    chat_jid: str
    title: str
    number: str
    client_id: str
    latest: str
    messages: list[ChatMessage]


class Option(BaseModel):
    value: str
    label: str


def qr_data_url(payload: str) -> str:
    """The payload as an SVG QR code in a data: URL: one path of dark runs, ~10 KB."""
    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(payload)
    code.make(fit=True)
    matrix = code.get_matrix()
    runs: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
    size = len(matrix)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" shape-rendering="crispEdges">'
        f'<rect width="100%" height="100%" fill="#fff"/><path d="{"".join(runs)}" fill="#000"/></svg>'
    )
    # Percent-encoding only what a data: URL needs keeps it smaller than base64.
    return "data:image/svg+xml;utf8," + svg.replace("%", "%25").replace("#", "%23").replace('"', "'")


def _parse_day(value: str, tz: str, end: bool) -> datetime | None:
    if not value:
        return None
    day = datetime.strptime(value, "%Y-%m-%d")
    start = day.replace(tzinfo=ZoneInfo(tz))
    return start + timedelta(days=1) - timedelta(microseconds=1) if end else start


class WhatsappState(rx.State):
    status: str = ""
    desired: str = ""
    simulator: bool = False
    qr_image: str = ""
    qr_seconds_left: int = -1
    qr_issued_ms: str = ""
    phone_number: str = ""
    push_name: str = ""
    connected_since: str = ""
    error_code: str = ""
    # The raw failure text: loaded only when an owner or admin opens the details.
    error_detail: str = ""
    next_retry: str = ""
    confirm_unlink: bool = False
    busy: bool = False

    chats: list[ChatGroup] = []
    message_count: int = 0
    client_options: list[Option] = []
    filter_client: str = "any"
    filter_direction: str = "any"
    filter_from: str = ""
    filter_to: str = ""
    filter_errors: dict[str, str] = {}

    send_mode: str = "client"
    send_client: str = ""
    send_to: str = ""
    send_body: str = ""
    send_errors: dict[str, str] = {}

    _watch_generation: int = 0
    _last_beat: float = 0.0
    _qr_payload: str = ""
    _qr_expires: float = 0.0

    @rx.var
    def messages_label(self) -> str:
        return formatting.count(self.message_count)

    # ------------------------------------------------------------------ reading

    def _apply_status(self, line: WhatsappStatusPublic, tz: str, qr_image: str | None) -> None:
        previous = self.status
        self.status = line.status.value
        self.desired = line.desired_state.value
        self.phone_number = line.phone_number or ""
        self.push_name = line.push_name or ""
        self.connected_since = formatting.local_time(line.connected_since, tz)
        if (line.error_code or "") != self.error_code:
            self.error_detail = ""
        self.error_code = line.error_code or ""
        self.next_retry = formatting.local_time(line.next_retry_at, tz, "%H:%M:%S")
        self.simulator = line.gateway == "simulator"
        payload = line.qr_payload or ""
        if payload != self._qr_payload:
            self._qr_payload = payload
            self.qr_image = qr_image if payload and qr_image is not None else (qr_data_url(payload) if payload else "")
            self.qr_issued_ms = str(int(line.qr_issued_at.timestamp() * 1000)) if payload and line.qr_issued_at else ""
            if payload and line.qr_issued_at is not None:
                first, following = qr_code_lifetimes(line.gateway)
                # Seen arriving from CONNECTING it is the first code; a code older than a later
                # code's lifetime can only be the first one too.
                age = time.time() - line.qr_issued_at.timestamp()
                is_first = previous not in ("", "QR_PENDING") or age > following
                self._qr_expires = line.qr_issued_at.timestamp() + (first if is_first else following)
            else:
                self._qr_expires = 0.0
        self.qr_seconds_left = self._seconds_left()

    def _seconds_left(self) -> int:
        if not self._qr_payload or not self._qr_expires:
            return -1
        return max(0, int(self._qr_expires - time.time() + 0.999))

    def _load_messages(self, principal: Principal, tz: str) -> None:
        errors: dict[str, str] = {}
        try:
            date_from = _parse_day(self.filter_from, tz, end=False)
        except ValueError:
            errors["date_from"] = "a date is written YYYY-MM-DD"
            date_from = None
        try:
            date_to = _parse_day(self.filter_to, tz, end=True)
        except (ValueError, OverflowError):  # 9999-12-31 + one day overflows
            errors["date_to"] = "a date is written YYYY-MM-DD"
            date_to = None
        if errors:
            self.filter_errors = errors
            return
        try:
            with db.session_scope() as session:
                page = whatsapp.get_messages(
                    session=session,
                    tenant_id=principal.tenant_id,
                    actor=principal,
                    client_id=int(self.filter_client) if self.filter_client.isdigit() else None,
                    direction=MessageDirection(self.filter_direction) if self.filter_direction != "any" else None,
                    date_from=date_from,
                    date_to=date_to,
                    limit=MESSAGES_WINDOW,
                )
        except DomainError as exc:
            self.filter_errors = {exc.field or "client_id": exc.message}
            return
        self.filter_errors = {}
        self.message_count = page.count
        groups: dict[str, ChatGroup] = {}
        for m in page.data:  # newest first: a chat's first message is its latest
            group = groups.get(m.chat_jid)
            if group is None:
                number = m.remote_e164 or m.chat_jid.partition("@")[0]
                group = groups[m.chat_jid] = ChatGroup(
                    chat_jid=m.chat_jid,
                    title=m.client_name or m.push_name or number,
                    number=number,
                    client_id=str(m.client_id or ""),
                    latest=formatting.local_time(m.created_at, tz),
                    messages=[],
                )
            if m.client_name and group.title != m.client_name:
                group.title = m.client_name
                group.client_id = str(m.client_id)
            group.messages.append(
                ChatMessage(
                    id=m.id,
                    direction=m.direction.value,
                    status=m.status.value,
                    body=m.body,
                    kind=m.message_type,
                    at=formatting.local_time(m.created_at, tz),
                    error_code=m.error_code or "",
                )
            )
        self.chats = list(groups.values())

    def _load_client_options(self, principal: Principal) -> None:
        with db.session_scope() as session:
            found = clients.list_clients(session=session, tenant_id=principal.tenant_id, limit=CLIENT_OPTIONS)
        self.client_options = [Option(value=str(c.id), label=f"{c.name} · {c.phone}") for c in found.data if c.phone]

    async def _header_status(self) -> None:
        line = await self.get_state(LineState)
        line.status = self.status
        line.phone_number = self.phone_number

    # ------------------------------------------------------------------ events

    @rx.event
    async def load(self):
        principal = await principal_for_page(self)
        if principal is None:
            return None
        tz = await tenant_timezone(self)
        with db.session_scope() as session:
            line = whatsapp.get_session_status(session=session, tenant_id=principal.tenant_id, actor=principal)
        self._qr_payload = ""
        # What the page showed before this visit says nothing about the current code.
        self.status = ""
        self._apply_status(line, tz, None)
        self.confirm_unlink = False
        self.send_errors = {}
        self._load_client_options(principal)
        self._load_messages(principal, tz)
        await self._header_status()
        self._last_beat = time.monotonic()
        self._watch_generation += 1
        return WhatsappState.watch

    @rx.event
    def beat(self, _value: str = ""):
        self._last_beat = time.monotonic()

    @rx.event
    def stop_watching(self):
        self._watch_generation += 1

    @rx.event(background=True)
    async def watch(self):
        """Follow the session row and the newest messages while the page is open.

        Each round is one short read on a worker thread; the state lock is taken only when
        something changed (or for the countdown's next second, or a liveness check), so an
        idle page costs the browser nothing.
        """
        async with self:
            generation = self._watch_generation
            # Watching is not activity: an open WhatsApp page must not keep a tab signed in.
            viewer = await principal_for_page(self, activity=False)
            if viewer is None:
                return
            tz = await tenant_timezone(self)

        def read() -> tuple[WhatsappStatusPublic, str]:
            with db.session_scope() as session:
                return (
                    whatsapp.get_session_status(session=session, tenant_id=viewer.tenant_id, actor=viewer),
                    messages_fingerprint(session=session, tenant_id=viewer.tenant_id, window=MESSAGES_WINDOW),
                )

        last_line: WhatsappStatusPublic | None = None
        last_fingerprint: str | None = None
        last_second = 0
        next_check = time.monotonic() + CHECK_SECONDS
        while True:
            line, fingerprint = await asyncio.to_thread(read)
            qr_image = None
            if line.qr_payload and (last_line is None or line.qr_payload != last_line.qr_payload):
                # ~15 ms of CPU: off the event loop, before taking the state lock.
                qr_image = await asyncio.to_thread(qr_data_url, line.qr_payload)
            status_changed = line != last_line
            messages_changed = last_fingerprint is not None and fingerprint != last_fingerprint
            now = time.monotonic()
            second = int(time.time())
            countdown = line.status.value == "QR_PENDING" and second != last_second
            if status_changed or messages_changed or countdown or now >= next_check:
                async with self:
                    if self._watch_generation != generation or now - self._last_beat > BEAT_GRACE_SECONDS:
                        return
                    # Nothing reaches the browser for a session that has ended since the last round.
                    principal = await principal_for_page(self, activity=False)
                    if principal is None or principal.tenant_id != viewer.tenant_id or principal.role != viewer.role:
                        return
                    self._apply_status(line, tz, qr_image)
                    if status_changed:
                        await self._header_status()
                    if messages_changed:
                        self._load_messages(principal, tz)
                if now >= next_check:
                    next_check = now + CHECK_SECONDS
                last_second = second
            last_line, last_fingerprint = line, fingerprint
            await asyncio.sleep(POLL_SECONDS)

    @rx.event
    async def link(self):
        principal = await principal_for_page(self, "admin")
        if principal is None:
            return None
        tz = await tenant_timezone(self)
        with db.session_scope() as session:
            line = whatsapp.init_session(session=session, tenant_id=principal.tenant_id, actor=principal)
        self._apply_status(line, tz, None)
        await self._header_status()
        return None

    @rx.event
    def ask_unlink(self):
        self.confirm_unlink = True

    @rx.event
    def cancel_unlink(self):
        self.confirm_unlink = False

    @rx.event
    async def unlink(self):
        principal = await principal_for_page(self, "admin")
        self.confirm_unlink = False
        if principal is None:
            return None
        tz = await tenant_timezone(self)
        with db.session_scope() as session:
            line = whatsapp.disconnect(session=session, tenant_id=principal.tenant_id, actor=principal)
        self._apply_status(line, tz, None)
        await self._header_status()
        return None

    @rx.event
    async def toggle_error_detail(self):
        if self.error_detail:
            self.error_detail = ""
            return None
        principal = await principal_for_page(self, "admin")
        if principal is None:
            return None
        with db.session_scope() as session:
            detail = whatsapp.get_error_detail(session=session, tenant_id=principal.tenant_id, actor=principal)
        self.error_detail = detail or ""
        return None

    # ------------------------------------------------------------------ uncertain messages

    async def _decide(self, message_id: int, decide: Callable[..., WhatsappMessagePublic], done_key: str):
        """Record a person's decision about an UNCERTAIN message (``decide`` is the service call)."""
        principal = await principal_for_page(self)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        try:
            with db.session_scope() as session:
                decide(session=session, tenant_id=principal.tenant_id, actor=principal, message_id=message_id)
        except DomainError as exc:
            return rx.toast.error(error_text(lang, exc))
        self._load_messages(principal, await tenant_timezone(self))
        return rx.toast.success(tr(lang, done_key))

    @rx.event
    async def resend(self, message_id: int):
        return await self._decide(message_id, whatsapp.resend_message, "wa_resent")

    @rx.event
    async def mark_sent(self, message_id: int):
        return await self._decide(message_id, whatsapp.confirm_message_sent, "wa_marked_sent")

    # ------------------------------------------------------------------ filters

    async def _reload(self):
        principal = await principal_for_page(self)
        if principal is None:
            return
        self._load_messages(principal, await tenant_timezone(self))

    @rx.event
    async def set_filter_client(self, value: str):
        self.filter_client = value
        await self._reload()

    @rx.event
    async def set_filter_direction(self, value: str):
        self.filter_direction = value
        await self._reload()

    @rx.event
    async def set_filter_from(self, value: str):
        self.filter_from = value
        await self._reload()

    @rx.event
    async def set_filter_to(self, value: str):
        self.filter_to = value
        await self._reload()

    @rx.event
    async def clear_filters(self):
        self.filter_client, self.filter_direction, self.filter_from, self.filter_to = "any", "any", "", ""
        await self._reload()

    # ------------------------------------------------------------------ sending

    @rx.event
    def set_send_mode(self, value: str | list[str]):
        self.send_mode = "number" if value == "number" else "client"
        self.send_errors = {}

    @rx.event
    def set_send_client(self, value: str):
        self.send_client = value

    @rx.event
    def set_send_to(self, value: str):
        self.send_to = value

    @rx.event
    def set_send_body(self, value: str):
        self.send_body = value

    @rx.event
    async def send(self):
        principal = await principal_for_page(self)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        if self.send_mode == "client" and not self.send_client.isdigit():
            self.send_errors = {"client_id": tr(lang, "wa_choose_client")}
            return None
        data = WhatsappSend(
            to=self.send_to if self.send_mode == "number" else None,
            client_id=int(self.send_client) if self.send_mode == "client" else None,
            body=self.send_body,
        )
        try:
            with db.session_scope() as session:
                whatsapp.send_message(session=session, tenant_id=principal.tenant_id, actor=principal, data=data)
        except DomainError as exc:
            # Invalid names its field; "not connected" is shown under the send button.
            self.send_errors = {exc.field or "status": error_text(lang, exc)}
            return None
        self.send_errors = {}
        self.send_body = ""
        # Shown at once as pending; the watcher moves it along as the sidecar sends it.
        self._load_messages(principal, await tenant_timezone(self))
        return rx.toast.info(tr(lang, "wa_queued"))


# ---------------------------------------------------------------------- view


def _status_ticks(status: rx.Var) -> rx.Component:
    return rx.match(
        status,
        ("PENDING", rx.tooltip(rx.icon("clock", size=14, color=rx.color("gray", 10)), content=t("wa_ms_PENDING"))),
        ("SENDING", rx.tooltip(rx.icon("clock", size=14, color=rx.color("gray", 10)), content=t("wa_ms_SENDING"))),
        ("UNCERTAIN", rx.tooltip(rx.icon("circle-help", size=14, color=rx.color("amber", 10)), content=t("wa_ms_UNCERTAIN"))),
        ("SENT", rx.tooltip(rx.icon("check", size=14, color=rx.color("gray", 10)), content=t("wa_ms_SENT"))),
        ("DELIVERED", rx.tooltip(rx.icon("check-check", size=14, color=rx.color("gray", 10)), content=t("wa_ms_DELIVERED"))),
        ("READ", rx.tooltip(rx.icon("check-check", size=14, color=rx.color("blue", 10)), content=t("wa_ms_READ"))),
        ("FAILED", rx.tooltip(rx.icon("circle-alert", size=14, color=rx.color("red", 10)), content=t("wa_ms_FAILED"))),
        rx.fragment(),
    )


def _status_word(status: rx.Var) -> rx.Var:
    return rx.match(
        status,
        ("PENDING", t("wa_ms_PENDING")),
        ("SENDING", t("wa_ms_SENDING")),
        ("UNCERTAIN", t("wa_ms_UNCERTAIN")),
        ("SENT", t("wa_ms_SENT")),
        ("DELIVERED", t("wa_ms_DELIVERED")),
        ("READ", t("wa_ms_READ")),
        ("FAILED", t("wa_ms_FAILED")),
        ("RECEIVED", t("wa_ms_RECEIVED")),
        status,
    )


def _failure_sentence(code: rx.Var) -> rx.Var:
    return rx.match(code, *[(f.value, t(f"wa_fail_{f.value}")) for f in Failure], t("wa_fail_unknown"))


def _failure_notice(color: str, icon: str, test_id: str) -> rx.Component:
    """What went wrong and what to do; the raw detail only for OWNER/ADMIN, collapsed."""
    return rx.vstack(
        rx.callout(_failure_sentence(WhatsappState.error_code), icon=icon, color_scheme=color, size="1", data_testid=test_id, data_code=WhatsappState.error_code),
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


def _error_panel() -> rx.Component:
    return rx.vstack(
        rx.hstack(rx.icon("triangle-alert", size=22, color=rx.color("red", 10)), rx.heading(t("wa_error_title"), size="4"), align="center"),
        _failure_notice("red", "circle-alert", "wa-error"),
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


def _line_panel() -> rx.Component:
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


def _unlink_dialog() -> rx.Component:
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


def _message_bubble(m: ChatMessage) -> rx.Component:
    outbound = m.direction == "OUTBOUND"
    return rx.box(
        rx.vstack(
            rx.cond(m.kind != "text", rx.badge(message_kind_label(m.kind), variant="outline", size="1")),
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
                rx.text(_failure_sentence(m.error_code), size="1", color_scheme=rx.cond(m.status == "UNCERTAIN", "amber", "red"), data_testid="wa-message-error"),
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
        rx.vstack(rx.foreach(group.messages, _message_bubble), spacing="2", width="100%", margin_top="0.5rem"),
        padding_y="0.75rem",
        border_bottom=f"1px solid {rx.color('gray', 4)}",
        width="100%",
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
                on_change=WhatsappState.set_filter_client,
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
            on_change=WhatsappState.set_filter_direction,
        ),
        rx.vstack(
            rx.hstack(
                rx.text(t("date_from"), size="2", color_scheme="gray"),
                date_field(WhatsappState.filter_from, WhatsappState.set_filter_from, "wa-filter-from", "date_from"),
                align="center",
            ),
            field_error(errors.get("date_from", "")),
            spacing="1",
        ),
        rx.vstack(
            rx.hstack(
                rx.text(t("date_to"), size="2", color_scheme="gray"),
                date_field(WhatsappState.filter_to, WhatsappState.set_filter_to, "wa-filter-to", "date_to"),
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
                        on_change=WhatsappState.set_send_client,
                    ),
                    errors.get("client_id", ""),
                ),
                labelled(
                    "number",
                    rx.input(
                        value=WhatsappState.send_to,
                        on_change=WhatsappState.set_send_to,
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
                rx.text_area(value=WhatsappState.send_body, on_change=WhatsappState.set_send_body, rows="3", data_testid="wa-send-body"),
                errors.get("body", ""),
            ),
            field_error(errors.get("status", "")),
            rx.button(rx.icon("send", size=14), t("wa_send"), on_click=WhatsappState.send, data_testid="wa-send"),
            spacing="3",
            width="100%",
        ),
    )


@template(route=routes.WHATSAPP, title_key="nav_whatsapp", on_load=WhatsappState.load)
def whatsapp_page() -> rx.Component:
    return rx.vstack(
        _line_panel(),
        rx.grid(
            rx.box(_conversations(), grid_column=rx.breakpoints(initial="auto", lg="span 2")),
            _send_box(),
            columns=rx.breakpoints(initial="1", lg="3"),
            spacing="4",
            width="100%",
            align_items="start",
        ),
        _unlink_dialog(),
        # Keeps the watcher alive while the page is open; leaving the page stops it.
        rx.moment(interval=BEAT_MS, on_change=WhatsappState.beat, display="none"),
        rx.box(on_unmount=WhatsappState.stop_watching, display="none"),
        spacing="4",
        width="100%",
    )
