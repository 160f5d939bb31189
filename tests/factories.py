"""Small factories for test data; each flushes so ids are set, and commits nothing."""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlmodel import Session

from services import security
from services.models import Case, Client, MessageDirection, MessageStatus, Principal, Role, Tenant, User, WhatsappMessage

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


# --- wapkg: make_message (svccore's shared factory takes its place at merge if it adds one)
def make_message(
    session: Session,
    tenant: Tenant,
    *,
    body: str = "hello",
    direction: MessageDirection = MessageDirection.INBOUND,
    status: MessageStatus | None = None,
    phone: str = "+966501234567",
    client: Client | None = None,
    created_at: datetime | None = None,
) -> WhatsappMessage:
    n = next(_seq)
    message = WhatsappMessage(
        tenant_id=tenant.id,
        wa_message_id=f"WA{n}",
        direction=direction,
        status=status or (MessageStatus.RECEIVED if direction == MessageDirection.INBOUND else MessageStatus.PENDING),
        chat_jid=f"{phone.lstrip('+')}@s.whatsapp.net",
        remote_e164=phone,
        client_id=client.id if client else None,
        body=body,
        **({"created_at": created_at} if created_at else {}),
    )
    session.add(message)
    session.flush()
    return message
# --- end wapkg


PASSWORD = _PASSWORD
