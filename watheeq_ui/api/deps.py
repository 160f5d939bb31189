"""Dependencies shared by the routes, as ``Annotated`` aliases.

One database session per request: the principal lookup and the route's service calls
share it, and it commits after the route returns and before the response is sent, so a
client never sees success for a change that failed to commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Query
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

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


T = TypeVar("T")


class Authorised:
    """The caller and the request's session, resolved in one trip to the thread pool; the
    route then does its work and the commit in one more (:meth:`run`).

    What ``SessionDep`` + ``PrincipalDep`` + a sync route do (the same session, the token
    checked before the body is judged, the commit before the response), for the hottest
    routes: FastAPI runs each sync dependency, the route, the response's validation and the
    session's close in a thread of its own (five hand-overs between the event loop and the
    pool per request, each waiting for the interpreter lock), and at hundreds of requests a
    second those hand-overs cost more than the work (bench/bench_api.py, docs/PERFORMANCE.md).
    """

    def __init__(self, session: Session, principal: Principal) -> None:
        self.session = session
        self.principal = principal

    async def run(self, work: Callable[[Session, Principal], T]) -> T:
        def in_thread() -> T:
            try:
                result = work(self.session, self.principal)
                self.session.commit()
                return result
            except BaseException:
                self.session.rollback()
                raise

        return await run_in_threadpool(in_thread)


async def get_authorised(token: TokenDep) -> AsyncIterator[Authorised]:
    def open_and_check() -> Authorised:
        session = db.new_session()
        try:
            return Authorised(session, get_principal(session, token))
        except BaseException:
            session.close()
            raise

    authorised = await run_in_threadpool(open_and_check)
    try:
        yield authorised
    finally:
        if authorised.session.in_transaction():
            # Left open (the request ended before its work ran): the rollback may wait on the database.
            await run_in_threadpool(authorised.session.close)
        else:
            authorised.session.close()


AuthorisedDep = Annotated[Authorised, Depends(get_authorised, scope="function")]
