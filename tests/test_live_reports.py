"""services.live_reports: per agent per day time in state, calls and callbacks; callback time p50/p90."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from services import call_center, callbacks, live_reports, presence
from services.errors import Forbidden, Invalid
from services.models import AwayReason, CallbackMissIn, CallbackOutcome, CallCreate, CallDirection, CallStatus
from services.presence import PhoneEvent
from tests.factories import make_call, make_firm

RIYADH = ZoneInfo("Asia/Riyadh")


def test_percentiles_interpolate_between_ranks() -> None:
    assert live_reports.percentile([], 0.5) is None
    assert live_reports.percentile([60.0], 0.9) == 60.0
    assert live_reports.percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0
    assert live_reports.percentile([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0], 0.9) == pytest.approx(91.0)


def test_agent_day_rows_cut_presence_at_the_firms_midnight(session: Session) -> None:
    firm = make_firm(session, timezone="Asia/Riyadh")
    kw = dict(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    # 23:00 Riyadh on 1 Dec to 01:00 on 2 Dec: an hour Available each side of midnight, then Away.
    t0 = datetime(2026, 12, 1, 23, 0, tzinfo=RIYADH)
    presence.report_phone(**kw, event=PhoneEvent.REGISTERED, now=t0)
    presence.set_own_state(**kw, status=presence.AgentStatus.AWAY, reason=AwayReason.BREAK, now=t0 + timedelta(hours=2))
    make_call(session, firm.tenant, agent=firm.agent, status=CallStatus.COMPLETED, started_at=t0 + timedelta(minutes=90),
              answered_at=t0 + timedelta(minutes=91))
    make_call(session, firm.tenant, agent=firm.agent, status=CallStatus.MISSED, started_at=t0 + timedelta(minutes=95))
    rows = live_reports.agent_report(session=session, tenant_id=firm.tenant.id, actor=firm.manager,
                                     date_from=date(2026, 12, 1), date_to=date(2026, 12, 2), now=t0 + timedelta(hours=3))
    mine = {r.day: r for r in rows if r.user_id == firm.agent.user_id}
    assert mine["2026-12-01"].seconds["AVAILABLE"] == 3600
    assert mine["2026-12-02"].seconds["AVAILABLE"] == 3600 and mine["2026-12-02"].seconds["AWAY"] == 3600
    assert (mine["2026-12-01"].calls_handled, mine["2026-12-02"].calls_handled) == (0, 1)
    with pytest.raises(Forbidden):
        live_reports.agent_report(session=session, tenant_id=firm.tenant.id, actor=firm.agent, date_from=date(2026, 12, 1), date_to=date(2026, 12, 1))
    with pytest.raises(Invalid):
        live_reports.agent_report(session=session, tenant_id=firm.tenant.id, actor=firm.manager, date_from=date(2026, 12, 1), date_to=date(2026, 11, 1))


def test_callbacks_made_outcomes_and_callback_time(session: Session) -> None:
    firm = make_firm(session, timezone="Asia/Riyadh")
    today = datetime.now(timezone.utc)
    # Inside the firm's day whatever the hour the test runs (its midnight is 21:00 UTC).
    midnight = datetime.combine(today.astimezone(RIYADH).date(), datetime.min.time(), RIYADH)
    waits = [60, 120, 600]
    for i, wait in enumerate(waits):
        number = f"05000000{i:02d}"
        missed_at = max(today - timedelta(minutes=30), midnight + timedelta(seconds=1))
        item = callbacks.record_miss(session=session, tenant_id=firm.tenant.id, actor=firm.agent,
                                     data=CallbackMissIn(number=number, missed_at=missed_at))
        call_center.log_call(session=session, tenant_id=firm.tenant.id, actor=firm.agent, data=CallCreate(
            direction=CallDirection.OUTBOUND, remote_number=number, started_at=missed_at + timedelta(seconds=wait)))
        callbacks.close(session=session, tenant_id=firm.tenant.id, actor=firm.agent, callback_id=item.id,
                        outcome=CallbackOutcome.WRONG_NUMBER if i == 0 else CallbackOutcome.REACHED)
    callbacks.record_miss(session=session, tenant_id=firm.tenant.id, actor=firm.agent, data=CallbackMissIn(number="0559999999"))
    day = today.astimezone(RIYADH).date()
    [row] = live_reports.callback_times(session=session, tenant_id=firm.tenant.id, actor=firm.manager, date_from=day, date_to=day)
    assert (row.missed_items, row.called_back, row.p50_seconds, row.p90_seconds) == (4, 3, 120.0, pytest.approx(504.0))
    rows = live_reports.agent_report(session=session, tenant_id=firm.tenant.id, actor=firm.manager, date_from=day, date_to=day)
    [mine] = [r for r in rows if r.user_id == firm.agent.user_id]
    assert mine.callbacks_made == 3
    assert mine.outcomes == {"WRONG_NUMBER": 1, "REACHED": 2}


def test_the_agent_report_csv_neutralises_formulas(session: Session, tmp_path, monkeypatch) -> None:
    import csv

    from watheeq_ui import exports
    from watheeq_ui.pages.agent_report import AGENT_COLUMNS, _agent_dicts

    monkeypatch.setenv("WATHEEQ_EXPORT_DIR", str(tmp_path))
    firm = make_firm(session, timezone="Asia/Riyadh")
    firm.users[firm.agent.role].full_name = "=HYPERLINK(\"http://x\")"
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=RIYADH)
    presence.report_phone(session=session, tenant_id=firm.tenant.id, actor=firm.agent, event=PhoneEvent.REGISTERED, now=t0)
    rows = live_reports.agent_report(session=session, tenant_id=firm.tenant.id, actor=firm.manager,
                                     date_from=date(2026, 12, 1), date_to=date(2026, 12, 1), now=t0 + timedelta(minutes=10))
    ticket = exports.write_report_csv("agents", _agent_dicts(rows), AGENT_COLUMNS)
    assert ticket.startswith("agents-")
    with (tmp_path / f"{ticket}.csv").open(encoding="utf-8-sig", newline="") as f:
        table = list(csv.DictReader(f))
    [row] = [r for r in table if "HYPERLINK" in r["agent"]]
    assert row["agent"].startswith("'=") and row["available_seconds"] == "600" and row["day"] == "2026-12-01"
