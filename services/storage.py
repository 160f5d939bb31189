"""Where files people send or record are kept: one small interface, encrypted at rest.

:class:`Store` is what call recordings and WhatsApp media are written to and read from.
:class:`LocalEncryptedStore` keeps each file under ``<WATHEEQ_DATA_DIR>/store`` encrypted
with :func:`services.security.encrypt_stream` (chunked AES-256-GCM under the project's
key ring), so a range read decrypts only the chunks it needs; an S3-compatible store can
implement the same protocol later. Storage keys are chosen by services (never a path a
user typed) and must match :data:`KEY_PATTERN`; the key is bound into each file's
encryption, so a file copied under another key does not decrypt.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from services import config, security

# Lowercase segments joined by "/", each starting with a letter or digit (so never "." or
# ".."), at most 6 segments: "recordings/t12/2026/11/30/r-5f3a.wav".
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}(/[a-z0-9][a-z0-9_.-]{0,127}){0,5}$")
MAX_KEY_LENGTH = 255
_SUFFIX = ".wqs"


class StorageError(RuntimeError):
    """A file could not be stored or read (the message names the key, never its content)."""


class NotStored(StorageError):
    """No file is stored under this key."""


class InvalidKey(StorageError, ValueError):
    """A storage key that does not match :data:`KEY_PATTERN`."""


class CorruptFile(StorageError):
    """A stored file failed authentication: tampered with, truncated, or its key is not configured."""


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    sha256: str
    # The id of the key the file is sealed under (services.security, in the file's header).
    key_id: str = ""


class Store(Protocol):
    """A blob store. ``purpose`` labels what a file is for ("call_recording", "whatsapp_media")
    and is needed again to read it."""

    def put(self, key: str, chunks: Iterable[bytes], *, purpose: str) -> StoredFile:
        """Store the bytes ``chunks`` yield under ``key`` (replacing any file there), atomically."""
        ...

    def size(self, key: str) -> int:
        """The stored file's size in bytes (of its content, not of its encrypted form)."""
        ...

    def open_range(self, key: str, start: int = 0, end_inclusive: int | None = None, *, purpose: str) -> Iterator[bytes]:
        """Bytes ``start`` .. ``end_inclusive`` of the file, as chunks. ValueError when the range
        lies outside the file; :class:`NotStored` and :class:`CorruptFile` are raised at once."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the file; False when there was none."""
        ...

    def reencrypt(self, key: str, *, purpose: str, new_key: security.Key) -> bool:
        """Seal the file again under ``new_key`` (key rotation); False when it already was."""
        ...

    def exists(self, key: str) -> bool: ...


def check_key(key: str) -> str:
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not KEY_PATTERN.match(key):
        raise InvalidKey("a storage key is lowercase letters, digits, '.', '_' and '-' in at most 6 '/'-separated segments")
    return key


def new_key(*parts: str, suffix: str = "") -> str:
    """A fresh key under ``parts`` ending in a random name: ``new_key("recordings", "t3")``."""
    return check_key("/".join([*parts, secrets.token_hex(12) + suffix]))


class LocalEncryptedStore:
    """Files on the local disk, each encrypted on its own, written by temp file + rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        *folders, name = check_key(key).split("/")
        return self.root.joinpath(*folders, name + _SUFFIX)

    @staticmethod
    def _aad(purpose: str, key: str) -> str:
        return f"{purpose}:{key}"

    def put(self, key: str, chunks: Iterable[bytes], *, purpose: str) -> StoredFile:
        return self._write(key, chunks, purpose, None)

    def reencrypt(self, key: str, *, purpose: str, new_key: security.Key) -> bool:
        reader, f = self._reader(key, purpose)
        try:
            if reader.key_id == new_key.kid:
                return False
            self._write(key, self._stream(key, reader.read_range(0), f), purpose, new_key)
        finally:
            f.close()
        return True

    def _write(self, key: str, chunks: Iterable[bytes], purpose: str, seal_with: security.Key | None) -> StoredFile:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest = hashlib.sha256()
        size = 0

        def measured() -> Iterator[bytes]:
            nonlocal size
            for piece in chunks:
                digest.update(piece)
                size += len(piece)
                yield piece

        seal_with = seal_with or security.current_key()
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                for sealed in security.encrypt_stream(measured(), purpose=self._aad(purpose, key), key=seal_with):
                    out.write(sealed)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StoredFile(key=key, size=size, sha256=digest.hexdigest(), key_id=seal_with.kid)

    def _reader(self, key: str, purpose: str) -> tuple[security.EncryptedReader, BinaryIO]:
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the caller's generator
        except FileNotFoundError:
            raise NotStored(f"nothing is stored under {key}") from None
        try:
            return security.EncryptedReader(f, purpose=self._aad(purpose, key)), f
        except security.DecryptionError as exc:
            f.close()
            raise CorruptFile(f"{key}: {exc}") from None

    def size(self, key: str) -> int:
        try:
            with open(self._path(key), "rb") as f:
                return security.stream_plaintext_size(f)
        except FileNotFoundError:
            raise NotStored(f"nothing is stored under {key}") from None
        except security.DecryptionError as exc:
            raise CorruptFile(f"{key}: {exc}") from None

    def open_range(self, key: str, start: int = 0, end_inclusive: int | None = None, *, purpose: str) -> Iterator[bytes]:
        reader, f = self._reader(key, purpose)
        try:
            parts = reader.read_range(start, end_inclusive)
        except ValueError:
            f.close()
            raise
        return self._stream(key, parts, f)

    @staticmethod
    def _stream(key: str, parts: Iterator[bytes], f: BinaryIO) -> Iterator[bytes]:
        try:
            for part in parts:
                yield part
        except security.DecryptionError as exc:
            raise CorruptFile(f"{key}: {exc}") from None
        finally:
            f.close()

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def data_dir() -> Path:
    return Path(config.get("WATHEEQ_DATA_DIR") or config.PROJECT_ROOT / "data")


def default_store() -> Store:
    """The store configured for this process: encrypted files under ``$WATHEEQ_DATA_DIR/store``."""
    return LocalEncryptedStore(data_dir() / "store")


class RangeNotSatisfiable(ValueError):
    """A requested byte range lies outside a stored file (HTTP 416); ``size`` is its length."""

    def __init__(self, size: int, what: str = "file") -> None:
        super().__init__(f"the range is outside the {what}'s {size} bytes")
        self.size = size


def resolve_range(start: int | None, end: int | None, size: int, *, what: str = "file") -> tuple[int, int, bool]:
    """HTTP byte-range semantics: (None, None) the whole file; (a, None) from a; (a, b) a..b,
    b capped at the end; (None, n) the last n bytes. Returns (first, last, partial)."""
    if start is None and end is None:
        return 0, size - 1, False
    if start is None:
        if not end or end <= 0 or size == 0:
            raise RangeNotSatisfiable(size, what)
        return max(0, size - end), size - 1, True
    if start >= size or (end is not None and end < start):
        raise RangeNotSatisfiable(size, what)
    return start, size - 1 if end is None else min(end, size - 1), True
