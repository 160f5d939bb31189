"""What the browser tests and the browser benchmarks share: Debian's Chromium, how it is
started on this kind of machine, and how to wait for the app started by scripts/run.sh."""

from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path

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
