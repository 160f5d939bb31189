"""Dependencies shared by the routes, as ``Annotated`` aliases.

One database session per request: the principal lookup and the route's service calls
share it, and it commits after the route returns and before the response is sent, so a
client never sees success for a change that failed to commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from services import accounts, authz, db
from services.errors import AuthenticationFailed, Forbidden
from services.models import Principal

API_PREFIX = "/api/v1"

# Ids are 32-bit integers in PostgreSQL; a larger one can name no row, and handing it to
# the driver would fail inside the database instead of at the edge.
MAX_ID = 2**31 - 1


def get_session() -> Iterator[Session]:
    with db.session_scope() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

bearer_scheme = OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/auth/token", auto_error=False)
TokenDep = Annotated[str | None, Depends(bearer_scheme)]


def get_principal(session: SessionDep, token: TokenDep) -> Principal:
    if not token:
        raise AuthenticationFailed("not authenticated: send an Authorization: Bearer token")
    return accounts.principal_for_token(session=session, token=token)


PrincipalDep = Annotated[Principal, Depends(get_principal, scope="function")]


def get_admin(principal: PrincipalDep) -> Principal:
    # The route's service checks its own permission too; this refuses early and uniformly.
    if not authz.allowed(principal, "admin"):
        raise Forbidden("only an owner or an admin may do this")
    return principal


AdminDep = Annotated[Principal, Depends(get_admin, scope="function")]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
