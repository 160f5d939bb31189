"""A stored call recording plays in Chromium from the call's side panel, seeks, and is audited;
the owners' recordings page lists the play."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests import factories
from tests.e2e.conftest import LOGINS, login, screenshot

pytestmark = pytest.mark.e2e

SECONDS = 4.0
_numbers = itertools.count(int(time.time()) % 100_000)


def _new_number() -> str:
    # One call per test: the calls live in one app (and database) for the whole package.
    return f"05099{next(_numbers) % 100_000:05d}"


def _data_dir(app) -> Path:
    # The app fixture gives the app WATHEEQ_DATA_DIR=<work>/data beside its database.
    return Path(app.database_url.removeprefix("sqlite:///")).parent / "data"


@pytest.fixture
def recorded_call(app, services_db, tmp_path):
    """A call of the demo agent, a minute ago, with a 4 s WAV recording stored encrypted where the app reads it."""
    from services import storage
    from services.models import Blob, Tenant, User, utcnow

    wav = factories.make_wav(tmp_path / "call.wav", SECONDS).read_bytes()
    store = storage.LocalEncryptedStore(_data_dir(app) / "store")
    with services_db.session_scope() as session:
        agent = session.execute(sa.select(User).where(User.email == LOGINS["AGENT"])).scalar_one()
        tenant = session.get(Tenant, agent.tenant_id)
        number = _new_number()
        call = factories.make_call(session, tenant, agent=agent, remote_number=number, started_at=utcnow() - timedelta(minutes=1), talk_seconds=4)
        rec = factories.make_stored_recording(session, call, wav, store=store, duration_seconds=round(SECONDS))
        ids = {"call": call.id, "recording": rec.id, "agent": agent.id, "key": session.get(Blob, rec.blob_id).storage_key, "number": number}
    # At rest: neither a RIFF header nor the audio's bytes.
    on_disk = store._path(ids["key"]).read_bytes()
    assert not on_disk.startswith(b"RIFF") and wav[2000:2100] not in on_disk
    return ids


def _open_call(page, number: str) -> None:
    page.goto("/calls")
    expect(page.get_by_test_id("call-row").first).to_be_visible()
    page.get_by_test_id("filter-number").fill(number)
    rows = page.get_by_test_id("call-row")
    expect(rows).to_have_count(1)
    rows.first.click()
    expect(page.get_by_test_id("call-panel")).to_be_visible()


def test_the_calls_agent_plays_the_recording_to_its_end_and_seeks(page, services_db, recorded_call):
    from services.models import AuditEvent

    login(page, "AGENT")
    _open_call(page, recorded_call["number"])
    audio = page.get_by_test_id("recording-audio")
    expect(audio).to_have_count(1)
    expect(page.get_by_test_id("recording-duration")).to_contain_text("0:04")
    # Muted: a headless browser plays without a user's sound output and autoplay rules.
    duration = audio.evaluate(
        """async (a) => {
            a.muted = true;
            if (!(a.duration > 0)) await new Promise((ok, fail) => {
                a.addEventListener('loadedmetadata', ok, {once: true});
                a.addEventListener('error', () => fail(new Error('audio error ' + (a.error && a.error.code))), {once: true});
                a.load();
            });
            return a.duration;
        }"""
    )
    assert duration == pytest.approx(SECONDS, abs=1.0)
    started = time.monotonic()
    ended = audio.evaluate(
        """async (a) => {
            const done = new Promise((ok) => a.addEventListener('ended', () => ok(true), {once: true}));
            await a.play();
            return await Promise.race([done, new Promise((ok) => setTimeout(() => ok(false), 15000))]);
        }"""
    )
    assert ended is True
    assert time.monotonic() - started >= SECONDS - 1.0
    # Seeking asks for a byte range the route serves (206): playing from 3 s ends after ~1 s.
    seeked = audio.evaluate(
        """async (a) => {
            a.currentTime = 3.0;
            await new Promise((ok) => a.addEventListener('seeked', ok, {once: true}));
            const at = a.currentTime;
            const done = new Promise((ok) => a.addEventListener('ended', () => ok(true), {once: true}));
            await a.play();
            const end = await Promise.race([done, new Promise((ok) => setTimeout(() => ok(false), 10000))]);
            return [at, end, a.currentTime];
        }"""
    )
    assert seeked[0] == pytest.approx(3.0, abs=0.1) and seeked[1] is True
    assert seeked[2] == pytest.approx(SECONDS, abs=1.0)
    screenshot(page, "recording-played")
    with services_db.session_scope() as session:
        plays = session.execute(
            sa.select(AuditEvent.actor_user_id, AuditEvent.detail)
            .where(AuditEvent.action == "recording.play", AuditEvent.object_id == str(recorded_call["recording"]))
        ).all()
    assert plays and all(actor == recorded_call["agent"] for actor, _ in plays)
    assert all(detail["call_id"] == recorded_call["call"] for _, detail in plays)
    # The browser asked for ranges (206 answers), not only the whole file.
    assert any(detail["range"] != "all" for _, detail in plays)


def test_the_owner_sees_who_played_it(page, recorded_call):
    login(page, "AGENT")
    _open_call(page, recorded_call["number"])
    page.get_by_test_id("recording-audio").evaluate(
        "async (a) => { a.muted = true; await a.play(); a.pause(); }"
    )
    page.get_by_test_id("panel-close").click()
    expect(page.get_by_test_id("call-panel")).to_have_count(0)
    page.get_by_test_id("logout").click()
    login(page, "OWNER")
    page.goto("/recordings")
    rows = page.get_by_test_id("audit-row")
    expect(rows.first).to_be_visible()
    expect(page.get_by_test_id("audit-table")).to_contain_text(LOGINS["AGENT"])
    expect(page.get_by_test_id("audit-table")).to_contain_text(str(recorded_call["call"]))
    screenshot(page, "recording-audit")


def test_an_admin_sets_retention_and_a_legal_hold_but_does_not_see_the_audit_log(page, services_db):
    from services.models import Case, PbxSettings, User

    with services_db.session_scope() as session:
        tenant_id = session.execute(sa.select(User.tenant_id).where(User.email == LOGINS["ADMIN"])).scalar_one()
        reference, title = session.execute(
            sa.select(Case.reference, Case.title).where(Case.tenant_id == tenant_id, Case.legal_hold.is_(False)).order_by(Case.id)
        ).first()
    login(page, "ADMIN")
    page.goto("/recordings")
    days = page.get_by_test_id("retention-days")
    expect(days).to_have_value("365")
    days.fill("0")
    page.get_by_test_id("retention-save").click()
    expect(page.get_by_test_id("field-error")).to_contain_text("between 1 and 3650 days")
    days.fill("400")
    page.get_by_test_id("retention-save").click()
    expect(page.get_by_test_id("field-error")).to_have_count(0)
    page.get_by_test_id("hold-search").fill(reference)
    page.get_by_test_id("hold-search-submit").click()
    expect(page.get_by_test_id("case-result")).to_have_count(1)
    page.get_by_test_id("hold-set").click()
    expect(page.get_by_test_id("held-case")).to_contain_text(title)
    expect(page.get_by_test_id("audit-table")).to_have_count(0)
    screenshot(page, "recordings-admin")
    with services_db.session_scope() as session:
        assert session.execute(sa.select(PbxSettings.recording_retention_days).where(PbxSettings.tenant_id == tenant_id)).scalar_one() == 400
        assert session.execute(sa.select(Case.legal_hold).where(Case.reference == reference, Case.tenant_id == tenant_id)).scalar_one() is True
    page.reload()
    expect(page.get_by_test_id("retention-days")).to_have_value("400")
    expect(page.get_by_test_id("held-case")).to_contain_text(title)
    page.get_by_test_id("hold-release").click()
    expect(page.get_by_test_id("held-case")).to_have_count(0)


def test_a_broken_or_expired_link_is_renewed_by_the_player(page, recorded_call):
    login(page, "AGENT")
    _open_call(page, recorded_call["number"])
    audio = page.get_by_test_id("recording-audio")
    first = audio.get_attribute("src")
    assert "sig=" in first and f"/recordings/{recorded_call['recording']}?" in first
    # What an expired link gets from the route (401): the player's error renews the link (a
    # really expired one is 15 to 30 minutes old).
    audio.evaluate("(a) => { a.src = a.src.replace(/sig=[^&]+/, 'sig=1.0.expired'); a.load(); }")
    page.wait_for_function(
        "([a, first]) => a.src !== first && !a.src.includes('expired')", arg=[audio.element_handle(), first], timeout=15_000
    )
    duration = audio.evaluate(
        """async (a) => {
            if (!(a.duration > 0)) await new Promise((ok) => a.addEventListener('loadedmetadata', ok, {once: true}));
            return a.duration;
        }"""
    )
    assert duration == pytest.approx(SECONDS, abs=1.0)
