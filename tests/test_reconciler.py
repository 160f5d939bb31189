"""The reconciler: catch-up and live feed into the ledger, leases fenced by epoch, gaps, health."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from services import db
from services.models import Call, CallLeg, PbxFeed, PbxSettings, utcnow
from services.pbx import feed
from services.pbx.reconciler import Reconciler, ReconcilerSettings
from services.pbx.records import CdrSourceError
from tests import factories as f
from tests.ledger_support import AccountingPbx, AccountingSource, leg


def _setup(session, n_firms=1):
    firms = []
    for _ in range(n_firms):
        tenant = f.make_tenant(session)
        session.add(PbxSettings(tenant_id=tenant.id, host="127.0.0.1", cdr_source="lab"))
        firms.append(tenant)
    session.commit()
    return firms


def _calls_of(pbx: AccountingPbx, n: int, start: int = 0, legs_per_call: int = 2):
    records = []
    for i in range(start, start + n):
        for j in range(legs_per_call):
            answered = j == 0 and i % 3 != 0
            records.append(leg(f"call-{i}", unique_id=f"call-{i}-leg-{j}", extension=f"10{j:02d}", start=i * 30,
                               answer=i * 30 + 4 if answered else None, end=i * 30 + 20))
    pbx.write(records)
    return records


def _counts(engine, tenant_id):
    with engine.connect() as conn:
        legs = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(CallLeg.unique_id))).where(CallLeg.tenant_id == tenant_id)).one()
        calls = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(Call.pbx_linked_id))).where(Call.tenant_id == tenant_id)).one()
    return tuple(legs), tuple(calls)


async def _until(predicate, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_catch_up_then_live_then_a_lost_feed_fills_its_gap(engine, session, tmp_path):
    [tenant] = _setup(session)
    pbx = AccountingPbx(tmp_path / "acc.sqlite")
    _calls_of(pbx, 40)
    sources: list[AccountingSource] = []

    def source_for(settings):
        # The live feed drops 5 records and then closes: the catch-up must find them.
        source = AccountingSource(pbx, live_skip={83, 84, 85, 86, 87}, live_stop_after=10) if not sources else AccountingSource(pbx)
        sources.append(source)
        return source

    settings = ReconcilerSettings(tick_seconds=0.1, lease_seconds=5, batch_size=25, catch_up_batch=25, flush_seconds=0.05,
                                  catch_up_seconds=600, backoff_base=0.05, backoff_cap=0.1)
    reconciler = Reconciler(worker_id="w1", settings=settings, source_factory=source_for)

    async def scenario():
        task = asyncio.create_task(reconciler.run())
        await _until(lambda: _counts(engine, tenant.id)[0] == (80, 80))
        _calls_of(pbx, 10, start=40)  # 20 records while live: positions 81-100
        await _until(lambda: _counts(engine, tenant.id)[0] == (100, 100))

        def health_now():
            with db.session_scope() as s:
                return feed.get_health(session=s, tenant_id=tenant.id)

        # The catch-up that fills the gap commits before the new live feed says it is up.
        await _until(lambda: health_now().connected)
        health = health_now()
        reconciler.stopping.set()
        await task
        return health

    health = asyncio.run(scenario())
    assert _counts(engine, tenant.id) == ((100, 100), (50, 50))
    assert (health.connected, health.records_today, health.gaps_filled, health.source_kind) == (True, 100, 1, "lab")
    assert health.last_gap_at is not None and health.last_error_code is None
    with db.session_scope() as s:
        row = s.exec(sa.select(PbxFeed.watermark, PbxFeed.worker_id).where(PbxFeed.tenant_id == tenant.id)).one()
    assert tuple(row) == (100, None)  # released on stop


def test_a_worker_that_lost_its_lease_writes_nothing(engine, session):
    [tenant] = _setup(session)
    now = utcnow()
    with db.session_scope() as s:
        [old] = feed.claim_feeds(session=s, worker_id="a", lease_seconds=10, now=now)
    with db.session_scope() as s:
        assert feed.claim_feeds(session=s, worker_id="b", lease_seconds=10, now=now + timedelta(seconds=5)) == []
    with db.session_scope() as s:
        [new] = feed.claim_feeds(session=s, worker_id="b", lease_seconds=10, now=now + timedelta(seconds=11))
    assert new.epoch == old.epoch + 1
    with pytest.raises(feed.LeaseLost), db.session_scope() as s:
        feed.commit_batch(session=s, tenant_id=tenant.id, worker_id="a", epoch=old.epoch,
                          records=[leg("X", position=1, unique_id="x1")], source_kind="lab", live=True)
    with db.session_scope() as s:
        assert feed.renew_leases(session=s, worker_id="a", held={tenant.id: old.epoch}, lease_seconds=10) == set()
        # The same worker id under an old epoch (a restarted process) is fenced out too.
        with pytest.raises(feed.LeaseLost):
            feed.read_watermark(session=s, tenant_id=tenant.id, worker_id="b", epoch=old.epoch)
    assert _counts(engine, tenant.id) == ((0, 0), (0, 0))
    with db.session_scope() as s:
        out = feed.commit_batch(session=s, tenant_id=tenant.id, worker_id="b", epoch=new.epoch,
                                records=[leg("X", position=1, unique_id="x1"), leg("X", position=3, unique_id="x3")],
                                source_kind="lab", live=True)
    # Live records move the watermark only over positions without a hole.
    assert (out.watermark, out.result.legs_inserted) == (1, 2)


def test_a_source_error_is_the_feeds_health_and_is_retried(engine, session, tmp_path):
    [tenant] = _setup(session)
    pbx = AccountingPbx(tmp_path / "acc.sqlite")
    _calls_of(pbx, 3)
    attempts: list[int] = []

    def source_for(settings):
        attempts.append(1)
        return AccountingSource(pbx, fail_catch_up=CdrSourceError("auth_failed", "the PBX refused the API user's password"))

    settings = ReconcilerSettings(tick_seconds=0.1, lease_seconds=5, backoff_base=0.05, backoff_cap=0.1)
    reconciler = Reconciler(worker_id="w1", settings=settings, source_factory=source_for)

    async def scenario():
        task = asyncio.create_task(reconciler.run())

        def failed():
            with db.session_scope() as s:
                health = feed.get_health(session=s, tenant_id=tenant.id)
            return health is not None and health.last_error_code == "auth_failed"

        await _until(failed)
        await asyncio.sleep(0.3)
        reconciler.stopping.set()
        await task

    asyncio.run(scenario())
    with db.session_scope() as s:
        health = feed.get_health(session=s, tenant_id=tenant.id)
    assert (health.connected, health.last_error) == (False, "the PBX refused the API user's password")
    assert _counts(engine, tenant.id) == ((0, 0), (0, 0))


def test_after_a_batch_the_firms_pending_recordings_are_fetched(engine, session, tmp_path, monkeypatch):
    from services.models import CallRecording
    from services.pbx import reconciler as reconciler_module

    [tenant] = _setup(session)
    pbx = AccountingPbx(tmp_path / "acc.sqlite")
    pbx.write([leg("R1", unique_id="r1", answer=2, end=20, recordings=("r1.wav",))])
    fetched: list[tuple[int, list[str | None]]] = []

    def fetch_pending(*, session_factory, tenant_id, source):
        # What services.pbx.recordings.fetch_pending sees: the rows the batch committed.
        with session_factory() as s:
            names = list(s.exec(sa.select(CallRecording.source_file).where(CallRecording.tenant_id == tenant_id)).scalars())
        fetched.append((tenant_id, names))
        return len(names)

    monkeypatch.setattr(reconciler_module, "_fetch_recordings", lambda: fetch_pending)
    reconciler = Reconciler(worker_id="w1", settings=ReconcilerSettings(tick_seconds=0.1, lease_seconds=5),
                            source_factory=lambda settings: AccountingSource(pbx))

    async def scenario():
        task = asyncio.create_task(reconciler.run())
        await _until(lambda: bool(fetched))
        reconciler.stopping.set()
        await task

    asyncio.run(scenario())
    assert fetched[0] == (tenant.id, ["r1.wav"])
