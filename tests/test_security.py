"""Secrets at rest, key rotation, password hashing and tokens."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlmodel import Session, select

from services import key_rotation, security
from services.models import PbxSettings, SipExtension, WhatsappInbound, WhatsappMessage
from tests import factories

PURPOSE = key_rotation.SIP_PASSWORD_PURPOSE


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch):
    """Sets the current and previous keys for one test."""

    def use(current: str, previous: list[str] | None = None) -> None:
        monkeypatch.setenv("WATHEEQ_SECRET_KEY", current)
        if previous:
            monkeypatch.setenv("WATHEEQ_PREVIOUS_SECRET_KEYS", ",".join(previous))
        else:
            monkeypatch.delenv("WATHEEQ_PREVIOUS_SECRET_KEYS", raising=False)

    return use


def _tamper(ciphertext: str) -> str:
    version, kid, body = ciphertext.split(".")
    blob = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    blob[-1] ^= 0x01
    return f"{version}.{kid}." + base64.urlsafe_b64encode(bytes(blob)).decode().rstrip("=")


def test_secret_round_trips_and_is_not_stored_in_clear() -> None:
    ct = security.encrypt_secret("secret1001", purpose=PURPOSE)
    assert "secret1001" not in ct
    assert security.decrypt_secret(ct, purpose=PURPOSE) == "secret1001"


def test_same_secret_encrypts_differently_each_time() -> None:
    assert security.encrypt_secret("x", purpose=PURPOSE) != security.encrypt_secret("x", purpose=PURPOSE)


def test_tampered_ciphertext_is_rejected() -> None:
    ct = security.encrypt_secret("secret1001", purpose=PURPOSE)
    with pytest.raises(security.DecryptionError):
        security.decrypt_secret(_tamper(ct), purpose=PURPOSE)


def test_ciphertext_for_one_purpose_does_not_decrypt_for_another() -> None:
    ct = security.encrypt_secret("secret1001", purpose=PURPOSE)
    with pytest.raises(security.DecryptionError):
        security.decrypt_secret(ct, purpose=key_rotation.TURN_CREDENTIAL_PURPOSE)


def test_garbage_is_not_a_ciphertext() -> None:
    with pytest.raises(security.DecryptionError):
        security.decrypt_secret("plain-password", purpose=PURPOSE)


def test_old_ciphertext_decrypts_with_previous_keys_after_rotation(key_env) -> None:
    old, new = security.generate_key(), security.generate_key()
    key_env(old)
    ct = security.encrypt_secret("secret1002", purpose=PURPOSE)
    key_env(new, [old])
    assert security.decrypt_secret(ct, purpose=PURPOSE) == "secret1002"
    assert security.ciphertext_key_id(security.encrypt_secret("y", purpose=PURPOSE)) == security.parse_key(new).kid


def test_ciphertext_of_a_forgotten_key_fails_without_revealing_keys(key_env) -> None:
    old, new = security.generate_key(), security.generate_key()
    key_env(old)
    ct = security.encrypt_secret("secret1002", purpose=PURPOSE)
    key_env(new)
    with pytest.raises(security.DecryptionError) as err:
        security.decrypt_secret(ct, purpose=PURPOSE)
    assert old not in str(err.value) and new not in str(err.value) and "secret1002" not in str(err.value)


def test_malformed_key_errors_never_echo_the_key(key_env) -> None:
    bad = base64.b64encode(b"sixteen byte key").decode()
    key_env(bad)
    with pytest.raises(security.SecretKeyError) as err:
        security.encrypt_secret("x", purpose=PURPOSE)
    assert bad not in str(err.value)
    key_env("not base64 at all!!")
    with pytest.raises(security.SecretKeyError) as err:
        security.current_key()
    assert "not base64 at all!!" not in str(err.value)


def test_missing_key_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATHEEQ_SECRET_KEY")
    with pytest.raises(security.SecretKeyError):
        security.encrypt_secret("x", purpose=PURPOSE)


def test_passwords_hash_and_verify() -> None:
    h = security.hash_password("correct horse")
    assert "correct horse" not in h
    assert security.verify_password("correct horse", h)
    assert not security.verify_password("wrong horse", h)
    assert not security.verify_password("correct horse", None)
    assert not security.verify_password("correct horse", "not-a-hash")


def test_tokens_are_random_and_stored_only_as_hashes() -> None:
    a, b = security.new_token(), security.new_token()
    assert a != b and a.startswith(security.TOKEN_PREFIX)
    assert security.hash_token(a) == security.hash_token(a)
    assert a not in security.hash_token(a) and len(security.hash_token(a)) == 64


# --------------------------------------------------------------------------- rotation of stored secrets


def _extension(session: Session, tenant, number: str, password: str) -> SipExtension:
    return factories.make_extension(session, factories.make_user(session, tenant), extension=number, password=password)


def test_reencrypt_moves_every_secret_of_every_tenant_to_the_new_key(session: Session, key_env) -> None:
    old, new = security.generate_key(), security.generate_key()
    key_env(old)
    t1, t2 = factories.make_tenant(session), factories.make_tenant(session)
    _extension(session, t1, "1001", "secret1001")
    _extension(session, t2, "1001", "other-tenant-pw")
    session.add(PbxSettings(tenant_id=t1.id, host="127.0.0.1", turn_credential_encrypted=security.encrypt_secret(
        "turn-pw", purpose=key_rotation.TURN_CREDENTIAL_PURPOSE), api_password_encrypted=security.encrypt_secret(
        "ucm-api-pw", purpose=key_rotation.UCM_API_PASSWORD_PURPOSE)))
    session.add(PbxSettings(tenant_id=t2.id, host="127.0.0.1"))
    # A received WhatsApp file's download reference (it holds WhatsApp's media key).
    from services.whatsapp import delivery

    delivery.store_inbound(session=session, tenant_id=t1.id, messages=[WhatsappInbound(
        wa_message_id="M1", chat_jid="966500000001@s.whatsapp.net", remote_e164="+966500000001", media_ref="file:/x", media_mime="image/png")])
    session.flush()

    counts = key_rotation.reencrypt_secrets(session=session, new_key=new)
    session.commit()

    assert counts == {"sip_extension.password_encrypted": 2, "pbx_settings.turn_credential_encrypted": 1,
                      "pbx_settings.api_password_encrypted": 1, "whatsapp_message.media_ref_encrypted": 1}
    new_kid = security.parse_key(new).kid
    key_env(new)  # the old key is gone: only re-encrypted values can still be read
    passwords = {}
    for ext in session.exec(select(SipExtension)).all():
        assert security.ciphertext_key_id(ext.password_encrypted) == new_kid
        passwords[ext.tenant_id] = security.decrypt_secret(ext.password_encrypted, purpose=key_rotation.SIP_PASSWORD_PURPOSE)
    assert passwords == {t1.id: "secret1001", t2.id: "other-tenant-pw"}
    pbx = session.exec(select(PbxSettings).where(PbxSettings.tenant_id == t1.id)).one()
    assert security.decrypt_secret(pbx.turn_credential_encrypted, purpose=key_rotation.TURN_CREDENTIAL_PURPOSE) == "turn-pw"
    assert security.decrypt_secret(pbx.api_password_encrypted, purpose=key_rotation.UCM_API_PASSWORD_PURPOSE) == "ucm-api-pw"
    assert session.exec(select(PbxSettings).where(PbxSettings.tenant_id == t2.id)).one().turn_credential_encrypted is None
    ref = session.exec(select(WhatsappMessage.media_ref_encrypted)).one()
    assert security.decrypt_secret(ref, purpose=key_rotation.WHATSAPP_MEDIA_REF_PURPOSE) == "file:/x"


def test_reencrypt_changes_nothing_when_one_secret_cannot_be_read(session: Session, key_env) -> None:
    lost, old, new = security.generate_key(), security.generate_key(), security.generate_key()
    tenant = factories.make_tenant(session)
    key_env(old)
    readable = _extension(session, tenant, "1001", "secret1001")
    key_env(lost)
    unreadable = _extension(session, tenant, "1002", "secret1002")
    before = {readable.id: readable.password_encrypted, unreadable.id: unreadable.password_encrypted}
    session.commit()
    key_env(old)

    with pytest.raises(key_rotation.RotationError) as err:
        key_rotation.reencrypt_secrets(session=session, new_key=new)
    assert "secret1002" not in str(err.value) and lost not in str(err.value)
    assert f"row {unreadable.id}" in str(err.value)
    session.expire_all()
    after = {e.id: e.password_encrypted for e in session.exec(select(SipExtension)).all()}
    assert after == before


def test_env_file_rotation_keeps_other_lines_and_old_key(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# local\nWATHEEQ_DATABASE_URL=sqlite:///x.db\nWATHEEQ_SECRET_KEY=OLD\nWATHEEQ_SECRET_KEY=STALE\n")
    key_rotation.write_env_keys(path, current="NEW", previous=key_rotation.rotated_previous_keys("OLD", "OLDER, OLD"))
    values = key_rotation.read_env_file(path)
    assert values == {
        "WATHEEQ_DATABASE_URL": "sqlite:///x.db",
        "WATHEEQ_SECRET_KEY": "NEW",
        "WATHEEQ_PREVIOUS_SECRET_KEYS": "OLD,OLDER",
    }
    assert path.read_text().startswith("# local\n")
    assert path.stat().st_mode & 0o077 == 0


def test_every_encrypted_column_is_listed_for_rotation() -> None:
    from sqlmodel import SQLModel

    encrypted = {
        f"{table.name}.{col.name}"
        for table in SQLModel.metadata.sorted_tables
        for col in table.columns
        if col.name.endswith("_encrypted")
    }
    listed = {f"{spec.model.__table__.name}.{spec.column}" for spec in key_rotation.SECRET_COLUMNS}
    assert encrypted == listed
