"""On CI a missing browser or PBX fails the end-to-end tests; elsewhere they skip and say
how to install what is missing. Run as CI runs them: pytest in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# One test of each kind that needs Chromium, Kamailio or both.
NEEDS_BROWSER_OR_PBX = [
    "tests/e2e/test_dashboard_e2e.py::test_agent_sees_only_their_own_calls",
    "tests/softphone/test_e2e_softphone.py::test_page_load_registers_the_agents_extension_within_a_second",
    "tests/softphone/test_dev_pbx.py::test_dev_pbx_registers_a_seeded_extension_with_digest_and_refuses_a_wrong_password",
]


def _pytest_without_browser_or_pbx(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "WATHEEQ_TEST_POSTGRES_URL")}
    # No Chromium where the tests look for it, and no kamailio/sipp/unshare on the PATH.
    env |= {"WATHEEQ_CHROMIUM": str(tmp_path / "no-chromium"), "PATH": str(empty_bin)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", "-o", "addopts=", *NEEDS_BROWSER_OR_PBX],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_on_ci_a_missing_browser_or_pbx_fails_the_end_to_end_tests(tmp_path: Path) -> None:
    run = _pytest_without_browser_or_pbx(tmp_path, "true")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "skipped" not in out.splitlines()[-1], out
    assert "3 error" in out.splitlines()[-1], out
    assert f"Chromium not found at {tmp_path / 'no-chromium'}" in out
    assert "kamailio is not installed" in out
    assert out.count("CI=true requires the browser and PBX tests to run") >= 3


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_they_skip_with_the_apt_get_line(tmp_path: Path, ci: str | None) -> None:
    run = _pytest_without_browser_or_pbx(tmp_path, ci)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "3 skipped" in out.splitlines()[-1], out
    assert out.count("install with: sudo apt-get install chromium kamailio") >= 3
