"""The rows of stored files (:class:`~services.models.Blob`): one made when a file is stored,
deleted with its file. Call recordings (services.pbx.recordings, retention, call deletion)
and WhatsApp files (services.whatsapp.media, outbox_files) go through here, so a file's
size, digest, type and sealing key are kept in one place. A case's files (services.case_files)
point at these rows too, and keep them: a blob a case keeps is not deleted."""

from __future__ import annotations

from sqlmodel import Session

from services import key_rotation, storage
from services.errors import Conflict
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
