"""The cross-process transport behind :mod:`services.live`.

One bus per process, chosen by the deployment:

- ``REDIS_URL`` set: Redis pub/sub on one channel;
- else a PostgreSQL database: ``LISTEN``/``NOTIFY`` on one channel;
- else (the embedded SQLite default): the ``live_change`` log table, read by ONE thread
  per process with one indexed query (``id > last``) every :data:`SQLITE_POLL_SECONDS`,
  however many browsers that process serves; rows older than :data:`SQLITE_KEEP_SECONDS`
  are pruned.

:func:`start` installs the bus as ``services.live``'s forward: every ``publish`` of this
process goes out on the bus, and (``listen=True``, a backend worker) one reader thread
delivers every process's changes to this process's listeners with ``live.deliver``. A
publishing-only process (the WhatsApp sidecar) passes ``listen=False``: its own changes
still reach its own listeners directly.

A change that cannot be sent (Redis or the database briefly gone) is logged and dropped:
changes carry no data, a browser re-reads on the next one and on every reconnect.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from services import config, db, live
from services.models.live import LiveChange

log = logging.getLogger("watheeq.live_bus")

CHANNEL = "watheeq_live"
SQLITE_POLL_SECONDS = 0.25
SQLITE_KEEP_SECONDS = 60.0
RETRY_SECONDS = 1.0


def encode(change: live.Change) -> str:
    return json.dumps({"t": change.tenant_id, "o": change.topic, "r": change.ref, "a": change.at})


def decode(payload: str | bytes) -> live.Change | None:
    try:
        data = json.loads(payload)
        topic = str(data["o"])
        if topic not in live.TOPICS:
            return None
        return live.Change(
            tenant_id=int(data["t"]), topic=topic, ref=None if data.get("r") is None else str(data["r"]), at=float(data["a"])
        )
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed live change on the bus")
        return None


class Bus:
    """A transport: ``send`` from any thread; ``run(deliver, stop)`` is the reader loop."""

    kind = ""

    def send(self, change: live.Change) -> None:
        raise NotImplementedError

    def run(self, deliver: Callable[[live.Change], None], stop: threading.Event, ready: threading.Event) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RedisBus(Bus):
    kind = "redis"

    def __init__(self, url: str) -> None:
        import redis

        self._redis_mod = redis
        self._url = url
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def send(self, change: live.Change) -> None:
        self._client.publish(CHANNEL, encode(change))

    def run(self, deliver, stop, ready) -> None:
        while not stop.is_set():
            client = self._redis_mod.Redis.from_url(self._url, socket_connect_timeout=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                # The subscription is live once Redis confirms it.
                pubsub.get_message(timeout=5, ignore_subscribe_messages=False)
                ready.set()
                while not stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and message.get("type") == "message":
                        change = decode(message["data"])
                        if change is not None:
                            deliver(change)
            except self._redis_mod.RedisError:
                log.warning("live bus: Redis connection lost; resubscribing in %s s", RETRY_SECONDS)
                stop.wait(RETRY_SECONDS)
            finally:
                try:
                    pubsub.close()
                    client.close()
                except Exception:  # closing a dead connection
                    pass

    def close(self) -> None:
        self._client.close()


class PostgresBus(Bus):
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        self._url = _libpq_url(url)
        self._lock = threading.Lock()
        self._conn = None

    def _connection(self):
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        return self._conn

    def send(self, change: live.Change) -> None:
        import psycopg

        with self._lock:
            try:
                self._connection().execute("SELECT pg_notify(%s, %s)", (CHANNEL, encode(change)))
            except psycopg.OperationalError:
                # One retry on a fresh connection (the server restarted, an idle timeout).
                self._conn = None
                self._connection().execute("SELECT pg_notify(%s, %s)", (CHANNEL, encode(change)))

    def run(self, deliver, stop, ready) -> None:
        import psycopg

        while not stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    ready.set()
                    while not stop.is_set():
                        for notify in conn.notifies(timeout=0.5, stop_after=100):
                            change = decode(notify.payload)
                            if change is not None:
                                deliver(change)
            except psycopg.Error:
                log.warning("live bus: PostgreSQL connection lost; listening again in %s s", RETRY_SECONDS)
                stop.wait(RETRY_SECONDS)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class SqliteBus(Bus):
    kind = "sqlite"

    def __init__(self, engine: sa.engine.Engine) -> None:
        self._engine = engine

    def send(self, change: live.Change) -> None:
        with self._engine.begin() as conn:
            conn.execute(_table().insert().values(firm=change.tenant_id, topic=change.topic, ref=change.ref, created_at=_now()))

    def send_in(self, session: Any, changes: list[live.Change]) -> bool:
        """Writes ``changes`` in ``session``'s transaction, before its commit (one commit per
        write instead of two); False when the session is on another database or the write
        failed: the changes are then sent after the commit, as by :meth:`send`. SQLite has one
        writer at a time, so the ids still grow in commit order and ``id > last`` misses none."""
        if session.get_bind() is not self._engine:
            return False
        rows = [{"firm": c.tenant_id, "topic": c.topic, "ref": c.ref, "created_at": _now()} for c in changes]
        try:
            session.connection().execute(_table().insert(), rows)
        except sa.exc.SQLAlchemyError:
            log.warning("live bus: could not write changes with their transaction; sending them after it", exc_info=True)
            return False
        return True

    def run(self, deliver, stop, ready) -> None:
        last = None
        next_prune = 0.0
        while not stop.is_set():
            try:
                with self._engine.connect() as conn:
                    if last is None:
                        # Only what is published from now on: a (re)started reader replays nothing.
                        last = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM live_change")).scalar_one()
                        ready.set()
                    rows = conn.execute(
                        sa.text("SELECT id, firm, topic, ref FROM live_change WHERE id > :last ORDER BY id"), {"last": last}
                    ).all()
                for row in rows:
                    last = row.id
                    if row.topic in live.TOPICS:
                        deliver(live.Change(tenant_id=row.firm, topic=row.topic, ref=row.ref))
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + SQLITE_KEEP_SECONDS / 2
                    with self._engine.begin() as conn:
                        table = _table()
                        # The newest row always stays: SQLite hands out max(id) + 1, so ids
                        # only grow and no reader's "id > last" can miss a new change.
                        newest = sa.select(sa.func.max(table.c.id)).scalar_subquery()
                        conn.execute(
                            table.delete().where(table.c.created_at < _now(-SQLITE_KEEP_SECONDS), table.c.id < newest)
                        )
            except sa.exc.SQLAlchemyError:
                log.warning("live bus: reading live_change failed; retrying in %s s", RETRY_SECONDS, exc_info=True)
                stop.wait(RETRY_SECONDS)
                continue
            stop.wait(SQLITE_POLL_SECONDS)


def _now(offset_seconds: float = 0.0) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=offset_seconds)


def _table() -> sa.Table:
    return LiveChange.__table__  # type: ignore[return-value]


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def bus_for(redis_url: str | None = None, engine: sa.engine.Engine | None = None) -> Bus:
    """The transport this deployment uses (see the module doc)."""
    redis_url = redis_url if redis_url is not None else (config.get("REDIS_URL") or "")
    if redis_url:
        return RedisBus(redis_url)
    engine = engine or db.get_engine()
    if db.is_sqlite(engine):
        return SqliteBus(engine)
    return PostgresBus(engine.url.render_as_string(hide_password=False))


class Running:
    """A started bus: :meth:`stop` uninstalls it and ends the reader thread."""

    def __init__(self, bus: Bus, listen: bool) -> None:
        self.bus = bus
        self._stop = threading.Event()
        self.ready = threading.Event()
        self._thread: threading.Thread | None = None
        if listen:
            self._thread = threading.Thread(
                target=bus.run, args=(live.deliver, self._stop, self.ready), name=f"live-bus-{bus.kind}", daemon=True
            )
            self._thread.start()
        else:
            self.ready.set()
        self._listen = listen
        # Written with the committing transaction only where this process reads the log back
        # (a publishing-only process also hands its changes to its own listeners directly).
        live.set_forward(self._forward, bus.send_in if listen and isinstance(bus, SqliteBus) else None)

    def _forward(self, change: live.Change) -> None:
        try:
            self.bus.send(change)
        except Exception:
            log.warning("live bus: could not send %s/%s", change.topic, change.tenant_id, exc_info=True)
            if self._listen:
                # At least this process's browsers hear of it.
                live.deliver(change)
        if not self._listen:
            live.deliver(change)

    def stop(self) -> None:
        live.set_forward(None)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.bus.close()


_running: Running | None = None
_start_lock = threading.Lock()


def start(*, listen: bool, bus: Bus | None = None, wait: float = 5.0) -> Running:
    """Installs this process's bus (once; a second call returns the running one)."""
    global _running
    with _start_lock:
        if _running is None:
            _running = Running(bus or bus_for(), listen)
            if not _running.ready.wait(wait):
                log.warning("live bus (%s) not subscribed after %s s; continuing", _running.bus.kind, wait)
        return _running


def stop() -> None:
    global _running
    with _start_lock:
        if _running is not None:
            _running.stop()
            _running = None
