"""services.live_bus: each transport carries a change from another process to this one's listeners.

Real parts: a SQLite file, ``redis-server`` on a free port, the test PostgreSQL database. The
publisher is a separate Python process that starts its own bus (as the WhatsApp sidecar does).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from services import db, live, live_bus
from services.models import LiveChange, Role
from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[1]
ON_CI = os.environ.get("CI") == "true"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        if ON_CI:
            pytest.fail("redis-server is required on CI")
        pytest.skip("redis-server not installed")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine = db.create_db_engine(url)
    SQLModel.metadata.create_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def postgres_url() -> str:
    if not POSTGRES_URL:
        if ON_CI:
            pytest.fail("WATHEEQ_TEST_POSTGRES_URL is required on CI")
        pytest.skip("no test PostgreSQL")
    return POSTGRES_URL


class Seen:
    def __init__(self) -> None:
        self.changes: list[live.Change] = []
        self.event = threading.Condition()

    def __call__(self, change: live.Change) -> None:
        with self.event:
            self.changes.append(change)
            self.event.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[int, str, str | None]]:
        with self.event:
            self.event.wait_for(lambda: len(self.changes) >= count, timeout=timeout)
            return [(c.tenant_id, c.topic, c.ref) for c in self.changes]


def _publish_from_another_process(env: dict[str, str], *changes: tuple[int, str, str]) -> None:
    calls = "; ".join(f"live.publish({t}, {o!r}, ref={r!r})" for t, o, r in changes)
    code = f"from services import live, live_bus; live_bus.start(listen=False); {calls}; live_bus.stop()"
    full_env = {**os.environ, "WATHEEQ_ENV_FILE": str(ROOT / "tests" / "no-such.env"), **env}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, check=True, timeout=60)


def _bus_env(kind: str, url: str) -> tuple[live_bus.Bus, dict[str, str]]:
    if kind == "redis":
        return live_bus.bus_for(redis_url=url), {"REDIS_URL": url}
    engine = db.create_db_engine(url)
    return live_bus.bus_for(redis_url="", engine=engine), {"REDIS_URL": "", "WATHEEQ_DATABASE_URL": url}


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgresql"])
def test_a_change_published_in_another_process_reaches_this_process(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue({"sqlite": "sqlite_url", "redis": "redis_url", "postgresql": "postgres_url"}[kind])
    bus, env = _bus_env(kind, url)
    assert bus.kind == kind
    seen = Seen()
    stop_listening = live.subscribe(seen)
    running = live_bus.start(listen=True, bus=bus)
    try:
        assert running.ready.is_set()
        started = time.monotonic()
        _publish_from_another_process(env, (7, "calls", "41"), (8, "sessions", "3"))
        got = seen.wait_for(2)
        elapsed = time.monotonic() - started
        # This process's own publish comes back through the bus too, in order.
        live.publish(7, "whatsapp")
        got = seen.wait_for(3)
    finally:
        live_bus.stop()
        stop_listening()
    assert got == [(7, "calls", "41"), (8, "sessions", "3"), (7, "whatsapp", None)]
    assert elapsed < 30  # includes starting a Python process; the delivery itself is sub-second


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgresql"])
def test_a_listener_hears_a_change_well_within_a_second(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue({"sqlite": "sqlite_url", "redis": "redis_url", "postgresql": "postgres_url"}[kind])
    listening_bus, _ = _bus_env(kind, url)
    sending_bus, _ = _bus_env(kind, url)
    seen = Seen()
    stop_listening = live.subscribe(seen)
    ready = threading.Event()
    stop = threading.Event()
    reader = threading.Thread(target=listening_bus.run, args=(seen, stop, ready), daemon=True)
    reader.start()
    try:
        assert ready.wait(5)
        sent = time.monotonic()
        sending_bus.send(live.Change(tenant_id=3, topic="agents", ref="12"))
        got = seen.wait_for(1, timeout=2)
        latency = time.monotonic() - sent
    finally:
        stop.set()
        reader.join(5)
        stop_listening()
        sending_bus.close()
        listening_bus.close()
    assert got[:1] == [(3, "agents", "12")]
    assert latency < 1.0


def test_the_sqlite_log_is_read_from_the_newest_row_and_pruned(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.create_db_engine(sqlite_url)
    bus = live_bus.SqliteBus(engine)
    bus.send(live.Change(tenant_id=1, topic="calls"))  # before the reader starts: not replayed
    bus.send(live.Change(tenant_id=1, topic="calls"))
    with engine.begin() as conn:
        conn.execute(sa.update(LiveChange.__table__).values(created_at=live_bus._now(-3600)))
    seen = Seen()
    ready, stop = threading.Event(), threading.Event()
    reader = threading.Thread(target=bus.run, args=(seen, stop, ready), daemon=True)
    reader.start()
    try:
        assert ready.wait(5)
        bus.send(live.Change(tenant_id=2, topic="callbacks"))
        got = seen.wait_for(1)
    finally:
        stop.set()
        reader.join(5)
    assert got == [(2, "callbacks", None)]
    with engine.connect() as conn:
        left = conn.execute(sa.select(LiveChange.__table__.c.firm)).scalars().all()
    # The hour-old rows were pruned at the reader's first round, all but the newest row (ids
    # must only grow, or a change sent after the prune could reuse a read id and be missed).
    assert left in ([1, 2], [2])
    engine.dispose()


def test_malformed_messages_are_ignored() -> None:
    assert live_bus.decode(b"not json") is None
    assert live_bus.decode('{"t": 1, "o": "everything", "r": null, "a": 0}') is None
    assert live_bus.decode(live_bus.encode(live.Change(1, "calls", "5", at=2.0))) == live.Change(1, "calls", "5", at=2.0)


def test_changes_are_published_only_when_the_transaction_commits(engine: sa.engine.Engine) -> None:
    seen = Seen()
    stop_listening = live.subscribe(seen)
    try:
        with pytest.raises(RuntimeError):
            with db.session_scope() as session:
                live.publish_on_commit(session, 4, "calls", 1)
                raise RuntimeError("undone")
        with db.session_scope() as session:
            live.publish_on_commit(session, 4, "calls", 2)
            live.publish_on_commit(session, 4, "calls", 2)
            assert seen.changes == []  # not before the commit
    finally:
        stop_listening()
    assert [(c.tenant_id, c.topic, c.ref) for c in seen.changes] == [(4, "calls", "2")]


def test_writes_announce_their_firm_and_topic_once_committed(engine: sa.engine.Engine) -> None:
    from services import accounts, call_center
    from services.models import CallCreate, CallDirection, CallStatus, WhatsappSession
    from services.whatsapp import leases
    from tests import factories

    with db.session_scope() as session:
        firm = factories.make_firm(session)
        other_firm = factories.make_tenant(session)
        agent = factories.principal_of(firm.users[Role.AGENT])
        manager = firm.users[Role.MANAGER]
        session.add(WhatsappSession(tenant_id=firm.tenant.id, worker_id="w1"))
    seen = Seen()
    stop_listening = live.subscribe(seen)
    try:
        with db.session_scope() as session:  # a Core insert (the call log's upsert)
            call = call_center.log_call(
                session=session,
                tenant_id=firm.tenant.id,
                actor=agent,
                data=CallCreate(remote_number="0501234567", direction=CallDirection.OUTBOUND, status=CallStatus.RINGING, sip_call_id="abc"),
            )
        with db.session_scope() as session:  # a Core update guarded by the lease (the sidecar)
            leases.record_qr(session=session, tenant_id=firm.tenant.id, worker_id="w1", payload="qr-1")
        with db.session_scope() as session:  # lease housekeeping: nothing to show
            leases.release_leases(session=session, worker_id="nobody")
        with db.session_scope() as session:
            accounts.issue_token(session=session, principal=factories.principal_of(manager))
        with db.session_scope() as session:  # an ORM change: the user's tokens revoked
            accounts.revoke_user_tokens(session=session, tenant_id=firm.tenant.id, user_id=manager.id)
        with pytest.raises(RuntimeError), db.session_scope() as session:
            factories.make_call(session, other_firm)
            raise RuntimeError("rolled back: never announced")
    finally:
        stop_listening()
    got = [(c.tenant_id, c.topic, c.ref) for c in seen.changes]
    assert got == [
        (firm.tenant.id, "calls", None),
        (firm.tenant.id, "whatsapp", "line"),
        (firm.tenant.id, "sessions", str(manager.id)),
    ]


def test_on_sqlite_a_change_is_written_with_its_transaction(engine: sa.engine.Engine) -> None:
    # With the SQLite bus listening (a backend worker), a write and its change are one commit,
    # the change is heard, and a rolled-back write leaves no change in the log.
    if not db.is_sqlite(engine):
        pytest.skip("the live_change log is the SQLite transport")
    commits: list[int] = []  # this thread's (the bus's reader commits its pruning too)
    sa.event.listen(engine, "commit", lambda _conn: commits.append(threading.get_ident()))
    seen = Seen()
    stop_listening = live.subscribe(seen)
    running = live_bus.start(listen=True, bus=live_bus.SqliteBus(engine))
    try:
        with pytest.raises(RuntimeError):
            with db.session_scope() as session:
                live.publish_on_commit(session, 7, "calls", 1)
                raise RuntimeError("undone")
        commits.clear()
        with db.session_scope() as session:
            session.execute(sa.text("UPDATE tenant SET name = name"))
            live.publish_on_commit(session, 7, "calls", 2)
        assert commits.count(threading.get_ident()) == 1
        assert seen.wait_for(1) == [(7, "calls", "2")]
        with engine.connect() as conn:
            logged = conn.execute(sa.select(LiveChange.__table__.c.firm, LiveChange.__table__.c.ref)).all()
        assert [tuple(r) for r in logged] == [(7, "2")]
    finally:
        live_bus.stop()
        stop_listening()
    assert running.bus.kind == "sqlite"
