"""The API served by uvicorn on a loopback port, spoken to over real HTTP with httpx.

One server (in a thread) serves the whole session; it reads ``db.get_engine()`` per
request, so it follows the per-test ``engine`` fixture (SQLite file or PostgreSQL) that
``db.configure`` points it at.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest
import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services import accounts
from services.models import Case, Client, Role, Tenant, User
from tests import factories
from watheeq_ui.api.app import api

ROLES = (Role.OWNER, Role.ADMIN, Role.MANAGER, Role.AGENT)


@pytest.fixture(scope="session")
def api_base_url() -> Iterator[str]:
    # Port 0: the kernel picks a free port and uvicorn binds it itself; a socket bound
    # here and handed in answered about 40 ms slower per request (measured).
    server = uvicorn.Server(
        uvicorn.Config(api, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def http(engine: Engine, api_base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_base_url, timeout=20) as client:
        yield client


@dataclass
class Firm:
    """A tenant with a user of every role, a bearer token each, a client and a case."""

    tenant_id: int
    users: dict[Role, User]
    tokens: dict[Role, str]
    client: Client
    case: Case
    other_client: Client
    tenant: Tenant
    extra: dict[str, int] = field(default_factory=dict)

    def auth(self, role: Role = Role.OWNER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def user_id(self, role: Role) -> int:
        user_id = self.users[role].id
        assert user_id is not None
        return user_id


def _make_firm(session: Session, name: str, phone: str) -> Firm:
    made = factories.make_firm(session, name)
    tenant, users = made.tenant, made.users
    tokens = {
        role: accounts.issue_token(session=session, principal=factories.principal_of(user)) for role, user in users.items()
    }
    client = factories.make_client(session, tenant, name=f"{name} client", phone=phone)
    other_client = factories.make_client(session, tenant, name=f"{name} other client", phone="0559876543")
    case = factories.make_case(session, tenant, client, title=f"{name} case")
    assert tenant.id is not None
    return Firm(tenant.id, users, tokens, client, case, other_client, tenant)


@pytest.fixture
def firm(engine: Engine) -> Firm:
    with Session(engine, expire_on_commit=False) as session:
        made = _make_firm(session, "Alpha Law", "0501234567")
        session.commit()
    return made


@pytest.fixture
def rival(engine: Engine, firm: Firm) -> Firm:
    """A second firm: nothing of it may ever be visible to ``firm``."""
    with Session(engine, expire_on_commit=False) as session:
        made = _make_firm(session, "Beta Legal", "0501234567")
        session.commit()
    return made


@pytest.fixture
def expired_token(engine: Engine, firm: Firm) -> str:
    with Session(engine, expire_on_commit=False) as session:
        principal = factories.principal_of(firm.users[Role.OWNER])
        token = accounts.issue_token(session=session, principal=principal, ttl=timedelta(microseconds=1))
        session.commit()
    time.sleep(0.01)
    return token
