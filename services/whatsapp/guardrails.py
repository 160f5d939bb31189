"""Guardrails against bans, on by default; each says where it comes from.

Sources (see /work/shared/research/whatsapp.md):
- whatsmeow's own guidance (README and issue threads tulir/whatsmeow, krypton-byte/neonize):
  WhatsApp bans numbers that behave like bots: bursts of identical sends, many messages to
  numbers that never wrote to the account or saved it, no read/typing signals.
- whatsmeow ``events.TemporaryBan`` (``Code`` = ``TempBanReason``: SEND_TO_TOO_MANY_PEOPLE,
  BLOCKED_BY_USERS, CREATED_TOO_MANY_GROUPS, SENT_TOO_MANY_SAME_MESSAGE, BROADCAST_LIST;
  ``Expire`` = how long it lasts): the client cannot connect until then.

What this module decides (framework-free, tenant explicit):
- human pace: :func:`typing_seconds` (a "typing…" chat presence for a time proportional to the
  text, as a person types ~ 5-8 characters a second) and :func:`gap_seconds` (a random gap
  between two sends, never a fixed period a server can spot);
- first contacts: a message to a chat that never wrote to the firm (and was never written to
  successfully) is a first contact; these go out with a longer gap (``first_contact_gap``) and
  at most ``first_contact_daily_cap`` a UTC day per firm (a firm setting, default 20);
- temporary bans: recorded with their reason code and expiry; nothing is sent until then.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from services import authz
from services.authz import Permission
from services.models import (
    MessageDirection,
    MessageStatus,
    Principal,
    WhatsappGuardrailsUpdate,
    WhatsappMessage,
    WhatsappSession,
    utcnow,
)
from services.tenancy import get_owned, owned_by, tenant_select
from services.whatsapp.delivery import mark_failed
from services.whatsapp.failures import Failure, sentence

# whatsmeow TempBanReason names (neonize Neonize_pb2.TemporaryBan.TempBanReason), with what
# each means for the firm; a code not listed shows as its name.
BAN_REASONS: dict[str, tuple[str, str]] = {
    "SEND_TO_TOO_MANY_PEOPLE": ("messages went to too many people who don't have the number saved", "أُرسلت رسائل إلى عدد كبير ممن لم يحفظوا الرقم"),
    "BLOCKED_BY_USERS": ("too many people blocked the number", "حظر الرقمَ عددٌ كبير من الأشخاص"),
    "CREATED_TOO_MANY_GROUPS": ("too many groups were created", "أُنشئت مجموعات كثيرة"),
    "SENT_TOO_MANY_SAME_MESSAGE": ("the same message was sent too many times", "أُرسلت الرسالة نفسها مرات كثيرة"),
    "BROADCAST_LIST": ("a broadcast list was used too much", "استُخدمت قائمة بث بكثرة"),
}

_SENT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ)


def typing_seconds(text: str, *, chars_per_second: float, max_seconds: float) -> float:
    """How long to show "typing…" before a text: proportional to its length, capped."""
    if chars_per_second <= 0 or max_seconds <= 0:
        return 0.0
    return min(max_seconds, len(text or "") / chars_per_second)


def gap_seconds(low: float, high: float) -> float:
    """A random gap between two sends (uniform in [low, high])."""
    if high <= 0:
        return 0.0
    return random.uniform(max(0.0, low), max(low, high))


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def first_contacts_today(session: Session, tenant_id: int, now: datetime | None = None) -> int:
    since = _day_start(now or utcnow())
    return session.execute(
        sa.select(sa.func.count()).select_from(WhatsappMessage).where(
            owned_by(WhatsappMessage, tenant_id), WhatsappMessage.first_contact_at >= since
        )
    ).scalar_one()


def is_first_contact(session: Session, tenant_id: int, chat_jid: str, message_id: int) -> bool:
    """Whether the chat never wrote to the firm and no other message to it ever went out."""
    known = session.execute(
        sa.select(WhatsappMessage.id).where(
            owned_by(WhatsappMessage, tenant_id),
            WhatsappMessage.chat_jid == chat_jid,
            WhatsappMessage.id != message_id,
            sa.or_(
                WhatsappMessage.direction == MessageDirection.INBOUND,
                WhatsappMessage.status.in_(_SENT),
                WhatsappMessage.first_contact_at.is_not(None),
            ),
        ).limit(1)
    ).first()
    return known is None


@dataclass(frozen=True)
class Admission:
    allowed: bool
    first_contact: bool


def admit(*, session: Session, tenant_id: int, message_id: int, chat_jid: str) -> Admission:
    """Before a send: a first contact past today's cap is FAILED with the cap's reason (visible
    on the message); an admitted first contact is stamped so the cap counts it."""
    row = get_owned(session, WhatsappMessage, tenant_id, message_id, what="message")
    if row.first_contact_at is not None:
        return Admission(True, True)  # admitted before (a retry): already counted
    if not is_first_contact(session, tenant_id, chat_jid, message_id):
        return Admission(True, False)
    line = session.exec(tenant_select(WhatsappSession, tenant_id)).first()
    cap = line.first_contact_daily_cap if line is not None else WhatsappSession().first_contact_daily_cap
    now = utcnow()
    if first_contacts_today(session, tenant_id, now) >= cap:
        mark_failed(
            session=session,
            tenant_id=tenant_id,
            message_id=message_id,
            error=f"daily cap of {cap} first contacts reached",
            final=True,
            code=Failure.FIRST_CONTACT_CAP,
        )
        return Admission(False, True)
    row.first_contact_at = now
    session.add(row)
    session.flush()
    return Admission(True, True)


def unread_inbound(*, session: Session, tenant_id: int, chat_jid: str, limit: int = 50) -> list[str]:
    """WhatsApp ids of the chat's received messages since the firm last answered it: read
    receipts for these go out before the answer (a person reads, then replies)."""
    last_answer = session.execute(
        sa.select(sa.func.max(WhatsappMessage.id)).where(
            owned_by(WhatsappMessage, tenant_id),
            WhatsappMessage.chat_jid == chat_jid,
            WhatsappMessage.direction == MessageDirection.OUTBOUND,
            WhatsappMessage.status.in_(_SENT),
        )
    ).scalar_one()
    query = sa.select(WhatsappMessage.wa_message_id).where(
        owned_by(WhatsappMessage, tenant_id),
        WhatsappMessage.chat_jid == chat_jid,
        WhatsappMessage.direction == MessageDirection.INBOUND,
        WhatsappMessage.wa_message_id.is_not(None),
        WhatsappMessage.message_type != "call",  # a call is no message to mark read
    )
    if last_answer is not None:
        query = query.where(WhatsappMessage.id > last_answer)
    rows = session.execute(query.order_by(WhatsappMessage.id.desc()).limit(limit)).scalars().all()
    return [r for r in reversed(rows) if r]


def record_temporary_ban(*, session: Session, tenant_id: int, code: str, expires: datetime | None) -> None:
    """whatsmeow said the number is temporarily banned: sending pauses until ``expires`` (when
    WhatsApp gives none, for a day: the shortest ban it is known to give is hours)."""
    line = session.exec(tenant_select(WhatsappSession, tenant_id)).first()
    if line is None:
        return
    line.banned_until = expires or utcnow() + timedelta(days=1)
    line.ban_code = (code or "UNKNOWN")[:64]
    line.updated_at = utcnow()
    session.add(line)
    session.flush()


def banned_until(*, session: Session, tenant_id: int) -> datetime | None:
    """The end of the firm's temporary ban while it lasts, else None."""
    line = session.exec(tenant_select(WhatsappSession, tenant_id)).first()
    if line is None or line.banned_until is None or line.banned_until <= utcnow():
        return None
    return line.banned_until


