"""Restarts that don't leave the firm waiting: a sidecar has a stable identity on its host, so the
whole sidecar (supervisor and worker) SIGKILLed and started again takes its own lease back at
once and the line is CONNECTED again (no QR) in < 5 s, on SQLite and PostgreSQL; while nothing
holds a firm's lease the status says the service is not running, never a stale CONNECTED.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from services import config, db
from services.models import Principal, Role, WhatsappSession, WhatsappStatus, utcnow
from services.tenancy import tenant_select
from services.whatsapp import identity, leases, store
from services.whatsapp.failures import Failure
from services.whatsapp.sessions import UNHELD_GRACE_SECONDS, service_down_since
from tests import factories as f
from tests.whatsapp.test_send_crash import _linked


def _start_sidecar(engine: Engine, data: Path, *, lease: float, args: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WATHEEQ_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "WATHEEQ_DATA_DIR": str(data),
        "WATHEEQ_WHATSAPP_GATEWAY": "simulator",
        "WATHEEQ_WHATSAPP_TICK_SECONDS": "0.1",
        # The human pace (guardrails) kept short: these tests are not about it.
        "WATHEEQ_WHATSAPP_TYPING_MAX_SECONDS": "0.3",
        "WATHEEQ_WHATSAPP_GAP_MIN_SECONDS": "0",
        "WATHEEQ_WHATSAPP_GAP_MAX_SECONDS": "0.2",
        "WATHEEQ_WHATSAPP_FIRST_CONTACT_GAP_SECONDS": "0.1",
        "WATHEEQ_WHATSAPP_LEASE_SECONDS": str(lease),
        "WATHEEQ_LOG_LEVEL": os.environ.get("TEST_SIDECAR_LOG_LEVEL", "ERROR"),
    }
    env.pop(identity.NAME_ENV, None)
    # Its own process group: the test kills the whole sidecar, supervisor and worker at once.
    return subprocess.Popen(
        [sys.executable, "-m", "services.whatsapp.sidecar", *args],
        cwd=config.PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ["TEST_SIDECAR_LOG"], "a") if os.environ.get("TEST_SIDECAR_LOG") else subprocess.DEVNULL,
        start_new_session=True,
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _row(tenant_id: int) -> WhatsappSession:
    with db.session_scope() as session:
        row = session.exec(tenant_select(WhatsappSession, tenant_id)).one()
        session.expunge(row)
        return row


def _public(tenant_id: int):
    with db.session_scope() as session:
        owner = Principal(user_id=0, tenant_id=tenant_id, role=Role.OWNER)
        return store.get_session_status(session=session, tenant_id=tenant_id, actor=owner)


def _wait(check, timeout: float, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(step)


def _connected_after(tenant_id: int, after: datetime) -> bool:
    row = _row(tenant_id)
    return row.status == WhatsappStatus.CONNECTED and row.connected_since is not None and row.connected_since > after


# ---------------------------------------------------------------------- identity


def test_a_restarted_sidecar_gets_the_same_identity_and_a_second_one_another(tmp_path: Path) -> None:
    folder = tmp_path / "wa"
    first = identity.acquire(folder=folder)
    second = identity.acquire(folder=folder)
    try:
        assert first.worker_id != second.worker_id
        assert first.worker_id.split(":")[0] == second.worker_id.split(":")[0]  # one host
        assert (first.name, second.name) == ("sidecar-1", "sidecar-2")
    finally:
        second.release()
    first_id = first.worker_id
    first.release()
    again = identity.acquire(folder=folder)
    try:
        assert again.worker_id == first_id
    finally:
        again.release()


def test_an_explicit_name_is_kept_and_refused_while_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "wa"
    monkeypatch.setenv(identity.NAME_ENV, "east")
    held = identity.acquire(folder=folder)
    try:
        assert held.worker_id.endswith(":east")
        with pytest.raises(identity.IdentityError, match="already runs as 'east'"):
            identity.acquire(folder=folder)
        other = identity.acquire("west", folder=folder)
        assert other.worker_id.endswith(":west")
        other.release()
        with pytest.raises(identity.IdentityError):
            identity.acquire("../evil", folder=folder)
    finally:
        held.release()


def test_the_host_id_is_made_once_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "wa"
    assert identity.host_id(folder) == identity.host_id(folder)
    (folder / "host-id").unlink()
    assert identity.host_id(folder) != ""


def test_a_second_sidecar_process_on_the_host_takes_another_identity(engine: Engine, data_dir: Path) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("identity is per host, not per database")
    one = _start_sidecar(engine, data_dir, lease=30)
    two = _start_sidecar(engine, data_dir, lease=30)
    named = None
    try:
        folder = data_dir / "whatsapp"
        _wait(lambda: (folder / "sidecars" / "sidecar-1.lock").exists() and (folder / "sidecars" / "sidecar-2.lock").exists(), 20)
        # Both slots are held now: a third (in this process) gets a third name.
        third = _wait(lambda: (h := identity.acquire(folder=folder)).name == "sidecar-3" and h or (h.release() or None), 20, 0.1)
        third.release()
        # A name in use is refused: the process exits with an error.
        named = _start_sidecar(engine, data_dir, lease=30, args=("--name", "sidecar-1"))
        assert named.wait(timeout=30) == 2
    finally:
        for proc in (one, two, named):
            if proc is not None and proc.poll() is None:
                _kill_group(proc)


# ---------------------------------------------------------------------- restart


async def test_a_sigkilled_sidecar_started_again_is_connected_in_under_5_seconds(engine: Engine, data_dir: Path) -> None:
    tenant_id, _admin = await _linked(data_dir)
    # Default 30 s lease: waiting out a predecessor's lease would take far longer than 5 s.
    sidecar = _start_sidecar(engine, data_dir, lease=30)
    try:
        start = utcnow()
        _wait(lambda: _connected_after(tenant_id, start), 30)
        held_by = _row(tenant_id).worker_id
        assert held_by and held_by.endswith(":sidecar-1")
        _kill_group(sidecar)
        killed_at = utcnow()
        killed = time.monotonic()
        sidecar = _start_sidecar(engine, data_dir, lease=30)
        _wait(lambda: _connected_after(tenant_id, killed_at), 5)
        seconds = time.monotonic() - killed
        print(f"\nSIGKILL + restart -> CONNECTED again: {seconds:.2f} s ({engine.dialect.name})")
        assert seconds < 5
        row = _row(tenant_id)
        assert row.worker_id == held_by and row.qr_payload is None
        assert _public(tenant_id).service_running
    finally:
        _kill_group(sidecar)


async def test_while_no_sidecar_runs_the_status_says_so_within_the_lease(engine: Engine, data_dir: Path) -> None:
    tenant_id, _admin = await _linked(data_dir)
    sidecar = _start_sidecar(engine, data_dir, lease=2)
    try:
        start = utcnow()
        _wait(lambda: _connected_after(tenant_id, start), 30)
        assert _public(tenant_id).status == WhatsappStatus.CONNECTED
        _kill_group(sidecar)
        killed = time.monotonic()
        # The row still says CONNECTED (nobody is left to write otherwise) ...
        assert _row(tenant_id).status == WhatsappStatus.CONNECTED
        # ... but the status people see turns within the lease (2 s) to "not running".
        down = _wait(lambda: (s := _public(tenant_id)).error_code == Failure.SERVICE_DOWN.value and s, 4)
        assert time.monotonic() - killed < 2.0 + 0.5
        assert down.status == WhatsappStatus.ERROR and not down.service_running and down.connected_since is None
        assert down.service_down_since is not None and down.service_down_since <= utcnow()
        assert down.error_message.startswith("WhatsApp service not running since ")
        assert "messages are queued" in down.error_message
        sidecar = _start_sidecar(engine, data_dir, lease=2)
        back = _wait(lambda: (s := _public(tenant_id)).status == WhatsappStatus.CONNECTED and s, 5)
        assert back.service_running and back.error_code is None
    finally:
        _kill_group(sidecar)


def test_service_down_rules(engine: Engine) -> None:
    now = utcnow()
    with db.session_scope() as session:
        tenant = f.make_tenant(session)
        admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
        store.init_session(session=session, tenant_id=tenant.id, actor=admin)
        row = session.exec(tenant_select(WhatsappSession, tenant.id)).one()
        # Just asked for and not yet claimed: a sidecar gets its grace to take it.
        assert service_down_since(row, now) is None
        later = row.updated_at + timedelta(seconds=UNHELD_GRACE_SECONDS + 1)
        assert service_down_since(row, later) == row.updated_at
        assert leases.restore_active_sessions(session=session, worker_id="w", lease_seconds=30, now=now)
        session.refresh(row)
        assert service_down_since(row, now + timedelta(seconds=29)) is None
        assert service_down_since(row, now + timedelta(seconds=31)) == now
        leases.release_leases(session=session, worker_id="w")
        session.refresh(row)
        released = row.lease_renewed_at
        assert released is not None and service_down_since(row, released + timedelta(seconds=1)) is None
        assert service_down_since(row, released + timedelta(seconds=UNHELD_GRACE_SECONDS + 1)) == released
        store.disconnect(session=session, tenant_id=tenant.id, actor=admin)
        session.refresh(row)
        # Unlinked and torn down: the line needs no sidecar.
        assert row.status == WhatsappStatus.DISCONNECTED
        assert service_down_since(row, released + timedelta(hours=1)) is None
