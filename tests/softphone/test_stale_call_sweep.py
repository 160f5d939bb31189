"""The backend's sweep that closes calls no browser will finish (page closed mid-call)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session

from services.models import Call, CallDirection, CallStatus
from tests import factories
from watheeq_ui import background


def _call(engine, *, status: CallStatus, direction: CallDirection, age: timedelta) -> int:
    with Session(engine, expire_on_commit=False) as session:
        tenant = factories.make_tenant(session)
        agent = factories.make_user(session, tenant)
        at = datetime.now(timezone.utc) - age
        call = factories.make_call(session, tenant, agent=agent, direction=direction, status=status, started_at=at)
        session.commit()
        return call.id


def _status(engine, call_id: int) -> CallStatus:
    with Session(engine) as session:
        return session.get(Call, call_id).status


async def _until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_sweep_closes_a_call_left_ringing_and_stops_on_cancel(engine):
    abandoned = _call(engine, status=CallStatus.RINGING, direction=CallDirection.INBOUND, age=timedelta(minutes=10))
    ringing_now = _call(engine, status=CallStatus.RINGING, direction=CallDirection.OUTBOUND, age=timedelta(seconds=5))

    task = asyncio.create_task(background.close_stale_calls_periodically(interval=0.05))
    try:
        await _until(lambda: _status(engine, abandoned) is CallStatus.MISSED)
        await asyncio.sleep(0.2)  # a few more sweeps
        assert _status(engine, ringing_now) is CallStatus.RINGING
        assert not task.done()
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)


async def test_a_failed_sweep_is_logged_and_the_next_one_still_runs(engine, monkeypatch, caplog):
    abandoned = _call(engine, status=CallStatus.RINGING, direction=CallDirection.OUTBOUND, age=timedelta(minutes=10))
    real = background.sweep_stale_calls
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database unreachable")
        return real()

    monkeypatch.setattr(background, "sweep_stale_calls", flaky)
    task = asyncio.create_task(background.close_stale_calls_periodically(interval=0.05))
    with caplog.at_level(logging.ERROR, logger=background.__name__):
        try:
            await _until(lambda: _status(engine, abandoned) is CallStatus.FAILED)
        finally:
            task.cancel()
    assert any("database unreachable" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.parametrize(("raw", "seconds"), [(None, 60.0), ("15", 15.0), ("0.5", 0.5), ("0", 60.0), ("-3", 60.0), ("soon", 60.0)])
def test_the_sweep_interval_comes_from_the_environment(monkeypatch, raw, seconds):
    if raw is None:
        monkeypatch.delenv(background.SWEEP_SECONDS_ENV, raising=False)
    else:
        monkeypatch.setenv(background.SWEEP_SECONDS_ENV, raw)
    assert background.sweep_interval() == seconds


def test_the_app_runs_the_sweep_as_a_lifespan_task():
    from watheeq_ui.watheeq_ui import app

    assert background.close_stale_calls_periodically in app.get_lifespan_tasks()
