"""One identity per person: senders WhatsApp names by LID (``digits@lid``, a hidden id) are tied
to their phone number once it is known, so a person's LID and phone messages are one
conversation and match the same client.

Mappings come from the gateway: a message that carries both (whatsmeow's ``SenderAlt``), a
history sync's conversation (``lidJID``/``pnJID``), or the sidecar asking the client later
(neonize ``get_pn_from_lid``, i.e. what whatsmeow has learned). Learning a mapping merges what
was split: the firm's messages stored under the LID chat move to the phone's chat, with the
number and the matched client. Only those three columns change, message by message id, in the
transaction that stores the mapping: nothing is deleted or inserted, so no message can be lost
or doubled (a message seen again later is still one row, by its WhatsApp id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlmodel import Session, select

from services import clients, db, phones
from services.models import WhatsappInbound, WhatsappLidMap, WhatsappMessage, utcnow
from services.tenancy import owned_by

LID_SERVER = "lid"


def lid_user(jid: str | None) -> str | None:
    """``digits@lid`` (device and agent dropped) of a LID JID; None for anything else."""
    if not jid:
        return None
    user, _, server = jid.partition("@")
    if server != LID_SERVER:
        return None
    user = user.split(":", 1)[0].split(".", 1)[0]
    return f"{user}@{LID_SERVER}" if user.isdigit() else None


def phone_chat(e164: str) -> str:
    return f"{phones.digits_of(e164)}@s.whatsapp.net"


def known(*, session: Session, tenant_id: int, lids: Iterable[str]) -> dict[str, str]:
    """The phone numbers already known for these LIDs."""
    wanted = sorted({lid for lid in lids if lid})
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        rows = session.exec(
            select(WhatsappLidMap.lid, WhatsappLidMap.e164).where(owned_by(WhatsappLidMap, tenant_id), WhatsappLidMap.lid.in_(wanted[start : start + 500]))  # type: ignore[attr-defined]
        ).all()
        found.update(dict(rows))
    return found


def learn(*, session: Session, tenant_id: int, mappings: dict[str, str]) -> int:
    """Remember LID → phone mappings and merge the messages split under those LIDs.

    A LID already mapped keeps its first number (WhatsApp ties one LID to one account).
    Returns how many stored messages moved to their phone's conversation.
    """
    clean = {lid_user(lid): e164 for lid, e164 in mappings.items() if lid_user(lid) and e164}
    clean.pop(None, None)
    if not clean:
        return 0
    existing = known(session=session, tenant_id=tenant_id, lids=clean)  # type: ignore[arg-type]
    new = {lid: e164 for lid, e164 in clean.items() if lid not in existing}
    if new:
        stmt = db.dialect_insert(session, WhatsappLidMap.__table__).on_conflict_do_nothing(index_elements=["tenant_id", "lid"])  # type: ignore[attr-defined]
        now = utcnow()
        session.execute(stmt, [{"tenant_id": tenant_id, "lid": lid, "e164": e164, "created_at": now} for lid, e164 in new.items()])
    mapping = {**clean, **existing}  # type: ignore[dict-item]
    matched = clients.match_numbers(session=session, tenant_id=tenant_id, numbers=set(mapping.values()))
    moved = 0
    for lid, e164 in mapping.items():
        moved += session.execute(
            sa.update(WhatsappMessage)
            .where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.chat_jid == lid)
            .values(chat_jid=phone_chat(e164), remote_e164=e164, client_id=matched.get(e164), updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount or 0
    return moved


def resolve(*, session: Session, tenant_id: int, messages: Sequence[WhatsappInbound]) -> list[WhatsappInbound]:
    """Messages as they should be stored: mappings they carry learned (and merged), and a LID
    sender whose number is known put in the phone's conversation with it."""
    carried = {lid_user(m.sender_lid): m.remote_e164 for m in messages if lid_user(m.sender_lid) and m.remote_e164}
    if carried:
        learn(session=session, tenant_id=tenant_id, mappings=carried)  # type: ignore[arg-type]
    lids = {lid_user(m.sender_lid) or lid_user(m.chat_jid) for m in messages}
    lids.discard(None)
    if not lids:
        return list(messages)
    numbers = known(session=session, tenant_id=tenant_id, lids=lids)  # type: ignore[arg-type]
    out = []
    for m in messages:
        lid = lid_user(m.sender_lid) or lid_user(m.chat_jid)
        e164 = m.remote_e164 or (numbers.get(lid) if lid else None)
        if e164 and lid_user(m.chat_jid):
            m = m.model_copy(update={"chat_jid": phone_chat(e164), "remote_e164": e164})
        elif e164 and not m.remote_e164:
            m = m.model_copy(update={"remote_e164": e164})
        out.append(m)
    return out


def unresolved(*, session: Session, tenant_id: int, limit: int = 20) -> list[str]:
    """LID conversations of the firm whose number is not known yet (to ask the client about)."""
    rows = session.exec(
        select(WhatsappMessage.chat_jid)
        .where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.chat_jid.like(f"%@{LID_SERVER}"))  # type: ignore[attr-defined]
        .distinct()
        .limit(limit)
    ).all()
    return [jid for jid in rows if lid_user(jid)]
