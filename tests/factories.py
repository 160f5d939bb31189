"""Small factories for test data; each flushes so ids are set, and commits nothing."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sqlmodel import Session

from services import security
from datetime import datetime
from pathlib import Path
from typing import Any

from services.models import (
    Call,
    CallDirection,
    CallStatus,
    Case,
    Client,
    MessageDirection,
    MessageStatus,
    Principal,
    Role,
    SipExtension,
    Tenant,
    User,
    WhatsappMessage,
    utcnow,
)

_seq = itertools.count(1)
# Hashing with argon2 is slow on purpose; tests reuse one hash.
_PASSWORD = "correct horse battery staple"
_PASSWORD_HASH = security.hash_password(_PASSWORD)


def make_tenant(session: Session, name: str | None = None, *, region: str = "SA", timezone: str = "Asia/Riyadh") -> Tenant:
    n = next(_seq)
    tenant = Tenant(name=name or f"Firm {n}", slug=f"firm-{n}", region=region, timezone=timezone)
    session.add(tenant)
    session.flush()
    return tenant


def make_user(session: Session, tenant: Tenant, role: Role = Role.AGENT, *, email: str | None = None, full_name: str | None = None, active: bool = True) -> User:
    n = next(_seq)
    user = User(
        tenant_id=tenant.id,
        email=email or f"user{n}@firm{tenant.id}.test",
        full_name=full_name or f"{role.value.title()} {n}",
        role=role,
        password_hash=_PASSWORD_HASH,
        active=active,
    )
    session.add(user)
    session.flush()
    return user


def principal_of(user: User) -> Principal:
    return Principal(user_id=user.id, tenant_id=user.tenant_id, role=user.role, email=user.email, full_name=user.full_name)


def make_client(session: Session, tenant: Tenant, *, name: str | None = None, phone: str = "0501234567") -> Client:
    from services import phones

    n = next(_seq)
    client = Client(tenant_id=tenant.id, name=name or f"Client {n}", phone=phone, phone_e164=phones.try_normalise(phone, tenant.region))
    session.add(client)
    session.flush()
    return client


def make_case(session: Session, tenant: Tenant, client: Client | None = None, *, title: str | None = None) -> Case:
    n = next(_seq)
    case = Case(tenant_id=tenant.id, client_id=client.id if client else None, title=title or f"Case {n}", reference=f"C-{n}")
    session.add(case)
    session.flush()
    return case



@dataclass
class Firm:
    """A tenant with one user of every role (the shape most tests start from)."""

    tenant: Tenant
    users: dict[Role, User]

    def principal(self, role: Role) -> Principal:
        return principal_of(self.users[role])

    @property
    def owner(self) -> Principal:
        return self.principal(Role.OWNER)

    @property
    def admin(self) -> Principal:
        return self.principal(Role.ADMIN)

    @property
    def manager(self) -> Principal:
        return self.principal(Role.MANAGER)

    @property
    def agent(self) -> Principal:
        return self.principal(Role.AGENT)


def make_firm(session: Session, name: str | None = None, **tenant: Any) -> Firm:
    """A new tenant (``tenant`` as for :func:`make_tenant`) with an owner, an admin, a manager and an agent."""
    made = make_tenant(session, name, **tenant)
    return Firm(made, {role: make_user(session, made, role) for role in Role})

# --------------------------------------------------------------------------- svccore: extension, call, message


def make_extension(
    session: Session, user: User, *, extension: str | None = None, password: str = "sip-secret", display_name: str = ""
) -> SipExtension:
    """The user's SIP extension with ``password`` stored encrypted, as the service stores it."""
    from services import key_rotation

    ext = SipExtension(
        tenant_id=user.tenant_id,
        user_id=user.id,
        extension=extension or str(1000 + next(_seq)),
        display_name=display_name,
        password_encrypted=security.encrypt_secret(password, purpose=key_rotation.SIP_PASSWORD_PURPOSE),
    )
    session.add(ext)
    session.flush()
    return ext


