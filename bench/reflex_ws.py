"""A minimal Reflex websocket client: what the browser's frontend speaks, without a browser.

Engine.IO 4 over a websocket at ``/_event/`` (``?EIO=4&transport=websocket&token=<tab token>``),
Socket.IO 5 packets in the ``/_event`` namespace: the CONNECT packet carries the hydrate
event (as the frontend does), each event is ``42/_event,["event", {...}]`` and the server's
answers are ``event`` packets holding a StateUpdate (``delta``, ``events``, ``final``).
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
        self.ws = await AioClient.connect(url, ssl_context=self.ssl_context)
        opened = await self.ws.receive()
        assert isinstance(opened, str) and opened.startswith("0"), opened
        auth = {"event": self._event(f"{ROOT}.hydrate_and_load"), "state_schema": None}
        auth.pop("state_schema")
        await self.ws.send(f"40{NS}," + json.dumps(auth))
        self._reader = asyncio.create_task(self._read())
        return await self._until_final()

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

    async def _until_final(self, timeout: float = 30.0) -> list[dict]:
        got: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            update = await asyncio.wait_for(self._updates.get(), max(0.01, deadline - time.monotonic()))
            if update.get("closed"):
                raise ConnectionError("socket closed")
            got.append(update)
            if update.get("final", True):
                return got

    async def run(self, name: str, payload: dict | None = None) -> tuple[list[float], list[dict]]:
        """An event and the backend events it asks the frontend to send next (on_load's
        loaders, ...), as the frontend does: each one's round trip, and every update."""
        times: list[float] = []
        updates: list[dict] = []
        queue: list[tuple[str, dict | None]] = [(name, payload)]
        while queue:
            current, args = queue.pop(0)
            took, got = await self.send(current, args)
            times.append(took)
            updates.extend(got)
            for update in got:
                for event in update.get("events") or []:
                    if str(event.get("name", "")).startswith(ROOT):
                        queue.append((event["name"], event.get("payload") or {}))
        return times, updates

    async def send(self, name: str, payload: dict | None = None) -> tuple[float, list[dict]]:
        """One event; its round trip (seconds until the final update) and the updates."""
        while not self._updates.empty():
            self._updates.get_nowait()
            self.pushed += 1
        started = time.perf_counter()
        await self.ws.send(f"42{NS}," + json.dumps(["event", self._event(name, payload)]))
        updates = await self._until_final()
        return time.perf_counter() - started, updates

    async def login(self, email: str, password: str) -> str:
        await self.connect("/login")
        _, updates = await self.run(f"{AUTH}.login", {"form": {"email": email, "password": password}})
        # The login event yields; its later updates carry the token script and the redirect.
        deadline = time.monotonic() + 30
        text = json.dumps(updates)
        while not TOKEN_SCRIPT.search(text) and time.monotonic() < deadline:
            text += json.dumps(await self._until_final())
        found = TOKEN_SCRIPT.search(text)
        if not found:
            raise RuntimeError("signed in without a token: " + text[:300])
        return found.group(1)

    async def open(self, path: str) -> float:
        """Navigate (what the frontend does on a route change: hydrate_and_load for the page)."""
        self.path = path
        times, _ = await self.run(f"{ROOT}.hydrate_and_load")
        return sum(times)

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self.ws is not None:
            try:
                await self.ws.close()
            except Exception:
                pass
