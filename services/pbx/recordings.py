"""Call recordings: fetched from the PBX into encrypted storage, played under the rules, deleted
after the firm's retention period.

- :func:`fetch_pending` copies the files the ledger named (``CallRecording`` rows with a
  ``source_file`` and no stored file) from the firm's :class:`~services.pbx.records.CdrSource`
  into :func:`services.storage.default_store`, streaming (a recording never sits in memory).
  A failed fetch leaves the row pending with its error code; it is tried again after a
  doubling backoff, at most :data:`MAX_FETCH_ATTEMPTS` times.
- :func:`open_for` is the one way to read a recording: another firm's recording, or one of
  a call an agent was not on, is :class:`NotFound`; every read (play or download, with its
  byte range) is written to the audit log in the caller's transaction.
- Retention (deleting old recordings except those on legal hold) is
  :mod:`services.pbx.retention`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from services import accounts, audit, blobs, key_rotation, security, storage
# The byte-range rules and their 416 are the store's (one place for recordings and media).
from services.authz import Permission, allowed
from services.errors import AuthenticationFailed, Invalid, NotFound
from services.models import Blob, BlobKind, Call, CallLeg, CallRecording, Principal, utcnow
from services.pbx.records import CdrSource, CdrSourceError
from services.tenancy import get_owned, owned_by, tenant_select

log = logging.getLogger(__name__)

PURPOSE = key_rotation.CALL_RECORDING_PURPOSE
MAX_FETCH_ATTEMPTS = 6
# Doubled after each failure: 15 s, 30 s, 1, 2, 4 min (a file the PBX is still writing
# usually appears by the second attempt). The reconciler fetches after each batch of records
# and at each periodic catch-up.
FETCH_BACKOFF = timedelta(seconds=15)
FETCH_BATCH = 20
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
            CallRecording.blob_id.is_(None),  # type: ignore[union-attr]
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
        if rec is None or rec.blob_id is not None or rec.purged_at is not None:
            # The call was deleted, or the row was stored or purged meanwhile: keep no orphan.
            store.delete(key)
            return False
        duration = wav_duration(bytes(head.head), stored.size)
        blob = blobs.create(
            session=session, tenant_id=tenant_id, kind=BlobKind.RECORDING, stored=stored,
            content_type=sniff_content_type(bytes(head.head), name),
        )
        rec.blob_id = blob.id
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
        if rec is None or rec.blob_id is not None:
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


def delete_files_of_call(*, session: Session, tenant_id: int, call_id: int, store: storage.Store | None = None) -> int:
    """Delete the stored files (and their blobs) of a call's recordings (the call is being
    deleted; its rows go with it by cascade). Returns how many files were deleted."""
    ids = session.execute(
        sa.select(CallRecording.blob_id).where(
            owned_by(CallRecording, tenant_id), CallRecording.call_id == call_id, CallRecording.blob_id.is_not(None)  # type: ignore[union-attr]
        )
    ).scalars().all()
    if not ids:
        return 0
    store = store or storage.default_store()
    return sum(1 for blob_id in ids if blobs.delete(session=session, tenant_id=tenant_id, blob_id=blob_id, store=store))


# --------------------------------------------------------------------------- reading


def _may_play(session: Session, tenant_id: int, principal: Principal, call_id: int) -> bool:
    if allowed(principal, Permission.PLAY_ANY_RECORDING):
        return True
    on_call = session.execute(
        sa.select(Call.id).where(owned_by(Call, tenant_id), Call.id == call_id, Call.agent_user_id == principal.user_id)
    ).first()
    # A leg the agent answered (talked on, before or after a transfer); a leg that only rang
    # them (a ring group's other phones) is not being on the call.
    on_leg = session.execute(
        sa.select(CallLeg.id)
        .where(
            owned_by(CallLeg, tenant_id), CallLeg.call_id == call_id, CallLeg.agent_user_id == principal.user_id,
            CallLeg.answered_at.is_not(None),  # type: ignore[union-attr]
        )
        .limit(1)
    ).first()
    return on_call is not None or on_leg is not None


def playable(principal: Principal, *, session: Session, tenant_id: int, recording_id: int) -> tuple[CallRecording, Blob]:
    """The recording and its file if ``principal`` may play it and it is stored; otherwise
    :class:`NotFound` (another firm's, a call the agent was not on, not fetched yet, or
    deleted by retention)."""
    if principal.tenant_id != tenant_id:
        raise NotFound("recording not found")
    rec = get_owned(session, CallRecording, tenant_id, recording_id, what="recording")
    if not _may_play(session, tenant_id, principal, rec.call_id):
        raise NotFound("recording not found")
    if rec.blob_id is None:
        raise NotFound("the recording is not stored: it is still being fetched from the PBX, or was deleted after the retention period")
    return rec, get_owned(session, Blob, tenant_id, rec.blob_id, what="recording")


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
) -> blobs.BlobStream:
    """The recording's bytes ``start``..``end`` (see :func:`resolve_range`) for ``principal``,
    audited as ``recording.<action>`` ("play" or "download") with the range served."""
    if action not in ACTIONS:
        raise Invalid("action", "play or download")
    store = store or storage.default_store()
    rec, blob = playable(principal, session=session, tenant_id=tenant_id, recording_id=recording_id)
    assert rec.id is not None
    name = f"call-{rec.call_id}-recording-{rec.id}{_suffix(blob.storage_key) or '.bin'}"
    stream = blobs.open_stream(blob, start=start, end=end, filename=name, what="recording", store=store)
    audit.record(
        session=session,
        tenant_id=tenant_id,
        actor=principal,
        action=f"recording.{action}",
        object_type="call_recording",
        object_id=rec.id,
        detail={"call_id": rec.call_id, "range": f"{stream.start}-{stream.end}" if stream.partial else "all", "bytes": max(0, stream.end - stream.start + 1)},
    )
    return stream


# --------------------------------------------------------------------------- signed links
#
# The dashboard keeps its session token in the browser's local storage, out of reach of an
# <audio> element, which sends no Authorization header. The side panel therefore hands it
# a link signed for (the tab's session, the recording, an expiry); each request through
# the link checks the session again (unexpired, unrevoked, the user active), so signing
# out or disabling the user ends the link at once, and the role rules of open_for apply.

LINK_TTL = timedelta(minutes=15)
_LINK_PURPOSE = "recording.link"


def _link_subject(session_id: int, recording_id: int) -> str:
    return f"session {session_id} recording {recording_id}"


def sign_link(*, session_id: int, recording_id: int, now: datetime | None = None) -> str:
    """The ``sig`` of a link to the recording for the dashboard session ``session_id``."""
    return security.sign_link(_link_subject(session_id, recording_id), purpose=_LINK_PURPOSE, expires_at=security.link_expiry(LINK_TTL, now))


def principal_for_link(*, session: Session, session_id: int, recording_id: int, signature: str) -> Principal:
    """Who a signed link acts for: :class:`AuthenticationFailed` unless the signature matches
    this session and recording and is unexpired, and the session is still valid."""
    if not security.verify_link(signature, _link_subject(session_id, recording_id), purpose=_LINK_PURPOSE):
        raise AuthenticationFailed("the recording link is invalid or has expired; open the call again")
    check = accounts.check_session(session=session, session_id=session_id, activity=True)
    if check.principal is None:
        raise AuthenticationFailed("the session of this recording link has ended")
    return check.principal
