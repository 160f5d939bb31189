"""Secrets at rest (AES-256-GCM with key ids), encrypted files (chunked AES-256-GCM with
range reads), signed short-lived links, password hashing (argon2), API tokens.

The one place that encrypts. Ciphertexts look like ``v1.<kid>.<base64url(nonce|ct)>``;
the key id lets ``rotate-key`` re-encrypt under a new key while old ciphertexts still
decrypt with the previous keys listed in ``WATHEEQ_PREVIOUS_SECRET_KEYS``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import BinaryIO

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services import config

_VERSION = "v1"
_NONCE_BYTES = 12


class SecretKeyError(RuntimeError):
    """The secret key is missing or malformed (the message never contains it)."""


class DecryptionError(RuntimeError):
    """A ciphertext could not be decrypted with any known key."""


@dataclass(frozen=True)
class _Key:
    kid: str
    raw: bytes


# The type of a parsed key (``parse_key``, ``current_key``), for signatures outside this module.
Key = _Key


def generate_key() -> str:
    """A new random 32-byte key, base64-encoded, as it goes in ``WATHEEQ_SECRET_KEY``."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def _parse_key(encoded: str, name: str) -> _Key:
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (ValueError, TypeError):
        raise SecretKeyError(f"{name} is not valid base64") from None
    if len(raw) != 32:
        raise SecretKeyError(f"{name} must decode to 32 bytes, got {len(raw)}")
    return _Key(kid=key_id(raw), raw=raw)


def key_id(raw: bytes) -> str:
    # A fingerprint that identifies the key without revealing it.
    return hashlib.sha256(b"watheeq-kid:" + raw).hexdigest()[:12]


def current_key() -> _Key:
    encoded = config.get("WATHEEQ_SECRET_KEY")
    if not encoded:
        raise SecretKeyError("WATHEEQ_SECRET_KEY is not set (the run command writes one into .env)")
    return _parse_key(encoded, "WATHEEQ_SECRET_KEY")


def _known_keys() -> dict[str, _Key]:
    keys = {}
    for i, part in enumerate((config.get("WATHEEQ_PREVIOUS_SECRET_KEYS") or "").split(",")):
        if part.strip():
            k = _parse_key(part, f"WATHEEQ_PREVIOUS_SECRET_KEYS[{i}]")
            keys[k.kid] = k
    cur = current_key()
    keys[cur.kid] = cur
    return keys


def encrypt_secret(plaintext: str, *, purpose: str, key: _Key | None = None) -> str:
    """Encrypt ``plaintext``; ``purpose`` is bound as associated data (a label, not secret)."""
    key = key or current_key()
    nonce = os.urandom(_NONCE_BYTES)
    ct = AESGCM(key.raw).encrypt(nonce, plaintext.encode("utf-8"), purpose.encode("utf-8"))
    body = base64.urlsafe_b64encode(nonce + ct).decode("ascii").rstrip("=")
    return f"{_VERSION}.{key.kid}.{body}"


def ciphertext_key_id(ciphertext: str) -> str:
    parts = ciphertext.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise DecryptionError("not a Watheeq ciphertext")
    return parts[1]


def decrypt_secret(ciphertext: str, *, purpose: str) -> str:
    kid = ciphertext_key_id(ciphertext)
    key = _known_keys().get(kid)
    if key is None:
        raise DecryptionError(f"no key with id {kid} is configured")
    body = ciphertext.split(".")[2]
    blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    try:
        pt = AESGCM(key.raw).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], purpose.encode("utf-8"))
    except InvalidTag:
        raise DecryptionError("ciphertext failed authentication") from None
    return pt.decode("utf-8")


def reencrypt_secret(ciphertext: str, *, purpose: str, new_key: _Key) -> str:
    return encrypt_secret(decrypt_secret(ciphertext, purpose=purpose), purpose=purpose, key=new_key)


def parse_key(encoded: str) -> _Key:
    return _parse_key(encoded, "key")


# --------------------------------------------------------------------------- passwords

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a wrong email costs the same time
# as a wrong password and does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("watheeq-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# --------------------------------------------------------------------------- API tokens

TOKEN_PREFIX = "wtq_"
DEFAULT_TOKEN_TTL = timedelta(hours=12)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


LINK_TOKEN_PREFIX = "wtqs_"


