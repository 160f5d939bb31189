"""``/api/v1/ready``: database, schema at head, Redis and sidecar leases, each reported;
``X-Request-ID`` on every response and in the structured access log."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services import db, logs, readiness
from services.migrate import upgrade
from services.whatsapp.leases import unheld_tenants
from services.models import WhatsappDesiredState, WhatsappSession, WhatsappStatus, utcnow
from tests import factories


@pytest.fixture
def migrated(tmp_path: Path) -> Engine:
    """A SQLite database brought to the newest schema by the migrations (not create_all)."""
    url = f"sqlite:///{tmp_path / 'ready.db'}"
    upgrade(url)
    eng = db.create_db_engine(url)
    db.configure(eng)
    yield eng
    db.configure(None)
    eng.dispose()


def _by_name(found: list[readiness.Check]) -> dict[str, readiness.Check]:
    return {c.name: c for c in found}


def test_ready_when_migrated_and_no_line_waits(migrated: Engine, api_base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    r = httpx.get(f"{api_base_url}/api/v1/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert {c["name"]: c["ok"] for c in body["checks"]} == {"database": True, "migrations": True, "redis": True, "sidecars": True}


def test_schema_behind_head_is_not_ready(migrated: Engine, api_base_url: str) -> None:
    with migrated.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'c4a9d2e60004'"))
    r = httpx.get(f"{api_base_url}/api/v1/ready")
    assert r.status_code == 503
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert checks["migrations"]["ok"] is False and "migrate" in checks["migrations"]["reason"]
    assert checks["database"]["ok"] is True


def test_a_wanted_line_without_a_sidecar_is_not_ready_until_one_holds_it(migrated: Engine) -> None:
    with Session(migrated) as s:
        firm = factories.make_firm(s, "Ready Firm")
        row = WhatsappSession(tenant_id=firm.tenant.id, desired_state=WhatsappDesiredState.CONNECTED,
                              status=WhatsappStatus.CONNECTING)
        s.add(row)
        s.commit()
        sidecars = _by_name(readiness.checks(migrated))["sidecars"]
        assert not sidecars.ok and sidecars.reason.startswith("1 WhatsApp line")
        # The dashboard's per-worker sweep asks the same for the firms its tabs follow.
        assert unheld_tenants(session=s, tenant_ids=[firm.tenant.id, firm.tenant.id + 1000]) == {firm.tenant.id}
        # A lease that lapsed counts as no sidecar; a live one makes the deployment ready.
        row.worker_id, row.lease_expires_at = "host:1", utcnow() - timedelta(seconds=1)
        s.add(row)
        s.commit()
        assert not _by_name(readiness.checks(migrated))["sidecars"].ok
        assert unheld_tenants(session=s, tenant_ids=[firm.tenant.id]) == {firm.tenant.id}
        row.lease_expires_at = utcnow() + timedelta(seconds=30)
        s.add(row)
        s.commit()
        assert _by_name(readiness.checks(migrated))["sidecars"].ok
        assert unheld_tenants(session=s, tenant_ids=[firm.tenant.id]) == set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_is_checked_when_configured(migrated: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = _free_port()
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    down = _by_name(readiness.checks(migrated))["redis"]
    assert not down.ok and down.reason == "unreachable" and str(port) not in down.reason
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _by_name(readiness.checks(migrated))["redis"].ok:
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_every_response_has_a_request_id_and_the_access_log_is_json(
    http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    formatter = logs.JsonFormatter()
    with caplog.at_level(logging.INFO, logger="watheeq.api"):
        mine = http.get("/api/v1/health?token=SECRET-IN-QUERY", headers={"X-Request-ID": "proxy-abc.123"})
        theirs = http.get("/api/v1/health", headers={"X-Request-ID": "bad id; with spaces"})
    assert mine.headers["x-request-id"] == "proxy-abc.123"
    assert theirs.headers["x-request-id"] != "bad id; with spaces" and len(theirs.headers["x-request-id"]) == 32
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.name == "watheeq.api"]
    first = next(line for line in lines if line.get("request_id") == "proxy-abc.123")
    assert first["path"] == "/api/v1/health" and first["status"] == 200 and first["method"] == "GET"
    assert "SECRET-IN-QUERY" not in json.dumps(lines)
