"""Rotation of the secret key: every stored secret, its purpose, and the env file.

:data:`SECRET_COLUMNS` is the one list of encrypted columns; a new secret column is
added there (with the purpose its writer encrypts under) so ``rotate-key`` covers it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from services import security, storage
from services.models import Blob, BlobKind, PbxSettings, SipExtension, WhatsappMessage

SIP_PASSWORD_PURPOSE = "sip_extension.password"
TURN_CREDENTIAL_PURPOSE = "pbx_settings.turn_credential"
UCM_API_PASSWORD_PURPOSE = "pbx_settings.api_password"
# WhatsApp files (services.whatsapp.media) and the encrypted reference to download one again.
WHATSAPP_MEDIA_PURPOSE = "whatsapp_media"
WHATSAPP_MEDIA_REF_PURPOSE = "whatsapp_media_ref"

CURRENT_KEY_VAR = "WATHEEQ_SECRET_KEY"
PREVIOUS_KEYS_VAR = "WATHEEQ_PREVIOUS_SECRET_KEYS"


@dataclass(frozen=True)
class SecretColumn:
    model: type[SQLModel]
    column: str
    purpose: str


SECRET_COLUMNS: tuple[SecretColumn, ...] = (
    SecretColumn(SipExtension, "password_encrypted", SIP_PASSWORD_PURPOSE),
    SecretColumn(PbxSettings, "turn_credential_encrypted", TURN_CREDENTIAL_PURPOSE),
    SecretColumn(PbxSettings, "api_password_encrypted", UCM_API_PASSWORD_PURPOSE),
    SecretColumn(WhatsappMessage, "media_ref_encrypted", WHATSAPP_MEDIA_REF_PURPOSE),
)


# Files in services.storage: each has a Blob row (services.blobs) and is sealed with the
# purpose of its kind.
CALL_RECORDING_PURPOSE = "call_recording"
BLOB_PURPOSES: dict[BlobKind, str] = {
    BlobKind.RECORDING: CALL_RECORDING_PURPOSE,
    BlobKind.WHATSAPP_MEDIA: WHATSAPP_MEDIA_PURPOSE,
    BlobKind.CASE_DOCUMENT: "case_document",
}


@dataclass(frozen=True)
class StoredFileColumn:
    model: type[SQLModel]
    column: str
    purpose: str


# Files not kept as Blob rows, found through the column holding their storage key (none
# today: every file written since migration bl01a1b20008 has a blob).
STORED_FILE_COLUMNS: tuple[StoredFileColumn, ...] = ()


class RotationError(RuntimeError):
    """A stored secret could not be re-encrypted (names the row, never the secret)."""


def reencrypt_secrets(*, session: Session, new_key: str) -> dict[str, int]:
    """Re-encrypt every stored secret of every tenant under ``new_key``.

    Decrypts with the configured keys (current and previous). Nothing is written unless
    every secret decrypts, so a half-rotated database is impossible. Returns the count
    of re-encrypted values per ``table.column``. An operator task across all tenants,
    hence plain table statements rather than tenant-scoped queries.
    """
    key = security.parse_key(new_key)
    updates: list[tuple[sa.Table, str, int, str]] = []
    counts: dict[str, int] = {}
    for spec in SECRET_COLUMNS:
        table: sa.Table = spec.model.__table__  # type: ignore[attr-defined]
        col = table.c[spec.column]
        label = f"{table.name}.{spec.column}"
        counts[label] = 0
        rows = session.execute(sa.select(table.c.id, col).where(col.is_not(None)).order_by(table.c.id)).all()
        for row_id, ciphertext in rows:
            try:
                fresh = security.reencrypt_secret(ciphertext, purpose=spec.purpose, new_key=key)
            except security.DecryptionError as exc:
                raise RotationError(f"{label} of row {row_id} cannot be decrypted: {exc}") from None
            updates.append((table, spec.column, row_id, fresh))
            counts[label] += 1
    for table, column, row_id, fresh in updates:
        session.execute(sa.update(table).where(table.c.id == row_id).values({column: fresh}))
    session.flush()
    return counts


def reencrypt_files(*, session: Session, new_key: str, store: storage.Store | None = None) -> dict[str, int]:
    """Seal every stored file again under ``new_key``, one file at a time (each replaced
    atomically), after :func:`reencrypt_secrets`. A file that cannot be read stops the run
    with :class:`RotationError`; the files done so far are under the new key and the rest
    still under the old one, which stays among the previous keys. Each blob's ``key_id``
    is set as its file is done. Returns the count per ``blob.<kind>`` (and ``table.column``
    of files without a blob) of files re-sealed (already under ``new_key``: skipped)."""
    key = security.parse_key(new_key)
    store = store or storage.default_store()
    counts: dict[str, int] = {f"blob.{kind.value}": 0 for kind in BlobKind}
    blob = Blob.__table__  # type: ignore[attr-defined]
    rows = session.execute(sa.select(blob.c.id, blob.c.kind, blob.c.storage_key, blob.c.key_id).order_by(blob.c.id)).all()
    for blob_id, kind, storage_key, key_id in rows:
        label = f"blob.{kind}"
        try:
            counts[label] += store.reencrypt(storage_key, purpose=BLOB_PURPOSES[BlobKind(kind)], new_key=key)
        except storage.NotStored:
            continue  # deleted meanwhile (retention, a deleted call): nothing to rotate
        except storage.StorageError as exc:
            raise RotationError(f"the file of blob {blob_id} ({kind}) cannot be re-encrypted: {exc}") from None
        if key_id != key.kid:
            session.execute(sa.update(blob).where(blob.c.id == blob_id).values(key_id=key.kid))
    for spec in STORED_FILE_COLUMNS:
        table: sa.Table = spec.model.__table__  # type: ignore[attr-defined]
        col = table.c[spec.column]
        label = f"{table.name}.{spec.column}"
        counts[label] = 0
        for row_id, storage_key in session.execute(sa.select(table.c.id, col).where(col.is_not(None)).order_by(table.c.id)).all():
            try:
                counts[label] += store.reencrypt(storage_key, purpose=spec.purpose, new_key=key)
            except storage.NotStored:
                continue  # deleted meanwhile (retention, a deleted call): nothing to rotate
            except storage.StorageError as exc:
                raise RotationError(f"the file of {label} row {row_id} cannot be re-encrypted: {exc}") from None
    return counts


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` pairs of an env file, read the way :mod:`services.config` reads them."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def rotated_previous_keys(old_key: str, previous: str | None) -> list[str]:
    """The previous-keys list after rotating away from ``old_key``: newest first, no repeats."""
    keys = [old_key.strip()] + [k.strip() for k in (previous or "").split(",") if k.strip()]
    return list(dict.fromkeys(keys))


def write_env_keys(path: Path, *, current: str, previous: list[str]) -> None:
    """Set the two key variables in ``path``, keeping every other line; atomic, mode 0600."""
    wanted = {CURRENT_KEY_VAR: current, PREVIOUS_KEYS_VAR: ",".join(previous)}
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    out: list[str] = []
    written: set[str] = set()
    for line in lines:
        name = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else None
        if name in wanted:
            # A repeated line is dropped: a stale second copy must not outlive the rotation.
            if name not in written:
                out.append(f"{name}={wanted[name]}")
                written.add(name)
            continue
        out.append(line)
    out.extend(f"{name}={value}" for name, value in wanted.items() if name not in written)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".env.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(out) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
