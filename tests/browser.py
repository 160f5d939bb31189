"""What the browser tests and the browser benchmarks share: Debian's Chromium, how it is
started on this kind of machine, and how to wait for the app started by scripts/run.sh."""

from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path
from typing import NoReturn

import pytest

# Debian's Chromium, never a browser downloaded by a test tool.
CHROMIUM = Path(os.environ.get("WATHEEQ_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps dialling hosts this closed
# network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SOFTPHONE_ARGS = [
    *CHROMIUM_ARGS,
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # Without it Chromium gathers no 127.0.0.1 candidate and JsSIP never sends the INVITE.
    "--allow-loopback-in-peer-connection",
]


# Debian packages behind the browser and PBX tests (scripts/system_deps.sh installs them as root).
APT_LINE = (
    "sudo apt-get install chromium kamailio kamailio-websocket-modules kamailio-tls-modules kamailio-sqlite-modules "
    "rtpengine-daemon baresip sox sip-tester openssl"
)


def on_ci() -> bool:
    """Whether this run is CI's (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skips a browser/PBX test that cannot run here; on CI fails it instead.

    CI installs the packages first (``make test`` runs scripts/system_deps.sh), so a
    missing browser or PBX there means the end-to-end tests did not run: a CI that passes
    without them would prove nothing about the phone or the pages.
    """
    if on_ci():
        pytest.fail(f"{reason}; CI=true requires the browser and PBX tests to run (scripts/system_deps.sh "
                    f"installs their Debian packages as root)", pytrace=False)
    pytest.skip(f"{reason}; install with: {APT_LINE}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    """True once ``url`` answers with anything but a server error."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except OSError:
        return False


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
