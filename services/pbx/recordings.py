"""Call recordings: fetched from the PBX into encrypted storage, played under the rules, deleted
after the firm's retention period.

- :func:`fetch_pending` copies the files the ledger named (``CallRecording`` rows with a
  ``source_file`` and no ``storage_key``) from the firm's :class:`~services.pbx.records.CdrSource`
  into :func:`services.storage.default_store`, streaming (a recording never sits in memory).
  A failed fetch leaves the row pending with its error code; it is tried again after a
  doubling backoff, at most :data:`MAX_FETCH_ATTEMPTS` times.
- :func:`open_for` is the one way to read a recording: another firm's recording, or one of
  a call an agent was not on, is :class:`NotFound`; every read (play or download, with its
  byte range) is written to the audit log in the caller's transaction.
- :func:`purge_expired` deletes the *file* of each recording older than the firm's
  retention period and clears its ``storage_key`` (the row stays with ``purged_at`` set, so
  the call still shows it had a recording and a PBX record read again does not fetch it
  back), except recordings of calls linked to a case on legal hold.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from services import audit, storage
from services.authz import Permission, allowed, require
from services.errors import Conflict, Invalid, NotFound
from services.models import Call, CallLeg, CallRecording, Case, PbxSettings, Principal, Tenant, utcnow
from services.pbx.records import CdrSource, CdrSourceError
from services.tenancy import get_owned, owned_by, owned_join, tenant_select

log = logging.getLogger(__name__)

PURPOSE = "call_recording"
MAX_FETCH_ATTEMPTS = 6
# Doubled after each failure: 30 s, 1, 2, 4, 8 min (a file the PBX is still writing
# usually appears by the second attempt).
FETCH_BACKOFF = timedelta(seconds=30)
FETCH_BATCH = 20
DEFAULT_RETENTION_DAYS = 365
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1, 3650
# A byte range is audited as it was served; the first bytes hold the WAV header to sniff.
_HEAD_BYTES = 64 * 1024
_EXTENSION = re.compile(r"\.[a-z0-9]{1,5}$")
ACTIONS = ("play", "download")

SessionFactory = Callable[[], AbstractContextManager[Session]]


# --------------------------------------------------------------------------- fetching


def wav_duration(head: bytes, total_size: int) -> float | None:
    """Seconds of audio in a RIFF/WAVE file from its first bytes and its size (None if not WAV).

    A recorder that could not seek back writes 0 or 0xFFFFFFFF as the data size: the data
    then runs to the end of the file.
    """
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        chunk_id, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk_id == b"fmt " and pos + 20 <= len(head):
            byte_rate = int.from_bytes(head[pos + 16 : pos + 20], "little")
        if chunk_id == b"data":
            available = total_size - (pos + 8)
            data_len = size if 0 < size <= available else available
            return data_len / byte_rate if byte_rate else None
        pos += 8 + size + (size & 1)
    return None


def sniff_content_type(head: bytes, name: str) -> str:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if head[:4] == b"OggS":
        return "audio/ogg"
    return {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".opus": "audio/ogg"}.get(
        _suffix(name), "application/octet-stream"
    )


def _suffix(name: str) -> str:
    match = _EXTENSION.search(name.lower())
    return match.group(0) if match else ""


class _Head:
    """Passes chunks through, keeping the first bytes for sniffing."""

    def __init__(self) -> None:
        self.head = bytearray()

    def tap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if len(self.head) < _HEAD_BYTES:
                self.head += chunk[: _HEAD_BYTES - len(self.head)]
            yield chunk


def _pending(session: Session, tenant_id: int, now: datetime, limit: int) -> list[tuple[int, str]]:
    rows = session.execute(
        sa.select(CallRecording.id, CallRecording.source_file)
        .where(
            owned_by(CallRecording, tenant_id),
            CallRecording.source_file.is_not(None),  # type: ignore[union-attr]
            CallRecording.storage_key.is_(None),  # type: ignore[union-attr]
            CallRecording.purged_at.is_(None),  # type: ignore[union-attr]
            CallRecording.fetch_attempts < MAX_FETCH_ATTEMPTS,
            sa.or_(CallRecording.fetch_after.is_(None), CallRecording.fetch_after <= now),  # type: ignore[union-attr]
        )
        .order_by(CallRecording.id)
        .limit(limit)
    ).all()
    return [(rid, name) for rid, name in rows]


def fetch_pending(
    *,
    session_factory: SessionFactory,
    tenant_id: int,
    source: CdrSource,
    store: storage.Store | None = None,
    now: datetime | None = None,
    limit: int = FETCH_BATCH,
) -> int:
    """Store the firm's recordings still at the PBX (at most ``limit``); returns how many were stored.

    ``session_factory()`` is a context manager yielding a session (``db.session_scope``);
    each row is committed on its own, so one bad file delays no other. Blocking: the
    reconciler runs it in a thread after each batch of records.
    """
    store = store or storage.default_store()
    now = now or utcnow()
    with session_factory() as session:
        pending = _pending(session, tenant_id, now, limit)
    return sum(1 for rec_id, name in pending if _fetch_one(session_factory, tenant_id, source, store, now, rec_id, name))


def _fetch_one(
    session_factory: SessionFactory, tenant_id: int, source: CdrSource, store: storage.Store, now: datetime, rec_id: int, name: str
) -> bool:
    key = storage.new_key("recordings", f"t{tenant_id}", suffix=_suffix(name))
    head = _Head()
    try:
        stored = store.put(key, head.tap(source.open_recording(name)), purpose=PURPOSE)
    except Exception as exc:  # noqa: BLE001 - any failure of the source or the disk leaves the row pending
        code = exc.code if isinstance(exc, CdrSourceError) else type(exc).__name__
        _record_failure(session_factory, tenant_id, rec_id, code[:32], now)
        return False
    with session_factory() as session:
        rec = session.exec(tenant_select(CallRecording, tenant_id).where(CallRecording.id == rec_id)).first()
        if rec is None or rec.storage_key is not None or rec.purged_at is not None:
            # The call was deleted, or the row was stored or purged meanwhile: keep no orphan.
            store.delete(key)
            return False
        duration = wav_duration(bytes(head.head), stored.size)
        rec.storage_key = stored.key
        rec.size_bytes = stored.size
        rec.sha256 = stored.sha256
        rec.content_type = sniff_content_type(bytes(head.head), name)
        if duration is not None:
            rec.duration_seconds = round(duration)
        rec.fetch_error = None
        rec.fetch_after = None
        session.add(rec)
        session.commit()
    log.info("recording %s of firm %s stored (%d bytes)", rec_id, tenant_id, stored.size)
    return True


def _record_failure(session_factory: SessionFactory, tenant_id: int, rec_id: int, code: str, now: datetime) -> None:
    with session_factory() as session:
        rec = session.exec(tenant_select(CallRecording, tenant_id).where(CallRecording.id == rec_id)).first()
        if rec is None or rec.storage_key is not None:
            return
        rec.fetch_attempts += 1
        rec.fetch_error = code
        rec.fetch_after = now + FETCH_BACKOFF * 2 ** (rec.fetch_attempts - 1)
        session.add(rec)
        session.commit()
        attempts = rec.fetch_attempts
    # The code only (a source's error code or an exception's class name): never a URL with
    # credentials, a cookie or a path the source was given.
    level = logging.ERROR if attempts >= MAX_FETCH_ATTEMPTS else logging.WARNING
    log.log(level, "recording %s of firm %s not fetched (attempt %d of %d): %s", rec_id, tenant_id, attempts, MAX_FETCH_ATTEMPTS, code)


# --------------------------------------------------------------------------- reading


class RangeNotSatisfiable(ValueError):
    """The requested byte range lies outside the recording (HTTP 416); ``size`` is its length."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the range is outside the recording's {size} bytes")
        self.size = size


