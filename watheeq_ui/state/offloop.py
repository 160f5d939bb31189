"""Database and service work off the event loop: ``await offloop.run(fn, *args, **kwargs)``.

Every backend worker serves all its browsers from one event loop; a handler that queried
the database on the loop would stall every other tab of that worker for as long as the
query takes. Pages therefore call services only through :func:`run`, which runs ``fn`` on
a bounded thread pool (an architecture test checks that no page state calls a service
function any other way). The bound keeps a burst of events from opening more database
connections than the pool has (``WATHEEQ_OFFLOOP_THREADS``, default 16).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from services import db
from services.models import Principal

P = ParamSpec("P")
T = TypeVar("T")

THREADS_ENV = "WATHEEQ_OFFLOOP_THREADS"
DEFAULT_THREADS = 16

_pool: ThreadPoolExecutor | None = None


def _threads() -> int:
    try:
        value = int(os.environ.get(THREADS_ENV, DEFAULT_THREADS))
    except ValueError:
        return DEFAULT_THREADS
    return value if value > 0 else DEFAULT_THREADS


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="offloop")
    return _pool


async def run(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on the pool; its result or its exception, back on the loop."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool(), call)


async def call(service: Callable[..., T], principal: Principal | None = None, **kwargs: object) -> T:
    """``service(session=..., **kwargs)`` in its own unit of work (committed when it returns,
    rolled back when it raises), off the loop. With ``principal``, the firm (``tenant_id``)
    and the actor (``actor``) are passed too, to the services that take them."""
    takes = _parameters(service)
    if principal is not None:
        if "tenant_id" in takes:
            kwargs.setdefault("tenant_id", principal.tenant_id)
        if "actor" in takes:
            kwargs.setdefault("actor", principal)

    def work() -> T:
        with db.session_scope() as session:
            return service(session=session, **kwargs)

    return await run(work)


@functools.lru_cache(maxsize=512)
def _parameters(service: Callable[..., object]) -> frozenset[str]:
    return frozenset(inspect.signature(service).parameters)
