"""`reflex run` for the production topology, with a backend worker that dies restarted and
the built frontend's hashed files cached by the browser.

Reflex starts Granian without ``respawn_failed_workers``, and Granian then stops the whole
server when one worker dies (every browser of every worker disconnected, the run command
stopping everything with it). Here the same command runs with that option on: a killed or
crashed worker is replaced, the others keep serving (Granian still gives up on a worker that
crashes again within seconds of its restart).

Reflex serves the built frontend with an ETag and no Cache-Control, so a browser guesses
how long a file stays fresh from its age (a tenth of it): within minutes of a build, and
now and then later, a new tab asks again for each of the ~25 modules of its first load and
waits for each 304 before running them. Every file under ``assets/`` is named by a hash
of its content (Vite): those are served as cacheable for a year, unchanged; the pages
themselves (which name the current files) are revalidated each time, as before. Everything
else is Reflex's own CLI.

    python scripts/serve_app.py run --env prod --single-port --backend-port 8000
    python scripts/serve_app.py run --env prod --frontend-only --frontend-port 3000
"""

from __future__ import annotations

import sys
from pathlib import Path

from granian.server import common

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_init = common.AbstractServer.__init__


def _respawning_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    kwargs["respawn_failed_workers"] = True
    _init(self, *args, **kwargs)


common.AbstractServer.__init__ = _respawning_init  # type: ignore[method-assign]

HASHED = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"


def cache_headers(app):  # type: ignore[no-untyped-def]
    """ASGI middleware over the frontend's static files: Cache-Control by path."""

    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return await app(scope, receive, send)
        value = HASHED if "/assets/" in scope.get("path", "") else REVALIDATE

        async def send_with_cache(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", value)]}
            await send(message)

        await app(scope, receive, send_with_cache)

    return wrapped


def _patch_frontend_mount() -> None:
    # Reflex builds the static mount with this function in both topologies (the frontend-only
    # server and the single port); Granian forks its workers after this patch.
    from reflex.utils import exec as reflex_exec

    original = reflex_exec.get_frontend_mount

    def frontend_mount(*args, **kwargs):  # type: ignore[no-untyped-def]
        mount = original(*args, **kwargs)
        mount.app = cache_headers(mount.app)
        return mount

    reflex_exec.get_frontend_mount = frontend_mount

if __name__ == "__main__":
    from reflex.reflex import cli

    _patch_frontend_mount()
    sys.argv[0] = "reflex"
    cli()
