"""The dev PBX: credentials exported from the database, digest auth checked by a real Kamailio.

Kamailio runs inside a private network namespace whose only interface is ``lo``, so the
test can only ever send traffic to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from services.call_center import extensions
from services.models import ExtensionAssign, PbxSettingsIn, Role
from tests import factories

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


def test_only_loopback_firms_are_exported_as_ha1_without_clear_passwords(session, tmp_path):
    creds = _credentials_module()
    _firm(session, "127.0.0.1", {"1001": "pw-one-1001", "1002": "pw-two-1002"})
    _firm(session, "pbx.example.org", {"2001": "remote-secret"})
    _firm(session, "127.0.0.1", {"1001": "clash-secret"})  # same number on the one dev PBX
    out = tmp_path / "credentials.cfg"
    messages = creds.write(out, session)
    text = out.read_text()
    assert f'$sht(ha1=>1001@127.0.0.1) = "{hashlib.md5(b"1001:127.0.0.1:pw-one-1001").hexdigest()}";' in text
    assert f'$sht(ha1=>1002@127.0.0.1) = "{hashlib.md5(b"1002:127.0.0.1:pw-two-1002").hexdigest()}";' in text
    assert "2001" not in text
    for secret in ("pw-one-1001", "pw-two-1002", "remote-secret", "clash-secret"):
        assert secret not in text
    assert any("already used by another firm" in m for m in messages)
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
        pytest.skip(f"dev PBX test skipped: {reason}")
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


def _sipp(ns: int, user: str, password: str, port: int) -> int:
    return subprocess.run(
        ["nsenter", "-t", str(ns), "-n", "sipp", "127.0.0.1:5060", "-i", "127.0.0.1", "-p", str(port),
         "-sf", str(HERE / "sipp_register.xml"), "-s", user, "-au", user, "-ap", password,
         "-m", "1", "-nostdin", "-timeout", "5"],
        capture_output=True, cwd=HERE, timeout=20,
    ).returncode


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_dev_pbx_registers_a_seeded_extension_with_digest_and_refuses_a_wrong_password(session, tmp_path, loopback_netns):
    _firm(session, "127.0.0.1", {"1001": "pw-one-1001"})
    run = tmp_path / "pbx"
    run.mkdir()
    shutil.copy(ROOT / "dev/kamailio/kamailio.cfg", run / "kamailio.cfg")
    _credentials_module().write(run / "credentials.cfg", session)
    subprocess.run(["bash", str(ROOT / "dev/kamailio/make_cert.sh"), str(run)], check=True)
    (run / "tls.cfg").write_text((ROOT / "dev/kamailio/tls.cfg.in").read_text().replace("@DIR@", str(run)))
    ctl = run / "kamailio.ctl"
    log = open(run / "kamailio.log", "w")
    kam = subprocess.Popen(
        ["nsenter", "-t", str(loopback_netns), "-n", "kamailio", "-DD", "-E", "-f", str(run / "kamailio.cfg"),
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
        # The control socket answers a moment before every SIP worker does: allow a retry.
        assert any(_sipp(loopback_netns, "1001", "pw-one-1001", 5071) == 0 for _ in range(3)), (run / "kamailio.log").read_text()[-2000:]
        assert _sipp(loopback_netns, "1001", "not-the-password", 5072) != 0
        dump = subprocess.run(["kamcmd", "-s", f"unix:{ctl}", "ul.dump"], capture_output=True, text=True).stdout
        assert "AoR: 1001" in dump
        assert "sip:1001@127.0.0.1:5071" in dump
        assert "5072" not in dump
    finally:
        kam.terminate()
        kam.wait(timeout=10)
        log.close()
