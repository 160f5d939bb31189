"""The hottest route, answered without FastAPI's per-request machinery.

Every call event of every softphone and PBX is a ``POST /calls``; at hundreds a second
FastAPI's own Python per request (matching the path through nested routers, solving the
dependencies, the body's and the response's plumbing) cost more of the interpreter lock's
time than the call's work (docs/PERFORMANCE.md, "REST API"). :class:`LeanRoute` is an
``APIRoute`` (so it is in the OpenAPI schema like any other, from the same endpoint and
models) that the app puts first among its routes and that handles a request itself:

- the bearer token exactly as :data:`deps.bearer_scheme` and :func:`deps.get_authorised`
  read and refuse it (401 before the body is judged);
- a JSON body validated by the route's own body field (FastAPI's validation, the same
  errors), handed with an :class:`deps.Authorised` to the endpoint itself, which checks the
  token with its work and commits in one thread hand-over;
- the result serialised by the route's own response field, status as declared.

Whatever it does not answer itself (a body that is not plainly JSON, or that fails
validation) goes to the route's ordinary FastAPI handler with the body it read, so every
refusal is FastAPI's and this module's own: same status, same shape, a bad token still 401
and never 422. Errors raised by the endpoint reach the app's handlers (``errors.install``)
as from any route. The middleware (request id, access line, CORS) is around it as around
every route. FastAPI's ``dependency_overrides`` do not reach it (none are used).
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from fastapi.exceptions import ResponseValidationError
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from watheeq_ui.api.deps import Authorised, bearer_scheme, get_authorised


class LeanRoute(APIRoute):
    """An ``async`` endpoint taking an :data:`deps.AuthorisedDep` and one JSON body model,
    answered without solving its dependencies (see the module's docstring)."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._auth_name, self._body_name = self._parameters()
        assert self.body_field is not None and self.response_field is not None and self.status_code is not None
        # The ordinary handler (FastAPI's, as APIRoute built it), for what this route leaves to FastAPI.
        self._fastapi_app = self.app
        self.app = self._handle

    def _parameters(self) -> tuple[str, str]:
        """The names of the endpoint's two parameters; any other shape is refused at import."""
        if not inspect.iscoroutinefunction(self.endpoint):
            raise TypeError(f"{self.name}: a LeanRoute's endpoint is async")
        calls = [d.call for d in self.dependant.dependencies]
        if calls != [get_authorised] or len(self.dependant.body_params) != 1 or self.dependant.query_params \
                or self.dependant.path_params or self.dependant.header_params or self.dependant.cookie_params:
            raise TypeError(f"{self.name}: a LeanRoute's endpoint takes an AuthorisedDep and one body model, nothing else")
        auth_name = self.dependant.dependencies[0].name
        assert auth_name is not None
        return auth_name, self.dependant.body_params[0].name

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        # The token first, as get_authorised does: refused here (AuthenticationFailed) before the body is read.
        auth: Authorised = await get_authorised(request, await bearer_scheme(request))
        body = await request.body()
        data = self._valid_body(request, body)
        if data is None:
            # Not plainly valid JSON: FastAPI reads the same bytes and answers as on every route.
            await self._fastapi_app(scope, _replay(body, receive), send)
            return
        result = await self.endpoint(**{self._auth_name: auth, self._body_name: data})
        response_field = self.response_field
        assert response_field is not None
        value, errors = response_field.validate(result, {}, loc=("response",))
        if errors:
            # A result the model refuses is FastAPI's ResponseValidationError, a 500, as on every route.
            raise ResponseValidationError(errors=errors, body=result)
        content = response_field.serialize_json(value, by_alias=self.response_model_by_alias)
        await Response(content=content, status_code=self.status_code, media_type="application/json")(scope, receive, send)

    def _valid_body(self, request: Request, body: bytes) -> Any:
        """The body as the endpoint's model when it is JSON (``application/json``) that the
        route's body field accepts; None otherwise (left to FastAPI, which says why)."""
        content_type = request.headers.get("content-type", "")
        if not body or content_type.partition(";")[0].strip().lower() != "application/json":
            return None
        try:
            decoded = json.loads(body)
        except Exception:  # malformed, or nested too deep to read (RecursionError): FastAPI's 400 or 422
            return None
        assert self.body_field is not None
        value, errors = self.body_field.validate(decoded, {}, loc=("body",))
        return None if errors else value


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for a handler that reads again a body already read: the same bytes once,
    then the connection's own messages (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def lean_route(router: APIRouter, prefix: str, path: str, endpoint: Any, **kwargs: Any) -> LeanRoute:
    """A :class:`LeanRoute` for ``endpoint`` declared as ``router``, included under ``prefix``,
    would declare it at ``path``: the same full path, tags, refusals and operation id. The
    app adds it to its own routes (``api.router.routes``), ahead of the routers."""
    return LeanRoute(
        prefix + router.prefix + path,
        endpoint,
        tags=[*router.tags, *kwargs.pop("tags", [])],
        responses={**router.responses, **kwargs.pop("responses", {})},
        dependencies=list(router.dependencies),
        **kwargs,
    )