def make_call(
    session: Session,
    tenant: Tenant,
    *,
    agent: User | Principal | None = None,
    direction: CallDirection = CallDirection.INBOUND,
    status: CallStatus = CallStatus.COMPLETED,
    remote_number: str = "0501234567",
    started_at: datetime | None = None,
    **fields: Any,
) -> Call:
    """A call row as stored (no service rules applied): any column can be set through ``fields``."""
    agent_id = agent.user_id if isinstance(agent, Principal) else (agent.id if agent else None)
    started_at = started_at or utcnow()
    fields.setdefault("updated_at", started_at)
    call = Call(
        tenant_id=tenant.id, agent_user_id=agent_id, direction=direction, status=status,
        remote_number=remote_number, started_at=started_at, **fields,
    )
    session.add(call)
    session.flush()
    return call


def make_message(
    session: Session,
    tenant: Tenant,
    *,
    direction: MessageDirection = MessageDirection.INBOUND,
    status: MessageStatus | None = None,
    chat_jid: str = "966501234567@s.whatsapp.net",
    body: str = "hello",
    **fields: Any,
) -> WhatsappMessage:
    """A WhatsApp message row as stored (RECEIVED inbound, SENT outbound unless ``status`` says)."""
    if status is None:
        status = MessageStatus.RECEIVED if direction is MessageDirection.INBOUND else MessageStatus.SENT
    message = WhatsappMessage(tenant_id=tenant.id, direction=direction, status=status, chat_jid=chat_jid, body=body, **fields)
    session.add(message)
    session.flush()
    return message


# --------------------------------------------------------------------------- end svccore


PASSWORD = _PASSWORD


# --------------------------------------------------------------------------- recordings


def make_wav(path: Path, seconds: float, *, rate: int = 8000) -> Path:
    """A real WAV file made by sox (a 440 Hz tone, 16-bit mono), as the PBX lab records them."""
    import subprocess

    subprocess.run(
        ["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(path), "synth", str(seconds), "sine", "440"],
        check=True, capture_output=True,
    )
    return path


def make_stored_recording(session: Session, call: Call, data: bytes, *, store: Any = None, duration_seconds: int | None = None) -> "CallRecording":
    """A recording of ``call`` already fetched: ``data`` encrypted in ``store`` (default: the
    configured store), its blob, and its row pointing at it, as services.pbx.recordings stores them."""
    from services import blobs, storage
    from services.models import BlobKind, CallRecording
    from services.pbx import recordings

    store = store or storage.default_store()
    key = storage.new_key("recordings", f"t{call.tenant_id}", suffix=".wav")
    stored = store.put(key, [data], purpose=recordings.PURPOSE)
    blob = blobs.create(
        session=session, tenant_id=call.tenant_id, kind=BlobKind.RECORDING, stored=stored,
        content_type=recordings.sniff_content_type(data[:64], key),
    )
    rec = CallRecording(
        tenant_id=call.tenant_id, call_id=call.id, source_file=f"{key.rsplit('/', 1)[-1]}", blob_id=blob.id,
        duration_seconds=duration_seconds,
    )
    session.add(rec)
    session.flush()
    return rec


# --------------------------------------------------------------------------- case files


def make_received_file(
    session: Session, tenant: Tenant, client: Client | None, data: bytes, *, name: str = "notice.pdf", mime: str = "application/pdf", number: str = "+966555000111"
) -> WhatsappMessage:
    """A file a client (or, without ``client``, the number ``number``) sent over WhatsApp,
    downloaded and stored in the configured store as the sidecar stores it (services.whatsapp.media)."""
    from services import storage
    from services.whatsapp import media

    e164 = client.phone_e164 if client is not None and client.phone_e164 else number
    message = make_message(
        session,
        tenant,
        chat_jid=f"{e164.lstrip('+')}@s.whatsapp.net",
        remote_e164=e164,
        client_id=client.id if client is not None else None,
        body="",
        message_type="document",
        media_state=media.PENDING,
        media_name=name,
        media_mime=mime,
    )
    stored = storage.default_store().put(media.new_key(tenant.id, message.id), [data], purpose=media.PURPOSE)
    media.record_stored(session=session, tenant_id=tenant.id, message_id=message.id, stored=stored, mime=mime)
    session.refresh(message)
    return message
