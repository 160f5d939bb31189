"""The WhatsApp page's "no gaps" panel: the firm's inbound counters (received, stored, failed),
the last reconnect's offline sync, and for owners/admins the messages that could not be stored
(kept raw), each with a button to store it again."""

from __future__ import annotations

import reflex as rx
from pydantic import BaseModel

from services import db, whatsapp
from services.authz import Permission, allowed
from services.errors import DomainError
from services.models import WhatsappInbound

from watheeq_ui import formatting
from watheeq_ui.components.ui import card, section_title
from watheeq_ui.error_messages import error_text
from watheeq_ui.i18n import t, t_fmt, tr
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import AuthState, principal_for_page, tenant_timezone
from watheeq_ui.state.lang import LangState

REFRESH_MS = 5000


class DeadLetterRow(BaseModel):
    id: int
    wa_message_id: str
    sender: str
    body: str
    error: str
    attempts: int
    at: str


def _row(letter, tz: str) -> DeadLetterRow:
    try:
        message = WhatsappInbound.model_validate_json(letter.payload)
        sender, body = message.remote_e164 or message.chat_jid, message.body
    except ValueError:
        sender, body = "", letter.payload[:200]
    return DeadLetterRow(
        id=letter.id,
        wa_message_id=letter.wa_message_id[:40],
        sender=sender,
        body=body[:300],
        error=letter.error[:200],
        attempts=letter.attempts,
        at=formatting.local_time(letter.last_attempt_at, tz),
    )


class WhatsappIngestState(rx.State):
    received: str = "0"
    stored: str = "0"
    failed: str = "0"
    failed_count: int = 0
    offline_sync_messages: str = ""
    offline_sync_at: str = ""
    dead_letters: list[DeadLetterRow] = []

    @rx.event
    async def refresh(self, _value: str = ""):
        # A timer: it reads, but does not keep an unattended tab signed in.
        principal = await principal_for_page(self, activity=False)
        if principal is None:
            return
        tz = await tenant_timezone(self)
        stats, letters = await offloop.run(_read_ingest, principal)
        self.received = formatting.count(stats.received)
        self.stored = formatting.count(stats.stored)
        self.failed = formatting.count(stats.failed)
        self.failed_count = stats.failed
        self.offline_sync_messages = formatting.count(stats.offline_sync_messages) if stats.offline_sync_messages is not None else ""
        self.offline_sync_at = formatting.local_time(stats.offline_sync_at, tz) if stats.offline_sync_at else ""
        self.dead_letters = [_row(letter, tz) for letter in letters]

    @rx.event
    async def retry(self, dead_letter_id: int):
        principal = await principal_for_page(self, Permission.LINK_WHATSAPP)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        try:
            await offloop.call(whatsapp.retry_dead_letter, principal, dead_letter_id=int(dead_letter_id))
        except DomainError as exc:
            return rx.toast.error(error_text(lang, exc))
        await self.refresh()
        return rx.toast.success(tr(lang, "wa_dead_letter_stored"))


def _figure(label_key: str, value: rx.Var, test_id: str, color: str = "gray") -> rx.Component:
    return rx.vstack(
        rx.text(t(label_key), size="1", color_scheme="gray"),
        rx.text(value, size="5", weight="bold", color_scheme=color, dir="ltr", data_testid=test_id),
        spacing="0",
    )


def _dead_letter(row: DeadLetterRow) -> rx.Component:
    return rx.hstack(
        rx.vstack(
            rx.hstack(
                rx.text(row.sender, size="2", weight="medium", dir="ltr"),
                rx.text(row.at, size="1", color_scheme="gray"),
                rx.badge(t_fmt("wa_attempts", n=row.attempts), variant="soft", color_scheme="gray", size="1"),
                spacing="2",
                align="center",
            ),
            rx.text(row.body, size="2", white_space="pre-wrap"),
            rx.text(row.error, size="1", color_scheme="gray", dir="ltr"),
            spacing="1",
            align="start",
        ),
        rx.spacer(),
        rx.button(
            t("wa_dead_letter_retry"),
            size="1",
            variant="soft",
            on_click=WhatsappIngestState.retry(row.id),
            data_testid="wa-dead-letter-retry",
        ),
        width="100%",
        align="center",
        data_testid="wa-dead-letter",
    )


def ingest_panel() -> rx.Component:
    return card(
        section_title("wa_ingest"),
        rx.hstack(
            _figure("wa_received", WhatsappIngestState.received, "wa-received"),
            _figure("wa_stored", WhatsappIngestState.stored, "wa-stored"),
            _figure("wa_failed", WhatsappIngestState.failed, "wa-failed", rx.cond(WhatsappIngestState.failed_count > 0, "red", "gray")),
            spacing="6",
            wrap="wrap",
        ),
        rx.cond(
            WhatsappIngestState.offline_sync_at != "",
            rx.text(
                t_fmt("wa_offline_sync", n=WhatsappIngestState.offline_sync_messages, x=WhatsappIngestState.offline_sync_at),
                size="2",
                color_scheme="gray",
                data_testid="wa-offline-sync",
            ),
        ),
        rx.cond(
            AuthState.is_admin,
            rx.vstack(
                rx.text(t("wa_dead_letters"), size="2", weight="medium"),
                rx.cond(
                    WhatsappIngestState.dead_letters.length() > 0,
                    rx.vstack(rx.foreach(WhatsappIngestState.dead_letters, _dead_letter), spacing="2", width="100%"),
                    rx.text(t("wa_dead_letters_none"), size="2", color_scheme="gray", data_testid="wa-dead-letters-none"),
                ),
                spacing="2",
                width="100%",
                margin_top="0.75rem",
            ),
        ),
        rx.moment(interval=REFRESH_MS, on_change=WhatsappIngestState.refresh, display="none"),
        data_testid="wa-ingest",
    )


def _read_ingest(principal):
    """The line's ingest figures and (for who may link it) the dead letters, off the loop."""
    with db.session_scope() as session:
        stats = whatsapp.get_ingest_stats(session=session, tenant_id=principal.tenant_id, actor=principal)
        letters = (
            whatsapp.list_dead_letters(session=session, tenant_id=principal.tenant_id, actor=principal, limit=50).data
            if allowed(principal, Permission.LINK_WHATSAPP)
            else []
        )
    return stats, letters
