# Over 400 lines: one state whose line status, watcher, list and send form share the page's data.
"""What the WhatsApp page knows and does: the line's status, the messages, the send form.

The page never talks to WhatsApp: it writes intent through the services (link, unlink,
queue a message); the sidecar does the rest. Nothing polls: when the sidecar (or another
tab) changes the firm's line or messages, this worker's live listener pushes the change to
the page (:meth:`WhatsappState.on_live_change`), which re-reads the line and, only if the
newest messages moved, the list. The QR countdown ticks from the worker's one ticker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

import reflex as rx
from reflex.config import get_config

from services import clients, db, live, whatsapp
from services.whatsapp import media, outbox_files
from services.authz import Permission
from services.errors import DomainError
from services.models import (
    ClientsPage,
    MessageDirection,
    Principal,
    WhatsappMessagePublic,
    WhatsappMessagesPage,
    WhatsappSend,
    WhatsappStatusPublic,
)
from services.timestamps import local_day_range
from services.whatsapp.gateway import qr_code_lifetimes

from watheeq_ui import formatting, live_tabs
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import tr
from watheeq_ui.pages.whatsapp.rows import ChatGroup, Option, chat_groups, qr_data_url
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tab_session_id, tenant_timezone
from watheeq_ui.state.lang import LangState
from watheeq_ui.state.whatsapp_line import WhatsappLineState

MESSAGES_WINDOW = 200


def media_url(session_id: int, message_id: int) -> str:
    """A link the page's <img>/<audio>/<video> can load: signed for the tab's session."""
    sig = media.sign_link(session_id=session_id, message_id=message_id)
    return f"{get_config().api_url}/api/v1/whatsapp/qr/messages/{message_id}/media?{urlencode({'session': session_id, 'sig': sig})}"
CLIENT_OPTIONS = 500
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

    _fingerprint: str = ""
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

    async def _load_messages(self, principal: Principal, tz: str) -> None:
        try:
            # The days are inclusive on the page; the range's end is the next day's midnight.
            date_from, date_to = local_day_range(self.filter_from, self.filter_to, tz)
            page, fingerprint = await offloop.run(
                _read_messages,
                principal,
                client_id=int(self.filter_client) if self.filter_client.isdigit() else None,
                direction=MessageDirection(self.filter_direction) if self.filter_direction != "any" else None,
                date_from=date_from,
                date_to=date_to,
            )
        except DomainError as exc:
            self.filter_errors = {exc.field or "client_id": exc.message}
            return
        self.filter_errors = {}
        self._fingerprint = fingerprint
        self.message_count = page.count
        session_id = self._session_id
        self.chats = chat_groups(page.data, tz, (lambda message_id: media_url(session_id, message_id)) if session_id else None)

    async def _load_client_options(self, principal: Principal) -> None:
        found = await offloop.run(_read_client_options, principal)
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
        line = await offloop.run(_read_line, principal)
        self._qr_payload = ""
        # What the page showed before this visit says nothing about the current code.
        self.status = ""
        self._apply_status(line, tz, None)
        self.confirm_unlink = False
        self.send_errors = {}
        await self._load_client_options(principal)
        await self._load_messages(principal, tz)
        await self._header_status()
        # Opened from a callback item (/whatsapp?to=+966…): the composer is addressed to that number.
        wanted_to = self.router.url.query_parameters.get("to", "")[:32]
        if wanted_to:
            self.send_mode, self.send_to = "number", wanted_to
        # From now on this worker pushes the firm's WhatsApp changes to the page (live_tabs).
        live_tabs.follow(self, principal.tenant_id, principal.user_id, "whatsapp")
        if self._qr_expires:
            live_tabs.tick_every_second(self)
        return None

    @rx.event
    def stop_watching(self):
        """The page was left: nothing more is pushed to it."""
        live_tabs.unfollow(self)

    async def on_live_change(self, change: live.Change) -> None:
        """Pushed when the firm's WhatsApp changed (the sidecar or another tab wrote): the line
        and, if the newest messages moved, the list are read again. Not a browser event."""
        principal = await principal_for_page(self, activity=False)
        if principal is None:
            return
        tz = await tenant_timezone(self)
        line, fingerprint = await offloop.run(_read_line_and_fingerprint, principal)
        qr_image = None
        if line.qr_payload and line.qr_payload != self._qr_payload:
            # ~15 ms of CPU: off the event loop too.
            qr_image = await offloop.run(qr_data_url, line.qr_payload)
        before = (self.status, self.phone_number)
        self._apply_status(line, tz, qr_image)
        if (self.status, self.phone_number) != before:
            await self._header_status()
        if fingerprint != self._fingerprint:
            await self._load_messages(principal, tz)
        if self._qr_expires:
            live_tabs.tick_every_second(self)

    def on_tick(self) -> bool:
        """Once a second while a QR code is shown (live_tabs' ticker; no database read): the
        seconds left. False once there is nothing to count."""
        if not self._qr_expires:
            return False
        left = self._seconds_left()
        if left != self.qr_seconds_left:
            self.qr_seconds_left = left
        return left > 0

    @rx.event
    async def link(self):
        principal = await principal_for_page(self, Permission.LINK_WHATSAPP)
        if principal is None:
            return None
        tz = await tenant_timezone(self)
        line = await offloop.call(whatsapp.init_session, principal)
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
        line = await offloop.call(whatsapp.disconnect, principal)
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
        detail = await offloop.call(whatsapp.get_error_detail, principal)
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
            await offloop.call(decide, principal, message_id=message_id)
        except DomainError as exc:
            return rx.toast.error(error_text(lang, exc))
        await self._load_messages(principal, await tenant_timezone(self))
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
        await self._load_messages(principal, await tenant_timezone(self))

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
                await offloop.call(
                    outbox_files.send_file,
                    principal,
                    data=data,
                    filename=getattr(upload, "filename", None) or getattr(upload, "name", None) or "file",
                    mime=upload.content_type,
                    chunks=chunks,
                )
            else:
                await offloop.call(whatsapp.send_message, principal, data=data)
        except DomainError as exc:
            # Invalid names its field; "not connected" is shown under the send button.
            self.send_errors = {exc.field or "status": error_text(lang, exc)}
            return None
        self.send_errors = {}
        self.send_body = ""
        # Shown at once as pending; pushed changes move it along as the sidecar sends it.
        await self._load_messages(principal, await tenant_timezone(self))
        if upload is not None:
            return [rx.clear_selected_files("wa_file"), rx.toast.info(tr(lang, "wa_queued"))]
        return rx.toast.info(tr(lang, "wa_queued"))


# ---------------------------------------------------------------------- reads (run off the loop)


def _read_line(principal: Principal) -> WhatsappStatusPublic:
    with db.session_scope() as session:
        return whatsapp.get_session_status(session=session, tenant_id=principal.tenant_id, actor=principal)


def _read_line_and_fingerprint(principal: Principal) -> tuple[WhatsappStatusPublic, str]:
    with db.session_scope() as session:
        return (
            whatsapp.get_session_status(session=session, tenant_id=principal.tenant_id, actor=principal),
            whatsapp.messages_fingerprint(session=session, tenant_id=principal.tenant_id, window=MESSAGES_WINDOW),
        )


def _read_messages(principal: Principal, **filters: object) -> tuple[WhatsappMessagesPage, str]:
    with db.session_scope() as session:
        page = whatsapp.get_messages(
            session=session, tenant_id=principal.tenant_id, actor=principal, limit=MESSAGES_WINDOW, **filters
        )
        return page, whatsapp.messages_fingerprint(session=session, tenant_id=principal.tenant_id, window=MESSAGES_WINDOW)


def _read_client_options(principal: Principal) -> ClientsPage:
    with db.session_scope() as session:
        return clients.list_clients(session=session, tenant_id=principal.tenant_id, limit=CLIENT_OPTIONS)
