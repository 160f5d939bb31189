"""The operator CLI, run as operators run it: a subprocess with its own environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from services import db, key_rotation, security
from services.config import PROJECT_ROOT


def _runner(tmp_path: Path, db_file: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATHEEQ_")}
    env |= {
        "WATHEEQ_DATABASE_URL": f"sqlite:///{db_file}",
        "WATHEEQ_ENV_FILE": str(tmp_path / "cli.env"),
        "WATHEEQ_SECRET_KEY": security.generate_key(),
    }

    def run(*args: str, check: bool = True, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            cwd=PROJECT_ROOT, env=env | (extra_env or {}), capture_output=True, text=True, timeout=120,
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    run.env = env  # type: ignore[attr-defined]
    run.db_url = env["WATHEEQ_DATABASE_URL"]  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database migrated by the CLI; tests start from copies of it."""
    folder = tmp_path_factory.mktemp("cli-template")
    _runner(folder, folder / "template.db")("migrate")
    return folder / "template.db"


@pytest.fixture
def fresh_cli(tmp_path: Path):
    """The CLI on an empty database (nothing migrated)."""
    return _runner(tmp_path, tmp_path / "cli.db")


@pytest.fixture
def cli(tmp_path: Path, migrated_template: Path):
    """The CLI on a freshly migrated database of its own."""
    shutil.copy(migrated_template, tmp_path / "cli.db")
    return _runner(tmp_path, tmp_path / "cli.db")


def _scalar(url: str, sql: str):
    engine = db.create_db_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def test_migrate_creates_the_schema_and_is_repeatable(fresh_cli) -> None:
    fresh_cli("migrate")
    fresh_cli("migrate")
    assert _scalar(fresh_cli.db_url, "select count(*) from alembic_version") == 1
    assert _scalar(fresh_cli.db_url, "select count(*) from tenant") == 0


def test_create_tenant_and_user_print_their_ids_on_the_last_line(cli) -> None:
    tenant_out = cli("create-tenant", "--name", "Al-Waha Law Firm", "--region", "SA", "--timezone", "Asia/Riyadh").stdout
    tenant_id = tenant_out.strip().splitlines()[-1]
    assert tenant_id.isdigit()
    user_out = cli("create-user", "--tenant-id", tenant_id, "--email", "Owner@Firm.sa", "--password", "long-enough",
                   "--role", "OWNER", "--name", "Faisal").stdout
    user_id = user_out.strip().splitlines()[-1]
    assert user_id.isdigit()
    assert _scalar(cli.db_url, f"select email from user where id = {user_id} and tenant_id = {tenant_id}") == "owner@firm.sa"
    assert "long-enough" not in user_out