@dataclass(frozen=True)
class RecordingStream:
    recording_id: int
    call_id: int
    content_type: str
    size: int
    # The bytes served, inclusive; partial when a range was asked for.
    start: int
    end: int
    partial: bool
    chunks: Iterator[bytes]
    filename: str


def _may_play(session: Session, tenant_id: int, principal: Principal, call_id: int) -> bool:
    if allowed(principal, Permission.PLAY_ANY_RECORDING):
        return True
    on_call = session.execute(
        sa.select(Call.id).where(owned_by(Call, tenant_id), Call.id == call_id, Call.agent_user_id == principal.user_id)
    ).first()
    on_leg = session.execute(
        sa.select(CallLeg.id).where(owned_by(CallLeg, tenant_id), CallLeg.call_id == call_id, CallLeg.agent_user_id == principal.user_id).limit(1)
    ).first()
    return on_call is not None or on_leg is not None


def playable(principal: Principal, *, session: Session, tenant_id: int, recording_id: int) -> CallRecording:
    """The recording if ``principal`` may play it and it is stored; otherwise :class:`NotFound`
    (another firm's, a call the agent was not on, not fetched yet, or deleted by retention)."""
    if principal.tenant_id != tenant_id:
        raise NotFound("recording not found")
    rec = get_owned(session, CallRecording, tenant_id, recording_id, what="recording")
    if not _may_play(session, tenant_id, principal, rec.call_id):
        raise NotFound("recording not found")
    if rec.storage_key is None:
        raise NotFound("the recording is not stored: it is still being fetched from the PBX, or was deleted after the retention period")
    return rec


