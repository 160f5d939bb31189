"""The dev PBX: credentials exported from the database, digest auth checked by a real Kamailio.

Kamailio runs inside a private network namespace whose only interface is ``lo``, so the
test can only ever send traffic to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.call_center import extensions
from services.models import ExtensionAssign, PbxSettingsIn, Role
from tests import factories
from tests.browser import unavailable

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent


def _credentials_module():
    spec = importlib.util.spec_from_file_location("dev_pbx_credentials", ROOT / "dev/kamailio/credentials.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _firm(session, host: str, numbers: dict[str, str]):
    tenant = factories.make_tenant(session)
    admin = factories.principal_of(factories.make_user(session, tenant, Role.ADMIN))
    extensions.update_pbx_settings(session=session, tenant_id=tenant.id, actor=admin, data=PbxSettingsIn(host=host))
    for number, password in numbers.items():
        agent = factories.make_user(session, tenant)
        extensions.assign_extension(
            session=session, tenant_id=tenant.id, actor=admin,
            data=ExtensionAssign(user_id=agent.id, extension=number, password=password),
        )
    return tenant


def _domain(session, tenant) -> str:
    return extensions.get_pbx_settings(session=session, tenant_id=tenant.id).sip_domain


def test_only_loopback_firms_are_exported_as_ha1_per_firm_domain_without_clear_passwords(session, tmp_path):
    creds = _credentials_module()
    one = _firm(session, "127.0.0.1", {"1001": "pw-one-1001", "1002": "pw-two-1002"})
    _firm(session, "pbx.example.org", {"2001": "remote-secret"})
    two = _firm(session, "localhost", {"1001": "second-firm-1001"})  # the same number, another firm
    clash = _firm(session, "127.0.0.1", {"1005": "clash-secret"})
    admin = factories.principal_of(factories.make_user(session, clash, Role.ADMIN))
    extensions.update_pbx_settings(session=session, tenant_id=clash.id, actor=admin,
                                   data=PbxSettingsIn(host="127.0.0.1", sip_domain=_domain(session, one)))
    out = tmp_path / "credentials.cfg"
    messages = creds.write(out, session)
    text = out.read_text()
    a, b = _domain(session, one), _domain(session, two)
    assert a != b and a.endswith(".pbx.localhost") and b.endswith(".pbx.localhost")
    assert f"$sht(domains=>{a}) = {one.id};" in text and f"$sht(domains=>{b}) = {two.id};" in text
    assert f'$sht(ha1=>1001@{a}) = "{hashlib.md5(f"1001:{a}:pw-one-1001".encode()).hexdigest()}";' in text
    assert f'$sht(ha1=>1002@{a}) = "{hashlib.md5(f"1002:{a}:pw-two-1002".encode()).hexdigest()}";' in text
    assert f'$sht(ha1=>1001@{b}) = "{hashlib.md5(f"1001:{b}:second-firm-1001".encode()).hexdigest()}";' in text
    assert "2001" not in text and "1005" not in text
    for secret in ("pw-one-1001", "pw-two-1002", "remote-secret", "clash-secret", "second-firm-1001"):
        assert secret not in text
    assert any(f"already used by firm {one.id}" in m for m in messages)
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def _can_run_kamailio() -> str | None:
    for tool in ("kamailio", "sipp", "unshare", "nsenter", "kamcmd", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "unshare --net needs root"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        return "network namespaces are not available here (unshare --net failed)"
    return None


@pytest.fixture
def loopback_netns():
    reason = _can_run_kamailio()
    if reason:
        unavailable(f"dev PBX test cannot run: {reason}")
    holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"], start_new_session=True)
    try:
        # Until unshare has run, the holder is still in our namespace: "lo up" would then
        # succeed on ours and leave the new namespace's lo down.
        ours = os.stat("/proc/self/ns/net").st_ino
        for _ in range(500):
            if os.stat(f"/proc/{holder.pid}/ns/net").st_ino != ours:
                break
            time.sleep(0.01)
        subprocess.run(["nsenter", "-t", str(holder.pid), "-n", "ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


@contextlib.contextmanager
def _kamailio(session, run: Path, ns: int):
    """The dev PBX's config and the database's credentials, in a Kamailio inside ``ns``."""
    run.mkdir()
    shutil.copy(ROOT / "dev/kamailio/kamailio.cfg", run / "kamailio.cfg")
    _credentials_module().write(run / "credentials.cfg", session)
    subprocess.run(["bash", str(ROOT / "dev/kamailio/make_cert.sh"), str(run)], check=True)
    (run / "tls.cfg").write_text((ROOT / "dev/kamailio/tls.cfg.in").read_text().replace("@DIR@", str(run)))
    ctl = run / "kamailio.ctl"
    log = open(run / "kamailio.log", "w")
    kam = subprocess.Popen(
        ["nsenter", "-t", str(ns), "-n", "kamailio", "-DD", "-E", "-f", str(run / "kamailio.cfg"),
         "-Y", str(run), "-m", "32", "-M", "8", "-A", f'CTLSOCK="unix:{ctl}"',
         "-A", "WITH_TLS", "-A", f'TLSCFG="{run / "tls.cfg"}"'],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            if ctl.exists() and subprocess.run(["kamcmd", "-s", f"unix:{ctl}", "core.uptime"], capture_output=True).returncode == 0:
                break
            assert kam.poll() is None, (run / "kamailio.log").read_text()[-2000:]
            time.sleep(0.05)
        # The control socket answers a moment before the SIP workers: wait for UDP 5060.
        for _ in range(100):
            out = subprocess.run(["nsenter", "-t", str(ns), "-n", "ss", "-Hlun", "sport = :5060"], capture_output=True, text=True).stdout
            if out.strip():
                break
            time.sleep(0.05)
        yield lambda: subprocess.run(["kamcmd", "-s", f"unix:{ctl}", "ul.dump"], capture_output=True, text=True).stdout
    finally:
        kam.terminate()
        kam.wait(timeout=10)
        log.close()


def _sip(ns: int, steps: list[dict], tmp_path: Path) -> list:
    """Runs a sip_udp.py scenario inside the namespace; its results, step by step."""
    scenario = tmp_path / f"scenario-{time.monotonic_ns()}.json"
    scenario.write_text(json.dumps(steps))
    done = subprocess.run(["nsenter", "-t", str(ns), "-n", sys.executable, str(HERE / "sip_udp.py"), str(scenario)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_dev_pbx_registers_a_seeded_extension_with_digest_and_refuses_a_wrong_password(session, tmp_path, loopback_netns):
    firm = _firm(session, "127.0.0.1", {"1001": "pw-one-1001"})
    domain = _domain(session, firm)
    with _kamailio(session, tmp_path / "pbx", loopback_netns) as dump:
        assert _sip(loopback_netns, [
            {"op": "register", "port": 5071, "user": "1001", "domain": domain, "password": "pw-one-1001"},
            {"op": "register", "port": 5072, "user": "1001", "domain": domain, "password": "not-the-password"},
        ], tmp_path) == [200, 401]
        registered = dump()
        assert f"AoR: 1001@{domain}" in registered
        assert "sip:1001@127.0.0.1:5071" in registered
        assert "5072" not in registered
        # sipp, as the README shows it for a desk phone, registers too.
        sipp = subprocess.run(
            ["nsenter", "-t", str(loopback_netns), "-n", "sipp", "127.0.0.1:5060", "-i", "127.0.0.1", "-p", "5073",
             "-sf", str(HERE / "sipp_register.xml"), "-s", "1001", "-au", "1001", "-ap", "pw-one-1001",
             "-set", "domain", domain, "-m", "1", "-nostdin", "-timeout", "5"],
            capture_output=True, cwd=tmp_path, timeout=20,
        )
        assert sipp.returncode == 0, sipp.stdout[-2000:]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_an_extension_may_register_and_call_only_as_itself(session, tmp_path, loopback_netns):
    firm = _firm(session, "127.0.0.1", {"1001": "pw-one-1001", "1002": "pw-two-1002"})
    d = _domain(session, firm)
    me = {"user": "1001", "domain": d, "password": "pw-one-1001"}
    with _kamailio(session, tmp_path / "pbx", loopback_netns) as dump:
        results = _sip(loopback_netns, [
            # 1001's password, 1002's address: refused, whatever From says.
            {"op": "register", "port": 5081, **me, "to_user": "1002"},
            {"op": "register", "port": 5082, "user": "1002", "domain": d, "password": "pw-one-1001", "auth_user": "1001"},
            # Calling as 1002 with 1001's password: refused too.
            {"op": "invite", "port": 5083, "user": "1002", "domain": d, "password": "pw-one-1001", "auth_user": "1001",
             "target": f"sip:1001@{d}"},
            # Its own address: fine.
            {"op": "register", "port": 5084, **me},
        ], tmp_path)
        assert results == [403, 403, 403, 200]
        registered = dump()
        assert f"AoR: 1001@{d}" in registered and "AoR: 1002" not in registered
        assert "5081" not in registered and "5082" not in registered


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_another_firms_1001_never_receives_a_call_to_this_firms_1001(session, tmp_path, loopback_netns):
    firm_a = _firm(session, "127.0.0.1", {"1001": "a-1001-password", "1002": "a-1002-password"})
    firm_b = _firm(session, "127.0.0.1", {"1001": "b-1001-password", "1002": "b-1002-password"})
    a, b = _domain(session, firm_a), _domain(session, firm_b)
    a2 = {"user": "1002", "domain": a, "password": "a-1002-password"}
    with _kamailio(session, tmp_path / "pbx", loopback_netns) as dump:
        results = _sip(loopback_netns, [
            {"op": "register", "port": 5091, "user": "1001", "domain": b, "password": "b-1001-password"},
            # Firm A's 1001 is not registered: firm B's 1001 must not take the call.
            {"op": "invite", "port": 5092, **a2, "target": f"sip:1001@{a}"},
            # Nor may firm A dial into firm B's domain.
            {"op": "invite", "port": 5092, **a2, "target": f"sip:1001@{b}"},
            {"op": "received", "port": 5091, "wait": 0.5},
            # Firm B's own 1002 reaches it (the phone turns it away: 486).
            {"op": "invite", "port": 5093, "user": "1002", "domain": b, "password": "b-1002-password", "target": f"sip:1001@{b}"},
            {"op": "received", "port": 5091, "wait": 0.5},
            # Once firm A's 1001 registers, A's call rings there, and still not at B's.
            {"op": "register", "port": 5094, "user": "1001", "domain": a, "password": "a-1001-password"},
            {"op": "invite", "port": 5092, **a2, "target": f"sip:1001@{a}"},
            {"op": "received", "port": 5094, "wait": 0.5},
            {"op": "received", "port": 5091, "wait": 0.5},
        ], tmp_path)
        assert results[:4] == [200, 404, 403, []], results
        assert results[4] == 486 and [r for r in results[5] if r.startswith("INVITE ")], results
        assert results[6:8] == [200, 486], results
        assert [r for r in results[8] if r.startswith("INVITE ")], results
        assert results[9] == [], "firm A's call reached firm B's 1001"
        registered = dump()
        assert f"AoR: 1001@{a}" in registered and f"AoR: 1001@{b}" in registered


def test_each_firms_did_and_ring_group_are_exported_and_a_did_used_twice_rings_only_the_first_firm(session, tmp_path):
    creds = _credentials_module()
    one = _firm(session, "127.0.0.1", {"1002": "pw-one-1002", "1001": "pw-one-1001", "1010": "pw-one-1010"})
    two = _firm(session, "127.0.0.1", {"1001": "pw-two-1001"})
    for firm in (one, two):
        admin = factories.principal_of(factories.make_user(session, firm, Role.ADMIN))
        extensions.update_pbx_settings(session=session, tenant_id=firm.id, actor=admin,
                                       data=PbxSettingsIn(host="127.0.0.1", did="+966 11 000 0000"))
    out = tmp_path / "credentials.cfg"
    messages = creds.write(out, session)
    text = out.read_text()
    a, b = _domain(session, one), _domain(session, two)
    assert f'$sht(dids=>966110000000) = "{a}";' in text and text.count("$sht(dids=>") == 1
    assert any(f"DID +966110000000 already used by {a}" in m for m in messages)
    # Every extension of the firm is in its ring group, in number order.
    assert f"$sht(ringgroup=>{a}::n) = 3;" in text
    assert [f'$sht(ringgroup=>{a}::{i}) = "{ext}";' in text for i, ext in enumerate(["1001", "1002", "1010"])] == [True] * 3
    assert f"$sht(ringgroup=>{b}::n) = 1;" in text
