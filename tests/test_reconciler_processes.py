"""The reconciler as processes: SIGKILL mid-catch-up then restart, and two processes sharing
firms on PostgreSQL with one killed. Each PBX record must be in the ledger exactly once,
counted on both sides (the PBX's accounting file and the ledger)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.models import Call, CallLeg, PbxFeed, PbxSettings
from tests import factories as f
from tests.conftest import POSTGRES_URL
from tests.ledger_support import AccountingPbx, leg

ROOT = Path(__file__).resolve().parents[1]


def _start(engine, pbx_dir: Path, worker_id: str, **env: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "WATHEEQ_PBX_TICK_SECONDS": "0.1",
        "WATHEEQ_PBX_FLUSH_SECONDS": "0.05",
        "WATHEEQ_PBX_BACKOFF_BASE_SECONDS": "0.1",
        "WATHEEQ_PBX_BACKOFF_CAP_SECONDS": "0.5",
        **env,
    }
    url = engine.url.render_as_string(hide_password=False)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ledger_reconciler_proc", "--db", url, "--pbx-dir", str(pbx_dir), "--worker-id", worker_id],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _firm(session, pbx_dir: Path) -> tuple[int, AccountingPbx]:
    tenant = f.make_tenant(session)
    session.add(PbxSettings(tenant_id=tenant.id, host="127.0.0.1", cdr_source="lab"))
    session.commit()
    return tenant.id, AccountingPbx(pbx_dir / f"tenant-{tenant.id}.sqlite")


def _write_calls(pbx: AccountingPbx, tag: str, first: int, n: int) -> None:
    records = []
    for i in range(first, first + n):
        records.append(leg(f"{tag}-{i}", unique_id=f"{tag}-{i}-a", extension="1001", start=i * 10, answer=i * 10 + 3, end=i * 10 + 30))
        records.append(leg(f"{tag}-{i}", unique_id=f"{tag}-{i}-b", extension="1002", start=i * 10, end=i * 10 + 3))
    pbx.write(records)


def _ledger(engine, tenant_id: int) -> tuple[list[str], list[str], int]:
    with engine.connect() as conn:
        legs = list(conn.execute(sa.select(CallLeg.unique_id).where(CallLeg.tenant_id == tenant_id)).scalars())
        calls = list(conn.execute(sa.select(Call.pbx_linked_id).where(Call.tenant_id == tenant_id)).scalars())
        watermark = conn.execute(sa.select(PbxFeed.watermark).where(PbxFeed.tenant_id == tenant_id)).scalar_one_or_none()
    return legs, calls, watermark or 0


def _exactly_once(engine, tenant_id: int, pbx: AccountingPbx) -> None:
    source = pbx.rows(0)
    legs, calls, watermark = _ledger(engine, tenant_id)
    assert len(legs) == len(set(legs)) and sorted(legs) == sorted(r.unique_id for r in source)
    assert len(calls) == len(set(calls)) and sorted(calls) == sorted({r.linked_id for r in source})
    assert watermark == source[-1].position


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sigkill_in_the_middle_of_500_records_then_restart_stores_each_once(engine, session, tmp_path):
    tenant_id, pbx = _firm(session, tmp_path)
    _write_calls(pbx, "k", 0, 250)  # 500 records
    proc = _start(engine, tmp_path, "killed", WATHEEQ_PBX_CATCH_UP_BATCH="5")
    try:
        _wait(lambda: _ledger(engine, tenant_id)[2] >= 100, 60, "the first 100 records")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    legs, _, watermark = _ledger(engine, tenant_id)
    assert watermark < 500, "the catch-up ended before the kill: nothing was interrupted"
    # Everything up to the watermark is stored, nothing past the last committed batch.
    assert {r.unique_id for r in pbx.rows(0) if r.position <= watermark} <= set(legs)
    restarted = _start(engine, tmp_path, "killed", WATHEEQ_PBX_CATCH_UP_BATCH="50")
    try:
        _wait(lambda: _ledger(engine, tenant_id)[2] == 500, 60, "all 500 records")
    finally:
        _stop(restarted)
    _exactly_once(engine, tenant_id, pbx)


@pytest.mark.skipif(not POSTGRES_URL, reason="two reconciler processes share firms on PostgreSQL (WATHEEQ_TEST_POSTGRES_URL)")
def test_two_processes_share_the_firms_and_one_takes_over_when_the_other_is_killed(engine, session, tmp_path):
    if engine.dialect.name != "postgresql":
        pytest.skip("this test is about PostgreSQL's row locks")
    firms = [_firm(session, tmp_path) for _ in range(4)]
    lease = {"WATHEEQ_PBX_LEASE_SECONDS": "2", "WATHEEQ_PBX_BATCH_SIZE": "20", "WATHEEQ_PBX_CATCH_UP_BATCH": "20"}
    a = _start(engine, tmp_path, "a", WATHEEQ_PBX_MAX_FIRMS="2", **lease)
    b = None
    stop_writing = threading.Event()

    def holders() -> dict[int, str | None]:
        with engine.connect() as conn:
            return dict(conn.execute(sa.select(PbxFeed.tenant_id, PbxFeed.worker_id)).all())

    def writer() -> None:
        n = 0
        while not stop_writing.is_set():
            for tenant_id, pbx in firms:
                _write_calls(pbx, f"t{tenant_id}", n, 5)
            n += 5
            time.sleep(0.05)

    thread = threading.Thread(target=writer)
    try:
        _wait(lambda: sorted(holders().values(), key=str).count("a") == 2, 30, "a to hold two firms")
        b = _start(engine, tmp_path, "b", WATHEEQ_PBX_MAX_FIRMS="10", **lease)
        _wait(lambda: sorted(holders().values(), key=str) == ["a", "a", "b", "b"], 30, "each firm held by one process")
        thread.start()
        time.sleep(1.5)
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        _wait(lambda: list(holders().values()) == ["b"] * 4, 30, "b to take a's firms over")
        time.sleep(1.0)
        stop_writing.set()
        thread.join()
        for tenant_id, pbx in firms:
            last = pbx.rows(0)[-1].position
            _wait(lambda: _ledger(engine, tenant_id)[2] == last, 30, f"firm {tenant_id} caught up")
    finally:
        stop_writing.set()
        if thread.is_alive():
            thread.join()
        if a.poll() is None:
            a.kill()
        if b is not None:
            _stop(b)
    for tenant_id, pbx in firms:
        _exactly_once(engine, tenant_id, pbx)
