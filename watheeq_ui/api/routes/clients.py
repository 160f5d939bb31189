"""The firm's client directory (what calls and messages are matched against)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from services import clients
from services.models import CasePublic, ClientBase, ClientCreate, ClientPublic, ClientsPage, max_length
from watheeq_ui.api.deps import IdPath, PrincipalDep, SessionDep
from watheeq_ui.api.errors import responses

router = APIRouter(prefix="/clients", tags=["clients"], responses=responses(401))


@router.post("", response_model=ClientPublic, status_code=status.HTTP_201_CREATED, responses=responses(400))
def create_client(session: SessionDep, principal: PrincipalDep, data: ClientCreate) -> ClientPublic:
    """Add a client; the phone is stored as written and in E.164 for matching."""
    return clients.create_client(session=session, tenant_id=principal.tenant_id, data=data)


@router.get("", response_model=ClientsPage)
def list_clients(
    session: SessionDep,
    principal: PrincipalDep,
    search: Annotated[str | None, Query(max_length=max_length(ClientBase, "name"), description="part of a name, or digits of a number")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ClientsPage:
    """Clients of the firm, searched by name or number."""
    return clients.list_clients(
        session=session, tenant_id=principal.tenant_id, search=search, limit=limit, offset=offset
    )


@router.get("/{client_id}", response_model=ClientPublic, responses=responses(404))
def get_client(session: SessionDep, principal: PrincipalDep, client_id: IdPath) -> ClientPublic:
    """One client of the firm."""
    return clients.get_client(session=session, tenant_id=principal.tenant_id, client_id=client_id)


@router.get("/{client_id}/cases", response_model=list[CasePublic], responses=responses(404))
def list_client_cases(session: SessionDep, principal: PrincipalDep, client_id: IdPath) -> list[CasePublic]:
    """The cases of one client."""
    # An unknown or other firm's client is a 404, not an empty list.
    clients.get_client(session=session, tenant_id=principal.tenant_id, client_id=client_id)
    return clients.list_cases(session=session, tenant_id=principal.tenant_id, client_id=client_id)
