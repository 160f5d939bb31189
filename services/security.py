"""Secrets at rest (AES-256-GCM with key ids), password hashing (argon2), API tokens.

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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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