def resolve_range(start: int | None, end: int | None, size: int) -> tuple[int, int, bool]:
    """HTTP byte-range semantics: (None, None) the whole file; (a, None) from a; (a, b) a..b,
    b capped at the end; (None, n) the last n bytes. Returns (first, last, partial)."""
    if start is None and end is None:
        return 0, size - 1, False
    if start is None:
        assert end is not None
        if end <= 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - end), size - 1, True
    if start >= size or (end is not None and end < start):
        raise RangeNotSatisfiable(size)
    return start, size - 1 if end is None else min(end, size - 1), True


def open_for(
    principal: Principal,
    *,
    session: Session,
    tenant_id: int,
    recording_id: int,
    start: int | None = None,
    end: int | None = None,
    action: str = "play",
    store: storage.Store | None = None,
) -> RecordingStream:
    """The recording's bytes ``start``..``end`` (see :func:`resolve_range`) for ``principal``,
    audited as ``recording.<action>`` ("play" or "download") with the range served."""
    if action not in ACTIONS:
        raise Invalid("action", "play or download")
    store = store or storage.default_store()
    rec = playable(principal, session=session, tenant_id=tenant_id, recording_id=recording_id)
    assert rec.storage_key is not None and rec.id is not None
    try:
        size = store.size(rec.storage_key)
    except storage.NotStored:
        raise NotFound("the recording's file is missing") from None
    first, last, partial = resolve_range(start, end, size)
    chunks = store.open_range(rec.storage_key, first, last if size else None, purpose=PURPOSE)
    audit.record(
        session=session,
        tenant_id=tenant_id,
        actor=principal,
        action=f"recording.{action}",
        object_type="call_recording",
        object_id=rec.id,
        detail={"call_id": rec.call_id, "range": f"{first}-{last}" if partial else "all", "bytes": max(0, last - first + 1)},
    )
    name = f"call-{rec.call_id}-recording-{rec.id}{_suffix(rec.storage_key) or '.bin'}"
    return RecordingStream(rec.id, rec.call_id, rec.content_type, size, first, last, partial, chunks, name)


# --------------------------------------------------------------------------- retention


def retention_days(*, session: Session, tenant_id: int) -> int:
    settings = session.exec(tenant_select(PbxSettings, tenant_id)).first()
    return settings.recording_retention_days if settings is not None else DEFAULT_RETENTION_DAYS