@pytest.mark.parametrize(
    "args",
    [
        ["create-tenant", "--name", "  "],
        ["create-tenant", "--name", "Firm", "--region", "ZZ"],
        ["create-tenant", "--name", "Firm", "--timezone", "Nowhere/City"],
        ["create-user", "--tenant-id", "1", "--email", "bad", "--password", "long-enough", "--role", "AGENT"],
        ["create-user", "--tenant-id", "1", "--email", "a@firm.sa", "--password", "short", "--role", "AGENT"],
        ["create-user", "--tenant-id", "1", "--email", "a@firm.sa", "--password", "long-enough", "--role", "KING"],
        ["create-user", "--tenant-id", "77", "--email", "a@firm.sa", "--password", "long-enough", "--role", "AGENT"],
        ["create-user", "--tenant-id", "one", "--email", "a@firm.sa", "--password", "long-enough", "--role", "AGENT"],
        ["seed-demo", "--calls", "-5"],
        ["no-such-command"],
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(cli, args: list[str]) -> None:
    cli("create-tenant", "--name", "Firm")
    proc = cli(*args, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() and "Traceback" not in proc.stderr


def test_duplicate_email_is_reported_as_such(cli) -> None:
    tenant_id = cli("create-tenant", "--name", "Firm").stdout.split()[-1]
    cli("create-user", "--tenant-id", tenant_id, "--email", "a@firm.sa", "--password", "long-enough", "--role", "AGENT")
    proc = cli("create-user", "--tenant-id", tenant_id, "--email", "A@firm.sa", "--password", "long-enough",
               "--role", "AGENT", check=False)
    assert proc.returncode == 2 and "email" in proc.stderr and "already exists" in proc.stderr


def test_commands_before_migrate_explain_instead_of_crashing(fresh_cli) -> None:
    proc = fresh_cli("create-tenant", "--name", "Firm", check=False)
    assert proc.returncode == 1 and "migrate" in proc.stderr and "Traceback" not in proc.stderr


def test_seed_demo_creates_a_usable_demo_and_if_empty_leaves_it_alone(cli) -> None:
    out = cli("seed-demo", "--calls", "120", "--clients-per-tenant", "15").stdout
    assert "owner@demo.watheeq.local" in out and "agent@demo.watheeq.local" in out and "watheeq-demo" in out
    assert _scalar(cli.db_url, "select count(*) from call") == 120
    assert _scalar(cli.db_url, "select name from tenant") == "Al-Waha Law Firm"
    again = cli("seed-demo", "--if-empty").stdout
    assert "nothing seeded" in again
    assert "SIP passwords" in out and "SIP passwords" not in again
    assert _scalar(cli.db_url, "select count(*) from tenant") == 1
    assert _scalar(cli.db_url, "select count(*) from call") == 120


def test_seed_demo_is_refused_in_production(cli) -> None:
    proc = cli("seed-demo", check=False, extra_env={"WATHEEQ_ENV": "production"})
    assert proc.returncode == 2 and "production" in proc.stderr
    assert _scalar(cli.db_url, "select count(*) from tenant") == 0


def test_rotate_key_reencrypts_secrets_and_keeps_the_old_key_as_previous(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    old_key = cli.env.pop("WATHEEQ_SECRET_KEY")
    env_file = Path(cli.env["WATHEEQ_ENV_FILE"])
    env_file.write_text(f"# dev\nWATHEEQ_SECRET_KEY={old_key}\n")
    cli("seed-demo", "--calls", "0", "--clients-per-tenant", "1")
    ciphertext = _scalar(cli.db_url, "select password_encrypted from sip_extension where extension = '1001'")
    monkeypatch.setenv("WATHEEQ_SECRET_KEY", old_key)
    sip_password = security.decrypt_secret(ciphertext, purpose=key_rotation.SIP_PASSWORD_PURPOSE)

    proc = cli("rotate-key")
    assert "re-encrypted 4 secret(s)" in proc.stdout
    values = key_rotation.read_env_file(env_file)
    new_key = values["WATHEEQ_SECRET_KEY"]
    assert new_key != old_key and values["WATHEEQ_PREVIOUS_SECRET_KEYS"] == old_key
    assert old_key not in proc.stdout + proc.stderr and new_key not in proc.stdout + proc.stderr

    ciphertext = _scalar(cli.db_url, "select password_encrypted from sip_extension where extension = '1001'")
    assert security.ciphertext_key_id(ciphertext) == security.parse_key(new_key).kid
    monkeypatch.setenv("WATHEEQ_SECRET_KEY", new_key)
    monkeypatch.delenv("WATHEEQ_PREVIOUS_SECRET_KEYS", raising=False)
    assert security.decrypt_secret(ciphertext, purpose=key_rotation.SIP_PASSWORD_PURPOSE) == sip_password

    cli("rotate-key")
    values = key_rotation.read_env_file(env_file)
    assert values["WATHEEQ_PREVIOUS_SECRET_KEYS"] == f"{new_key},{old_key}"


def test_rotate_key_refuses_a_key_that_does_not_live_in_the_env_file(cli) -> None:
    env_file = Path(cli.env["WATHEEQ_ENV_FILE"])
    proc = cli("rotate-key", check=False)
    assert proc.returncode == 2 and str(env_file) in proc.stderr
    assert cli.env["WATHEEQ_SECRET_KEY"] not in proc.stderr
    assert not env_file.exists()


# --------------------------------------------------------------------------- the demo seed itself


def test_seed_demo_data_is_consistent_and_realistic(session) -> None:
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from sqlmodel import select

    from services import phones, seed
    from services.models import Call, CallStatus, Case, Client, PbxSettings, Role, SipExtension, User

    now = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
    report = seed.seed_demo(session=session, calls=1001, tenants=2, clients_per_tenant=40, now=now)
    assert [t.name for t in report.tenants] == ["Al-Waha Law Firm", "Al-Nakheel Legal Consultants"]
    assert (report.calls, report.clients) == (1001, 80)

    tenant_ids = [t.id for t in report.tenants]
    calls = session.exec(select(Call)).all()
    assert sorted(sum(1 for c in calls if c.tenant_id == t) for t in tenant_ids) == [500, 501]

    clients = {c.id: c for c in session.exec(select(Client)).all()}
    for client in clients.values():
        assert phones.normalise(client.phone, "SA") == client.phone_e164
    assert len({(c.tenant_id, c.phone_e164) for c in clients.values()}) == len(clients)
    first = session.exec(select(Client).where(Client.tenant_id == tenant_ids[0]).order_by(Client.id)).first()
    assert first.phone_e164 == "+966501234567"

    by_number = {(c.tenant_id, c.phone_e164): c.id for c in clients.values()}
    cases = {c.id: c for c in session.exec(select(Case)).all()}
    riyadh = ZoneInfo("Asia/Riyadh")
    business_hours = 0
    for call in calls:
        assert now - timedelta(days=31) < call.started_at <= now
        assert phones.normalise(call.remote_number, "SA") == call.remote_e164
        assert call.client_id == by_number.get((call.tenant_id, call.remote_e164))
        if call.case_id is not None:
            assert cases[call.case_id].client_id == call.client_id
        if call.status is CallStatus.COMPLETED:
            assert call.answered_at == call.started_at + timedelta(seconds=call.ring_seconds)
            assert call.ended_at == call.answered_at + timedelta(seconds=call.talk_seconds)
        else:
            assert call.answered_at is None and call.talk_seconds is None
        business_hours += 8 <= call.started_at.astimezone(riyadh).hour < 18
    assert business_hours > 0.85 * len(calls)
    statuses = {c.status for c in calls}
    assert {CallStatus.COMPLETED, CallStatus.MISSED, CallStatus.NO_ANSWER} <= statuses
    assert 0.5 < sum(c.client_id is not None for c in calls) / len(calls) < 0.95

    roles = {u.role for u in session.exec(select(User).where(User.tenant_id == tenant_ids[0])).all()}
    assert roles == set(Role)
    extensions = session.exec(select(SipExtension).where(SipExtension.tenant_id == tenant_ids[0])).all()
    assert sorted(e.extension for e in extensions) == ["1001", "1002", "1003", "1004"]
    by_extension = {login.extension: login.sip_password for login in report.logins if login.tenant == report.tenants[0].name}
    for ext in extensions:
        assert security.decrypt_secret(ext.password_encrypted, purpose=key_rotation.SIP_PASSWORD_PURPOSE) == by_extension[ext.extension]
    pbx = session.exec(select(PbxSettings).where(PbxSettings.tenant_id == tenant_ids[0])).one()
    assert (pbx.host, pbx.transport, pbx.wss_port, pbx.wss_path) == ("127.0.0.1", "ws", 8088, "/ws")
    domains = session.exec(select(PbxSettings.sip_domain)).all()
    assert sorted(domains) == ["al-nakheel-legal-consultants.pbx.localhost", "al-waha-law-firm.pbx.localhost"]
    assert security.verify_password(seed.DEMO_PASSWORD, session.exec(
        select(User.password_hash).where(User.email == "owner@demo.watheeq.local")).one())


def test_seeded_sip_passwords_are_random_per_run_and_printed_once(cli, tmp_path: Path) -> None:
    from services.models import SipExtension

    def seeded_passwords(run) -> tuple[str, dict[str, str]]:
        out = run("seed-demo", "--calls", "0", "--clients-per-tenant", "1").stdout
        engine = db.create_db_engine(run.db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.select(SipExtension.extension, SipExtension.password_encrypted)).all()
        finally:
            engine.dispose()
        key = run.env["WATHEEQ_SECRET_KEY"]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("WATHEEQ_SECRET_KEY", key)
            return out, {n: security.decrypt_secret(c, purpose=key_rotation.SIP_PASSWORD_PURPOSE) for n, c in rows}

    out_one, first = seeded_passwords(cli)
    other = tmp_path / "other"
    other.mkdir()
    second_run = _runner(other, other / "second.db")
    second_run("migrate")
    _, second = seeded_passwords(second_run)

    assert sorted(first) == sorted(second) == ["1001", "1002", "1003", "1004"]
    for number, password in first.items():
        assert password != f"secret{number}" and number not in password
        assert len(password) >= 20
        assert password != second[number]
        assert out_one.count(password) == 1  # printed once, by the seed that made it
    assert len(set(first.values())) == 4


def test_seed_demo_rejects_bad_sizes(session) -> None:
    from services import seed
    from services.errors import Invalid

    for kwargs in ({"tenants": 0}, {"calls": -1}, {"clients_per_tenant": -1}, {"password": "short"}):
        with pytest.raises(Invalid):
            seed.seed_demo(session=session, **kwargs)
    assert not seed.has_tenants(session=session)