def ban_sentence(code: str | None, until: datetime | None, lang: str = "en") -> str:
    """'Sending paused: ...' with the reason and the end of the ban, in English or Arabic."""
    ar = lang == "ar"
    reason = BAN_REASONS.get(code or "", (code or "unknown", code or "غير معروف"))[1 if ar else 0]
    when = f"{until:%Y-%m-%d %H:%M} UTC" if until else ""
    if ar:
        return f"الإرسال متوقف: حظر واتساب هذا الرقم مؤقتًا ({code}: {reason}) حتى {when}. الرسائل في قائمة الانتظار."
    return f"Sending paused: WhatsApp temporarily banned this number ({code}: {reason}) until {when}. Messages stay queued."


def set_first_contact_cap(*, session: Session, tenant_id: int, actor: Principal, data: WhatsappGuardrailsUpdate) -> int:
    """Set the firm's daily cap on first contacts and whether WhatsApp calls are declined with
    an automatic text (OWNER/ADMIN); a field left out is kept. Returns the cap."""
    authz.require(actor, Permission.LINK_WHATSAPP, tenant_id=tenant_id)
    line = session.exec(tenant_select(WhatsappSession, tenant_id)).first()
    if line is None:
        line = WhatsappSession(tenant_id=tenant_id)
    if data.first_contact_daily_cap is not None:
        line.first_contact_daily_cap = data.first_contact_daily_cap
    if data.reject_calls is not None:
        line.reject_calls = data.reject_calls
    line.updated_at = utcnow()
    session.add(line)
    session.flush()
    return line.first_contact_daily_cap


__all__ = [
    "BAN_REASONS",
    "Admission",
    "admit",
    "ban_sentence",
    "banned_until",
    "first_contacts_today",
    "gap_seconds",
    "is_first_contact",
    "record_temporary_ban",
    "sentence",
    "set_first_contact_cap",
    "typing_seconds",
    "unread_inbound",
]
