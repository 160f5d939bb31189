"""The rows of stored files (:class:`~services.models.Blob`): one made when a file is stored,
deleted with its file. Call recordings (services.pbx.recordings, retention, call deletion)
and WhatsApp files (services.whatsapp.media, outbox_files) go through here, so a file's
size, digest, type and sealing key are kept in one place. A case's files (services.case_files)
point at these rows too, and keep them: a blob a case keeps is not deleted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlmodel import Session

from services import key_rotation, storage
from services.errors import Conflict, NotFound
from services.models import Blob, BlobKind, CaseFile
from services.tenancy import get_owned, tenant_select

# The purpose each kind of file is sealed with (services.storage; needed again to read it).
PURPOSES = key_rotation.BLOB_PURPOSES


def create(*, session: Session, tenant_id: int, kind: BlobKind, stored: storage.StoredFile, content_type: str) -> Blob:
    """The row of a file just stored (``store.put``'s answer); flushed, so it has its id. A
    file stored again under the same key (a download repeated after a crash) updates its row."""
    blob = session.exec(tenant_select(Blob, tenant_id).where(Blob.storage_key == stored.key)).first()
    if blob is None:
        blob = Blob(tenant_id=tenant_id, kind=kind.value, storage_key=stored.key)
    blob.kind = kind.value
    blob.content_type = (content_type or "application/octet-stream")[:128]
    blob.size_bytes = stored.size
    blob.sha256 = stored.sha256
    blob.key_id = stored.key_id
    session.add(blob)
    session.flush()
    return blob


def kept_on_a_case(*, session: Session, tenant_id: int, blob_id: int) -> bool:
    """Whether one of the firm's cases keeps this file (services.case_files): then it stays."""
    return session.exec(tenant_select(CaseFile, tenant_id).where(CaseFile.blob_id == blob_id).limit(1)).first() is not None


def delete(*, session: Session, tenant_id: int, blob_id: int, store: storage.Store | None = None) -> bool:
    """Delete the firm's blob ``blob_id`` and its file (rows pointing at it are set to NULL
    by the foreign key). Returns whether a file was there to delete. Conflict, and nothing
    deleted, while a case keeps the file (retention and purges must skip it)."""
    blob = get_owned(session, Blob, tenant_id, blob_id, what="file")
    if kept_on_a_case(session=session, tenant_id=tenant_id, blob_id=blob_id):
        raise Conflict("the file is kept on a case", field="blob_id")
    removed = (store or storage.default_store()).delete(blob.storage_key)
    session.delete(blob)
    session.flush()
    return removed


@dataclass(frozen=True)
class BlobStream:
    """Bytes ``start``..``end`` (inclusive) of a stored file, read as they are sent;
    ``partial`` when a range was asked for (the HTTP answer is then 206)."""

    content_type: str
    size: int
    start: int
    end: int
    partial: bool
    chunks: Iterator[bytes]
    filename: str


def open_stream(
    blob: Blob,
    *,
    start: int | None,
    end: int | None,
    filename: str,
    content_type: str | None = None,
    what: str = "file",
    store: storage.Store | None = None,
) -> BlobStream:
    """The bytes of ``blob`` in the range ``start``..``end`` (:func:`services.storage.resolve_range`;
    RangeNotSatisfiable outside the file), decrypted chunk by chunk. The caller has checked who
    may read it. NotFound when the file is gone from the store."""
    store = store or storage.default_store()
    try:
        size = store.size(blob.storage_key)
    except storage.NotStored:
        raise NotFound(f"the {what} is missing") from None
    first, last, partial = storage.resolve_range(start, end, size, what=what)
    chunks = store.open_range(blob.storage_key, first, last if size else None, purpose=PURPOSES[BlobKind(blob.kind)])
    name = filename.replace('"', "").replace("\n", " ")
    return BlobStream(content_type or blob.content_type or "application/octet-stream", size, first, last, partial, chunks, name)