def new_link_token() -> str:
    """The secret of a one-time set-password link (a different prefix: it is never a bearer token)."""
    return LINK_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 bits of randomness: a plain SHA-256 is enough to store them.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_expiry(ttl: timedelta = DEFAULT_TOKEN_TTL) -> datetime:
    return datetime.now(timezone.utc) + ttl


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# --------------------------------------------------------------------------- files at rest
#
# Files (call recordings, WhatsApp media) are encrypted as a stream of fixed-size chunks,
# each sealed on its own with AES-256-GCM, so a range read decrypts only the chunks it
# covers. Layout: a header, then one sealed chunk per STREAM_CHUNK bytes of plaintext (the
# last one shorter, possibly empty, so even an empty file has one chunk).
#
#   header = b"WQS" | version (1) | key id (12, ascii) | chunk size (u32 BE) |
#            salt (16, random) | nonce prefix (8, random)
#
# Each file gets its own key, HKDF(master key, salt, purpose), so nonces never repeat
# across files; nonce = nonce prefix | chunk index (u32 BE). The associated data of a
# chunk is header | chunk index (u64 BE) | final flag (1 byte): a chunk moved to another
# place, a chunk from another file, a file cut at a chunk boundary (its new last chunk was
# sealed as "not final") or a header edited all fail authentication.

STREAM_CHUNK = 64 * 1024
_STREAM_MAGIC = b"WQS"
_STREAM_VERSION = 1
_TAG = 16
_HEADER = struct.Struct(">3sB12sI16s8s")
STREAM_HEADER_BYTES = _HEADER.size


class StreamError(DecryptionError):
    """An encrypted file is malformed, truncated, tampered with or sealed under an unknown key."""


def _stream_key(master: _Key, salt: bytes, purpose: str) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"watheeq-stream-v1:" + purpose.encode("utf-8")).derive(master.raw)
    return AESGCM(derived)


