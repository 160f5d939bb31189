"""A minimal Reflex websocket client: what the browser's frontend speaks, without a browser.

Engine.IO 4 over a websocket at ``/_event/`` (``?EIO=4&transport=websocket&token=<tab token>``),
Socket.IO 5 packets in the ``/_event`` namespace: the CONNECT packet carries the hydrate
event (as the frontend does), each event is ``42/_event,["event", {...}]`` and the server's
answers are ``event`` packets holding a StateUpdate (``delta``, ``events``); on_load handlers
run on the server. There is no end-of-event marker: an event is done when the state it
changes arrives.
Used by bench/bench_live_load.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import uuid
from typing import Any

from simple_websocket import AioClient

ROOT = "reflex___state____state"
AUTH = f"{ROOT}.watheeq_ui___state___auth____auth_state"
CALLS = f"{ROOT}.watheeq_ui___pages___calls___state____calls_state"
NS = "/_event"


class _Client(AioClient):
    """simple-websocket 1.1.0's client, minus a stall. Its handshake reads the socket, takes the
    first event (the 101 answer) and leaves the rest of those bytes in wsproto's buffer; its
    reader then waits for *new* bytes before looking at the buffer again. When the server's
    first frame (Engine.IO's open packet) comes in the same read as the 101, it is seen only
    when the next bytes arrive: the server's ping, 25 s later. This client handles what is
    already buffered as soon as the handshake is done."""

    async def handshake(self) -> None:
        await super().handshake()
        self.connected = await self._handle_events()
TOKEN_SCRIPT = re.compile(r'localStorage\.setItem\("watheeq_session", "([^"]+)"\)')


class ReflexTab:
    def __init__(self, ws_url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ws_url = ws_url.rstrip("/")
        self.ssl_context = ssl_context
        self.token = str(uuid.uuid4())
        self.ws: Any = None
        self.path = "/login"
        self._updates: asyncio.Queue[dict] = asyncio.Queue()
        self._reader: asyncio.Task | None = None
        self.closed = False
        self.pushed = 0  # updates that arrived while no event was in flight

    def _router(self) -> dict:
        return {"pathname": self.path, "query": {}, "asPath": self.path}

    def _event(self, name: str, payload: dict | None = None) -> dict:
        return {"name": name, "payload": payload or {}, "router_data": self._router()}

    async def connect(self, path: str) -> list[dict]:
        self.path = path
        url = f"{self.ws_url}/_event/?EIO=4&transport=websocket&token={self.token}"
        self.ws = await asyncio.wait_for(_Client.connect(url, ssl_context=self.ssl_context), 30)
        opened = await asyncio.wait_for(self.ws.receive(), 30)
        assert isinstance(opened, str) and opened.startswith("0"), opened
        auth = {"event": self._event(f"{ROOT}.hydrate_and_load"), "state_schema": None}
        auth.pop("state_schema")
        await self.ws.send(f"40{NS}," + json.dumps(auth))
        self._reader = asyncio.create_task(self._read())
        return await self._until(lambda update: True)

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message is None:
                    break
                if message == "2":
                    await self.ws.send("3")
                    continue
                if message.startswith(f"42{NS},"):
                    name, data = json.loads(message[len(f"42{NS},") :])[:2]
                    if name == "event":
                        await self._updates.put(data)
        except Exception:
            pass
        finally:
            self.closed = True
            await self._updates.put({"closed": True})

    async def _until(self, done, timeout: float = 30.0) -> list[dict]:
        """Updates until one satisfies ``done(update)`` (Reflex sends no end-of-event marker:
        an event's effect is known by the state it changes)."""
        got: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            update = await asyncio.wait_for(self._updates.get(), max(0.01, deadline - time.monotonic()))
            if update.get("closed"):
                raise ConnectionError("socket closed")
            got.append(update)
            if done(update):
                return got

    async def send(self, name: str, payload: dict | None = None, *, changes: str | None = None,
                   event: str | None = None, timeout: float = 30.0) -> tuple[float, list[dict]]:
        """One event; the seconds until the update that changes state ``changes`` (or carries a
        frontend event named ``event``; or the first update), and the updates until then."""
        while not self._updates.empty():
            self._updates.get_nowait()
            self.pushed += 1

        def done(update: dict) -> bool:
            if changes is not None:
                return changes in (update.get("delta") or {})
            if event is not None:
                return any(e.get("name") == event for e in update.get("events") or [])
            return True

        started = time.perf_counter()
        await self.ws.send(f"42{NS}," + json.dumps(["event", self._event(name, payload)]))
        updates = await self._until(done, timeout)
        return time.perf_counter() - started, updates

    async def login(self, email: str, password: str) -> str:
        """Sign in on the login page; the session token the page hands the browser."""
        await self.connect("/login")
        _, updates = await self.send(f"{AUTH}.login", {"form": {"email": email, "password": password}}, event="_redirect")
        for update in updates:
            for event in update.get("events") or []:
                found = TOKEN_SCRIPT.search(str((event.get("payload") or {}).get("javascript_code", "")))
                if found:
                    return found.group(1)
        raise RuntimeError("signed in without a token")

    async def resume(self, token: str, path: str, state: str) -> float:
        """A new tab of a browser that is signed in (the token in its local storage): the page
        asks for the token (``_call_script``), the tab answers with it, the page loads."""
        started = time.perf_counter()

        def asks(update: dict) -> bool:
            return any(e.get("name") == "_call_script" for e in update.get("events") or [])

        first = await self.connect(path)
        if not any(asks(u) for u in first):
            await self._until(asks, timeout=10)
        await self.send(f"{AUTH}.resume_session", {"token": token}, changes=state)
        return time.perf_counter() - started

    async def open(self, path: str, state: str) -> float:
        """Navigate to ``path`` (hydrate and on_load, as on a page load) until ``state`` is loaded."""
        self.path = path
        took, _ = await self.send(f"{ROOT}.hydrate_and_load", changes=state)
        return took

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self.ws is not None:
            try:
                await self.ws.close()
            except Exception:
                pass
