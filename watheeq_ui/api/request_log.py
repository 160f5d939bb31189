"""Request ids and one structured log line per API request.

Every request under the API gets an id: the caller's ``X-Request-ID`` when it is a plain
token (a proxy's id, so one request is traceable across Caddy and the app), else a new one.
It is echoed in the response's ``X-Request-ID`` and carried by every log line written while
the request is served (``services.logs.request_id``). The access line has the method, the
path without its query string (a signed URL's signature or a token never reaches a log),
the status and the time taken.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from services import logs

log = logging.getLogger("watheeq.api")


class RequestLogMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if logs.valid_request_id(given) else uuid.uuid4().hex
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500
        logged = False

        def access_line() -> None:
            nonlocal logged
            logged = True
            log.info(
                "%s %s %s",
                scope.get("method"),
                scope.get("path"),
                status,
                extra={
                    "request_id": rid,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("ascii"))]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Written before the last bytes leave, so the line exists when the client has its answer.
                access_line()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not logged:
                access_line()
            logs.request_id.reset(token)