def _chunk_aad(header: bytes, index: int, final: bool) -> bytes:
    return header + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The input re-cut into pieces of exactly ``size`` bytes, the last one shorter."""
    buf = bytearray()
    for piece in chunks:
        buf += piece
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    yield bytes(buf)


def encrypt_stream(
    chunks: Iterable[bytes], *, purpose: str, key: _Key | None = None, chunk_size: int = STREAM_CHUNK
) -> Iterator[bytes]:
    """The encrypted form of the bytes ``chunks`` yield: the header, then one sealed chunk at a time.

    ``purpose`` (a label such as the file's storage key, not secret) must be given again to
    read the file. Memory stays at about one chunk whatever the file's size.
    """
    if not 16 <= chunk_size <= 16 * 1024 * 1024:
        raise ValueError("chunk_size must be between 16 bytes and 16 MiB")
    key = key or current_key()
    salt, prefix = os.urandom(16), os.urandom(8)
    header = _HEADER.pack(_STREAM_MAGIC, _STREAM_VERSION, key.kid.encode("ascii"), chunk_size, salt, prefix)
    aead = _stream_key(key, salt, purpose)
    yield header
    pieces = _rechunk(chunks, chunk_size)
    current = next(pieces)
    index = 0
    # One piece of look-ahead: the last chunk is sealed as final, so it must be known as last.
    for following in pieces:
        yield aead.encrypt(prefix + index.to_bytes(4, "big"), current, _chunk_aad(header, index, False))
        current, index = following, index + 1
        if index >= 2**32 - 1:
            raise ValueError("file too large for one encrypted stream")
    yield aead.encrypt(prefix + index.to_bytes(4, "big"), current, _chunk_aad(header, index, True))


def stream_plaintext_size(fileobj: BinaryIO) -> int:
    """The plaintext size of an encrypted file from its header and length alone (not
    authenticated: :class:`EncryptedReader` checks the file when it is read)."""
    fileobj.seek(0, os.SEEK_END)
    total = fileobj.tell()
    fileobj.seek(0)
    header = fileobj.read(STREAM_HEADER_BYTES)
    if len(header) != STREAM_HEADER_BYTES:
        raise StreamError("not an encrypted Watheeq file (too short)")
    chunk_size = _HEADER.unpack(header)[3]
    if header[:3] != _STREAM_MAGIC or not 16 <= chunk_size <= 16 * 1024 * 1024:
        raise StreamError("not an encrypted Watheeq file (bad header)")
    body = total - STREAM_HEADER_BYTES
    chunks = max(1, -(-body // (chunk_size + _TAG)))
    if body - (chunks - 1) * (chunk_size + _TAG) < _TAG:
        raise StreamError("encrypted file is truncated")
    return body - chunks * _TAG


class EncryptedReader:
    """Random access to an encrypted file: its plaintext size and any byte range of it.

    ``fileobj`` is a seekable binary file holding exactly what :func:`encrypt_stream`
    produced. Opening reads and checks the header and authenticates the final chunk, so a
    file cut short or sealed under an unknown key is refused before any byte is served.
    """

    def __init__(self, fileobj: BinaryIO, *, purpose: str) -> None:
        self._f = fileobj
        fileobj.seek(0, os.SEEK_END)
        total = fileobj.tell()
        fileobj.seek(0)
        header = fileobj.read(STREAM_HEADER_BYTES)
        if len(header) != STREAM_HEADER_BYTES:
            raise StreamError("not an encrypted Watheeq file (too short)")
        magic, version, kid_raw, chunk_size, salt, prefix = _HEADER.unpack(header)
        if magic != _STREAM_MAGIC or version != _STREAM_VERSION or not 16 <= chunk_size <= 16 * 1024 * 1024:
            raise StreamError("not an encrypted Watheeq file (bad header)")
        kid = kid_raw.decode("ascii", "replace")
        master = _known_keys().get(kid)
        if master is None:
            raise StreamError(f"no key with id {kid} is configured")
        body = total - STREAM_HEADER_BYTES
        sealed = chunk_size + _TAG
        self._chunks = max(1, -(-body // sealed))
        last_len = body - (self._chunks - 1) * sealed
        if last_len < _TAG:
            raise StreamError("encrypted file is truncated")
        self._header, self._prefix, self._chunk_size = header, prefix, chunk_size
        self._aead = _stream_key(master, salt, purpose)
        self.size = (self._chunks - 1) * chunk_size + last_len - _TAG
        self.key_id = kid
        self._chunk(self._chunks - 1)

    def _chunk(self, index: int) -> bytes:
        sealed = self._chunk_size + _TAG
        self._f.seek(STREAM_HEADER_BYTES + index * sealed)
        data = self._f.read(sealed)
        final = index == self._chunks - 1
        try:
            return self._aead.decrypt(self._prefix + index.to_bytes(4, "big"), data, _chunk_aad(self._header, index, final))
        except InvalidTag:
            raise StreamError("encrypted file failed authentication (tampered, truncated or another purpose)") from None

    def read_range(self, start: int, end_inclusive: int | None = None) -> Iterator[bytes]:
        """The plaintext bytes ``start`` .. ``end_inclusive`` (default: to the end), decrypting
        only the chunks they lie in. Raises ValueError for a range outside the file."""
        if self.size == 0 and start == 0 and end_inclusive is None:
            return iter(())
        end = self.size - 1 if end_inclusive is None else end_inclusive
        if not 0 <= start <= end < self.size:
            raise ValueError(f"range {start}-{end_inclusive} is outside a file of {self.size} bytes")
        return self._iter_range(start, end)

    def _iter_range(self, start: int, end: int) -> Iterator[bytes]:
        cs = self._chunk_size
        for index in range(start // cs, end // cs + 1):
            plain = self._chunk(index)
            lo = start - index * cs if index == start // cs else 0
            hi = end - index * cs + 1 if index == end // cs else cs
            yield plain[lo:hi]


# --------------------------------------------------------------------------- signed links


def _signing_key(key: _Key) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"watheeq-signed-link-v1").derive(key.raw)


def link_expiry(ttl: timedelta, now: datetime | None = None) -> datetime:
    """When a link signed now for at least ``ttl`` expires: the end of the ``ttl``-long
    window after ``now + ttl``. Every read of a page within one window signs the same link,
    so a page that re-reads (a pushed change) keeps its players and images on the same URL
    instead of reloading them; a link lives between ``ttl`` and ``2 × ttl``."""
    step = int(ttl.total_seconds())
    moment = int((now or datetime.now(timezone.utc)).timestamp()) + step
    return datetime.fromtimestamp(-(-moment // step) * step, timezone.utc)


def sign_link(subject: str, *, purpose: str, expires_at: datetime) -> str:
    """A token that proves ``subject`` (e.g. "user 4 may play recording 9") was vouched for by
    this server for ``purpose`` until ``expires_at``: ``<expiry>.<key id>.<hmac>``, URL-safe."""
    key = current_key()
    exp = int(expires_at.timestamp())
    mac = hmac.new(_signing_key(key), f"{purpose}\n{subject}\n{exp}".encode(), hashlib.sha256).digest()
    return f"{exp}.{key.kid}.{base64.urlsafe_b64encode(mac).decode('ascii').rstrip('=')}"


def verify_link(token: str, subject: str, *, purpose: str, now: datetime | None = None) -> bool:
    """Whether ``token`` was made by :func:`sign_link` for this subject and purpose and is unexpired."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 12:
        return False
    exp, kid, mac = int(parts[0]), parts[1], parts[2]
    if exp < int((now or datetime.now(timezone.utc)).timestamp()):
        return False
    try:
        key = _known_keys().get(kid)
    except SecretKeyError:
        return False
    if key is None:
        return False
    expected = hmac.new(_signing_key(key), f"{purpose}\n{subject}\n{exp}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.urlsafe_b64encode(expected).decode("ascii").rstrip("="), mac)