def set_retention_days(*, session: Session, tenant_id: int, actor: Principal, days: int) -> int:
    """Keep the firm's recordings ``days`` days (1..3650; OWNER/ADMIN), audited."""
    require(actor, Permission.MANAGE_RECORDINGS, tenant_id=tenant_id)
    if isinstance(days, bool) or not isinstance(days, int) or not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise Invalid("recording_retention_days", f"between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS} days")
    settings = session.exec(tenant_select(PbxSettings, tenant_id)).first()
    if settings is None:
        raise Conflict("set the PBX settings first: recordings come from the PBX", field="recording_retention_days")
    before = settings.recording_retention_days
    settings.recording_retention_days = days
    session.add(settings)
    audit.record(
        session=session, tenant_id=tenant_id, actor=actor, action="recording.retention", object_type="pbx_settings",
        object_id=settings.id, detail={"before": before, "after": days},
    )
    return days


def set_legal_hold(*, session: Session, tenant_id: int, actor: Principal, case_id: int, hold: bool) -> bool:
    """Put a case on legal hold (its calls' recordings are never deleted by retention) or
    release it (OWNER/ADMIN), audited. Another firm's case is :class:`NotFound`."""
    require(actor, Permission.MANAGE_RECORDINGS, tenant_id=tenant_id)
    case = get_owned(session, Case, tenant_id, case_id, what="case")
    if case.legal_hold != hold:
        case.legal_hold = hold
        session.add(case)
        audit.record(
            session=session, tenant_id=tenant_id, actor=actor, action="case.legal_hold", object_type="case",
            object_id=case.id, detail={"hold": hold},
        )
    return hold


def purge_expired(*, session: Session, tenant_id: int, now: datetime | None = None, store: storage.Store | None = None) -> int:
    """Delete the files of the firm's recordings of calls started before the retention
    period, except calls linked to a case on legal hold; returns how many were purged.

    The row stays with ``storage_key`` cleared and ``purged_at`` set; a recording still
    waiting to be fetched is marked too (it will not be fetched). The file goes first: if
    the caller's commit then fails, the next run finds the row again and finishes it.
    """
    store = store or storage.default_store()
    now = now or utcnow()
    days = retention_days(session=session, tenant_id=tenant_id)
    cutoff = now - timedelta(days=days)
    expired = session.exec(
        select(CallRecording)
        .join(Call, owned_join(Call, Call.id == CallRecording.call_id, tenant_id))
        .outerjoin(Case, owned_join(Case, Case.id == Call.case_id, tenant_id))
        .where(
            owned_by(CallRecording, tenant_id),
            CallRecording.purged_at.is_(None),  # type: ignore[union-attr]
            sa.or_(CallRecording.storage_key.is_not(None), CallRecording.source_file.is_not(None)),  # type: ignore[union-attr]
            Call.started_at < cutoff,
            sa.or_(Case.id.is_(None), Case.legal_hold.is_(False)),  # type: ignore[union-attr]
        )
        .order_by(CallRecording.id)
    ).all()
    for rec in expired:
        if rec.storage_key:
            store.delete(rec.storage_key)
        rec.storage_key = None
        rec.purged_at = now
        session.add(rec)
    if expired:
        session.flush()
        audit.record(
            session=session, tenant_id=tenant_id, actor=None, action="recording.purge", object_type="call_recording",
            detail={"count": len(expired), "retention_days": days, "ids": [r.id for r in expired[:200]]},
        )
    return len(expired)


def purge_all_firms(*, session_factory: SessionFactory, now: datetime | None = None, store: storage.Store | None = None) -> dict[int, int]:
    """The daily job: :func:`purge_expired` for every firm, each in its own transaction.
    Returns the count per firm that had something to purge."""
    now = now or utcnow()
    with session_factory() as session:
        # An operator job over every firm: the tenant list itself is not tenant-owned.
        tenant_ids = list(session.exec(select(Tenant.id).order_by(Tenant.id)).all())
    purged: dict[int, int] = {}
    for tenant_id in tenant_ids:
        assert tenant_id is not None
        try:
            with session_factory() as session:
                n = purge_expired(session=session, tenant_id=tenant_id, now=now, store=store)
                session.commit()
        except Exception:  # noqa: BLE001 - one firm's failure must not stop the others' purge
            log.exception("recording retention failed for firm %s", tenant_id)
            continue
        if n:
            purged[tenant_id] = n
            log.info("recording retention: %d recording(s) of firm %s deleted", n, tenant_id)
    return purged
