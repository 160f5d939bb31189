"""A real sidecar worker process on the simulator, and what the database and the simulated
WhatsApp say of a firm's messages.

Shared by the crash tests (``tests/whatsapp/test_sidecar_kill.py``,
``tests/whatsapp/test_send_crash.py``) and their benchmark (``bench/bench_whatsapp_crash.py``),
so the process they kill and the counts they judge it by are the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from services import config, db
from services.models import MessageStatus, WhatsappMessage
from services.tenancy import owned_by

# Not yet settled: waiting for a sidecar, or handed to WhatsApp without an answer.
UNSETTLED = frozenset({MessageStatus.PENDING, MessageStatus.SENDING})


def start_worker(database_url: str, data: Path, *, client_ids: bool, worker_id: str) -> subprocess.Popen[bytes]:
    """One sidecar worker process (``python -m services.whatsapp.sidecar --worker``) on the
    simulator under ``data``, ticking every 50 ms and sending without a rate limit."""
    env = {
        **os.environ,
        "WATHEEQ_DATABASE_URL": database_url,
        "WATHEEQ_DATA_DIR": str(data),
        "WATHEEQ_WHATSAPP_GATEWAY": "simulator",
        "WATHEEQ_SIMULATOR_CLIENT_IDS": "1" if client_ids else "0",
        "WATHEEQ_WHATSAPP_TICK_SECONDS": "0.05",
        "WATHEEQ_WHATSAPP_SEND_RATE": "0",
        "WATHEEQ_WHATSAPP_TYPING_CHARS_PER_SECOND": "0",
        "WATHEEQ_WHATSAPP_GAP_MAX_SECONDS": "0",
        "WATHEEQ_WHATSAPP_FIRST_CONTACT_GAP_SECONDS": "0",
        "WATHEEQ_LOG_LEVEL": "ERROR",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.whatsapp.sidecar", "--worker", "--worker-id", worker_id],
        cwd=config.PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def reap(worker: subprocess.Popen[bytes]) -> None:
    """Kill ``worker`` if it still runs, and wait for it (for ``finally`` blocks)."""
    if worker.poll() is None:
        worker.kill()
        worker.wait()


def wait_until(check: Callable[[], object], timeout: float) -> None:
    """Poll ``check`` every 20 ms until it is true; :class:`TimeoutError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout} s")
        time.sleep(0.02)


def status_counts(tenant_id: int) -> Counter[MessageStatus]:
    """How many of the firm's messages are in each status (one GROUP BY)."""
    with db.session_scope() as session:
        rows = session.execute(
            sa.select(WhatsappMessage.status, sa.func.count()).where(owned_by(WhatsappMessage, tenant_id)).group_by(WhatsappMessage.status)
        ).all()
    return Counter({MessageStatus(s): n for s, n in rows})


def settled(tenant_id: int) -> int:
    """How many of the firm's messages have an outcome (neither PENDING nor SENDING)."""
    return sum(n for s, n in status_counts(tenant_id).items() if s not in UNSETTLED)


def statuses_by_body(tenant_id: int) -> dict[str, MessageStatus]:
    """Each of the firm's messages' status, by body (the tests' bodies are unique)."""
    with db.session_scope() as session:
        rows = session.execute(sa.select(WhatsappMessage.body, WhatsappMessage.status).where(owned_by(WhatsappMessage, tenant_id))).all()
    return {body: MessageStatus(status) for body, status in rows}


def sent_log(data: Path, tenant_id: int) -> Path:
    """The simulated WhatsApp's delivery log of the firm: one JSON line per delivery, kept across crashes."""
    return data / "whatsapp" / "simulator" / "sent" / f"tenant-{tenant_id}.jsonl"


def read_log(path: Path) -> list[dict[str, str]]:
    """The entries of a simulator log (none when it does not exist yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def deliveries(data: Path, tenant_id: int) -> Counter[str]:
    """How many times WhatsApp delivered each body: what the firm's clients received."""
    return Counter(entry["body"] for entry in read_log(sent_log(data, tenant_id)))
