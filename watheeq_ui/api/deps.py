"""Dependencies shared by the routes, as ``Annotated`` aliases.

One database session per request: the principal lookup and the route's service calls
share it, and it commits after the route returns and before the response is sent, so a
client never sees success for a change that failed to commit.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Query, Request
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


NO_TOKEN_MESSAGE = "not authenticated: send an Authorization: Bearer token"


def get_principal(session: SessionDep, token: TokenDep) -> Principal:
    if not token:
        raise AuthenticationFailed(NO_TOKEN_MESSAGE)
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
    """The request's bearer token, checked in the same trip to the thread pool as the
    route's work (:meth:`run`): one hand-over between the event loop and the pool per request.

    What ``SessionDep`` + ``PrincipalDep`` + a sync route do (one session, the token and its
    user re-checked on every request, the commit before the response), for the hottest
    routes: FastAPI runs each sync dependency, the route, the response's validation and the
    session's close in a thread of its own, and at hundreds of requests a second those
    hand-overs cost more than the work (bench/bench_api.py, docs/PERFORMANCE.md).

    A token that cannot be one of ours is refused here, on the loop, before the body is
    judged; a well-formed one is looked up in :meth:`run`. Bad input to such a route is
    answered only after that lookup (:func:`refuse_unchecked_token`, called by the
    validation error's handler), so a bad token is 401 and never 422 here as on every route.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    async def run(self, work: Callable[[Session, Principal], T]) -> T:
        def in_thread() -> T:
            with db.session_scope() as session:
                return work(session, get_principal(session, self._token))

        # The request's context (its request id, for log lines written in the thread) goes with it.
        return await asyncio.get_running_loop().run_in_executor(_WORK_THREADS, contextvars.copy_context().run, in_thread)


    async def run_grouped(self, work: Callable[[Session, Principal], T]) -> T:
        """:meth:`run`, for a small write that can share its transaction and commit with the
        same route's other requests of the moment (:class:`db.GroupCommit`): the token is still
        checked for this request, in the transaction that does its work, and the answer waits
        for the commit."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        token = self._token

        def unit(session: Session) -> T:
            # A token that several requests of one group carry is looked up once, in the
            # transaction that does their work (the check holds for all of them at once).
            checked: dict[str, Principal] = session.info.setdefault(_CHECKED_TOKENS, {})
            principal = checked.get(token)
            if principal is None:
                principal = checked[token] = get_principal(session, token)
            return work(session, principal)

        def settle(result: T, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, done, result, error)

        db.group_commit.submit(unit, settle)
        return await done


# Where a group's session keeps the tokens it checked (Authorised.run_grouped).
_CHECKED_TOKENS = "watheeq.checked_tokens"


def _settle(done: asyncio.Future[T], result: T, error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)


# Authorised.run's threads, handed work straight from the event loop (anyio's pool, which
# run_in_threadpool uses, costs more of the loop's time per hand-over: a capacity limiter, a
# cancel scope, sniffing the async library). As many as that pool lends, 40: more than the
# requests a worker holds at once, so that on PostgreSQL every request's commit can wait for
# its flush in a thread of its own (the loop's default executor has cores + 4).
_WORK_THREADS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="watheeq-api")


# The scope key under which a request's token waits for its check in Authorised.run.
_UNCHECKED_TOKEN = "watheeq.unchecked_token"


async def get_authorised(request: Request, token: TokenDep) -> Authorised:
    if not token or not accounts.could_be_token(token):
        raise AuthenticationFailed(accounts.TOKEN_INVALID_MESSAGE if token else NO_TOKEN_MESSAGE)
    request.scope[_UNCHECKED_TOKEN] = token
    return Authorised(token)


async def refuse_unchecked_token(request: Request) -> None:
    """:class:`AuthenticationFailed` when the request was refused before an
    :class:`Authorised` route could check its token, and that token does not hold."""
    token = request.scope.get(_UNCHECKED_TOKEN)
    if token is None:
        return

    def check() -> None:
        # Nothing of the refused request is kept, not even the token's last use.
        with db.new_session() as session:
            get_principal(session, token)

    await run_in_threadpool(check)


AuthorisedDep = Annotated[Authorised, Depends(get_authorised, scope="function")]
