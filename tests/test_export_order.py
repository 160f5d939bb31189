"""The CSV export of the call history follows the order shown on screen."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlmodel import Session

from services.call_center import log_call
from services.models import CallCreate, CallDirection, CallFilters, CallOrder, Role
from tests import factories as f
from watheeq_ui import exports

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("order", list(CallOrder))
def test_export_walks_every_chunk_in_the_chosen_order(session: Session, tmp_path, monkeypatch, order) -> None:
    monkeypatch.setenv("WATHEEQ_EXPORT_DIR", str(tmp_path))
    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    tenant = f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    manager = f.principal_of(f.make_user(session, tenant, Role.MANAGER))
    started = [T0 + timedelta(minutes=i // 2) for i in range(7)]  # ties on started_at
    ids = [
        log_call(
            session=session,
            tenant_id=tenant.id,
            actor=agent,
            data=CallCreate(direction=CallDirection.INBOUND, remote_number="0501234567", started_at=at),
        ).id
        for at in started
    ]
    session.commit()
    newest_first = [i for _, i in sorted(zip(started, ids), reverse=True)]

    ticket, written = exports.write_history_csv(
        principal=manager, filters=CallFilters(), timezone="Asia/Riyadh", progress=lambda done, total: None, order=order
    )
    frame = pd.read_csv(tmp_path / f"{ticket}.csv", encoding="utf-8-sig")
    expected = newest_first if order == CallOrder.NEWEST_FIRST else newest_first[::-1]
    assert written == 7 and list(frame["id"]) == expected


def test_a_number_search_past_the_bound_exports_every_match_and_its_progress_never_goes_past_the_total(
    session: Session, tmp_path, monkeypatch
) -> None:
    from services.call_center import call_history

    monkeypatch.setenv("WATHEEQ_EXPORT_DIR", str(tmp_path))
    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    monkeypatch.setattr(call_history, "COUNT_BOUND", 3)
    tenant = f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    manager = f.principal_of(f.make_user(session, tenant, Role.MANAGER))
    for i in range(7):
        log_call(session=session, tenant_id=tenant.id, actor=agent,
                 data=CallCreate(direction=CallDirection.INBOUND, remote_number="0501234567", started_at=T0 + timedelta(minutes=i)))
    session.commit()
    steps: list[tuple[int, int]] = []
    ticket, written = exports.write_history_csv(
        principal=manager, filters=CallFilters(number="1234567"), timezone="Asia/Riyadh",
        progress=lambda done, total: steps.append((done, total)),
    )
    assert written == 7 and len(pd.read_csv(tmp_path / f"{ticket}.csv", encoding="utf-8-sig")) == 7
    # Counted up to 3: the total grows with the rows (one ahead while more come), ending exact.
    assert steps == [(2, 3), (4, 5), (6, 7), (7, 7)]
