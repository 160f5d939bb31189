# Over 400 lines: one state whose line status, watcher, list and send form share the page's data.
"""What the WhatsApp page knows and does: the line's status, the messages, the send form.

The page never talks to WhatsApp: it writes intent through the services (link, unlink,
queue a message) and a background task watches the session row and the newest messages,
pushing to the browser only what changed (a new QR, a status, a message moving from
pending to sent to delivered). The sidecar does the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlencode

import reflex as rx
from reflex.config import get_config

from services import clients, db, whatsapp
from services.whatsapp import media, outbox_files
from services.authz import Permission
from services.errors import DomainError
from services.models import MessageDirection, Principal, WhatsappMessagePublic, WhatsappSend, WhatsappStatusPublic
from services.timestamps import local_day_range
from services.whatsapp.gateway import qr_code_lifetimes

from watheeq_ui import formatting
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import tr
from watheeq_ui.pages.whatsapp.rows import ChatGroup, Option, chat_groups, qr_data_url
from watheeq_ui.state.auth import principal_for_page, tab_session_id, tenant_timezone
from watheeq_ui.state.lang import LangState
from watheeq_ui.state.whatsapp_line import WhatsappLineState

MESSAGES_WINDOW = 200


def media_url(session_id: int, message_id: int) -> str:
    """A link the page's <img>/<audio>/<video> can load: signed for the tab's session."""
    sig = media.sign_link(session_id=session_id, message_id=message_id)
    return f"{get_config().api_url}/api/v1/whatsapp/qr/messages/{message_id}/media?{urlencode({'session': session_id, 'sig': sig})}"
CLIENT_OPTIONS = 500
# The watcher reads two small rows-sets this often; it pushes only changes.
POLL_SECONDS = 0.3
# The page beats every few seconds while it is open; a watcher without beats stops.
BEAT_MS = 4000
BEAT_GRACE_SECONDS = 15.0
CHECK_SECONDS = 2.0
# The list's filters and the send form's fields, each set by one event that changes only it.
FILTERS = ("filter_client", "filter_direction", "filter_from", "filter_to")
DRAFT_FIELDS = ("send_client", "send_to", "send_body")


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
    # When the sidecar serving the line stopped, while none holds it (else "").
    service_down_since: str = ""
    # Guardrails: a temporary ban (its end, local time, and whatsmeow's reason code) pauses
    # sending; first contacts sent today against the firm's daily cap.
    ban_until: str = ""
    ban_code: str = ""
    first_contact_cap: int = 20
    first_contacts_today: int = 0
    reject_calls: bool = False
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
    # The tab's session: what the signed links to files are bound to.
    _session_id: int = 0

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
        self.service_down_since = formatting.local_time(line.service_down_since, tz) if not line.service_running else ""
        self.simulator = line.gateway == "simulator"
        self.ban_until = formatting.local_time(line.banned_until, tz) if line.banned_until else ""
        self.ban_code = line.ban_code or ""
        self.first_contact_cap = line.first_contact_daily_cap
        self.first_contacts_today = line.first_contacts_today
        self.reject_calls = line.reject_calls
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
        try:
            # The days are inclusive on the page; the range's end is the next day's midnight.
            date_from, date_to = local_day_range(self.filter_from, self.filter_to, tz)
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
        session_id = self._session_id
        self.chats = chat_groups(page.data, tz, (lambda message_id: media_url(session_id, message_id)) if session_id else None)

    def _load_client_options(self, principal: Principal) -> None:
        with db.session_scope() as session:
            found = clients.list_clients(session=session, tenant_id=principal.tenant_id, limit=CLIENT_OPTIONS)
        self.client_options = [Option(value=str(c.id), label=f"{c.name} · {c.phone}") for c in found.data if c.phone]

    async def _header_status(self) -> None:
        line = await self.get_state(WhatsappLineState)
        line.status = self.status
        line.service_down = self.service_down_since != ""
        line.phone_number = self.phone_number

    # ------------------------------------------------------------------ events

    @rx.event
    async def load(self):
        principal = await principal_for_page(self)
        if principal is None:
            return None
        tz = await tenant_timezone(self)
        self._session_id = await tab_session_id(self)
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
                    whatsapp.messages_fingerprint(session=session, tenant_id=viewer.tenant_id, window=MESSAGES_WINDOW),
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
        principal = await principal_for_page(self, Permission.LINK_WHATSAPP)
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
        principal = await principal_for_page(self, Permission.LINK_WHATSAPP)
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
        principal = await principal_for_page(self, Permission.LINK_WHATSAPP)
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

    @rx.event
    async def retry_media(self, message_id: int):
        """Download again a file that could not be downloaded."""
        return await self._decide(message_id, media.retry, "wa_media_retrying")

    # ------------------------------------------------------------------ filters

    async def _reload(self):
        principal = await principal_for_page(self)
        if principal is None:
            return
        self._load_messages(principal, await tenant_timezone(self))

    @rx.event
    async def set_filter(self, name: str, value: str):
        """Set one of :data:`FILTERS` and show what it matches."""
        if name not in FILTERS:
            return
        setattr(self, name, value)
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
    def set_draft(self, name: str, value: str):
        """Set one of the send form's :data:`DRAFT_FIELDS`."""
        if name in DRAFT_FIELDS:
            setattr(self, name, value)

    @rx.event
    async def send(self):
        return await self._queue(None)

    @rx.event
    async def send_file(self, files: list[rx.UploadFile]):
        """Send the chosen file with the message as its caption, through the same outbox."""
        return await self._queue(files[0] if files else None)

    async def _queue(self, upload: rx.UploadFile | None):
        principal = await principal_for_page(self)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        if self.send_mode == "client" and not self.send_client.isdigit():
            self.send_errors = {"client_id": tr(lang, "wa_choose_client")}
            return None
        try:
            # Built inside: a body past WhatsappSend's limit is Invalid on "body" already here.
            data = WhatsappSend(
                to=self.send_to if self.send_mode == "number" else None,
                client_id=int(self.send_client) if self.send_mode == "client" else None,
                body=self.send_body,
            )
            if upload is not None:
                raw = await upload.read()
                chunks = [raw[i : i + 1024 * 1024] for i in range(0, len(raw), 1024 * 1024)]
                with db.session_scope() as session:
                    outbox_files.send_file(
                        session=session, tenant_id=principal.tenant_id, actor=principal, data=data,
                        filename=getattr(upload, "filename", None) or getattr(upload, "name", None) or "file",
                        mime=upload.content_type,
                        chunks=chunks,
                    )
            else:
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
        if upload is not None:
            return [rx.clear_selected_files("wa_file"), rx.toast.info(tr(lang, "wa_queued"))]
        return rx.toast.info(tr(lang, "wa_queued"))
