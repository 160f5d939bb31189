"""A real sidecar process, SIGKILLed again and again in the middle of a burst, on SQLite and
PostgreSQL: no message is delivered twice and none is lost.

Every message ends SENT (delivered once by the simulated WhatsApp) or UNCERTAIN (for a person
to decide; delivered at most once). Half the kills come from outside at a random moment, half
from the simulator right after WhatsApp took a message and before the sidecar heard so, the
window in which a blind retry would send it twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services import config, db
from services.models import MessageStatus, WhatsappMessage, WhatsappSend
from services.whatsapp import store
from services.whatsapp.simulator import enqueue_command
from tests.whatsapp.test_send_crash import _linked

BURST = 1000
KILLS = 4


def _start_worker(engine: Engine, data: Path, client_ids: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WATHEEQ_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "WATHEEQ_DATA_DIR": str(data),
        "WATHEEQ_WHATSAPP_GATEWAY": "simulator",
        "WATHEEQ_SIMULATOR_CLIENT_IDS": "1" if client_ids else "0",
        "WATHEEQ_WHATSAPP_TICK_SECONDS": "0.05",
        "WATHEEQ_WHATSAPP_SEND_RATE": "0",
        "WATHEEQ_LOG_LEVEL": "ERROR",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.whatsapp.sidecar", "--worker", "--worker-id", "kill-test"],
        cwd=config.PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _counts(tenant_id: int) -> Counter[MessageStatus]:
    with db.session_scope() as session:
        rows = session.execute(
            sa.select(WhatsappMessage.status, sa.func.count()).where(WhatsappMessage.tenant_id == tenant_id).group_by(WhatsappMessage.status)
        ).all()
    return Counter({MessageStatus(s): n for s, n in rows})


def _wait(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.mark.parametrize("client_ids", [True, False], ids=["client-ids", "neonize-like"])
async def test_sigkilled_sidecar_sends_every_message_once_or_marks_it_uncertain(
    engine: Engine, data_dir: Path, client_ids: bool
) -> None:
    tenant_id, admin = await _linked(data_dir)
    bodies = [f"burst {i}" for i in range(BURST)]
    numbers = ["0501000001", "0501000002", "0501000003"]
    with db.session_scope() as session:
        for i, body in enumerate(bodies):
            store.send_message(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(to=numbers[i % 3], body=body))
    rng = random.Random(8011)
    root = data_dir / "whatsapp" / "simulator"
    kills = 0

    def settled() -> int:
        return sum(n for s, n in _counts(tenant_id).items() if s not in (MessageStatus.PENDING, MessageStatus.SENDING))

    while kills < KILLS:
        before = settled()
        if kills % 2:
            enqueue_command(tenant_id, "crash_after_sends", root=root, count=rng.randint(5, 40))
        worker = _start_worker(engine, data_dir, client_ids)
        try:
            if kills % 2:
                _wait(lambda: worker.poll() is not None, timeout=60)
                assert worker.returncode == -signal.SIGKILL
            else:
                _wait(lambda: settled() > before, timeout=60)
                time.sleep(rng.uniform(0.02, 0.15))
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        kills += 1
    assert settled() < BURST, "the burst must still be under way at the last kill"
    worker = _start_worker(engine, data_dir, client_ids)
    try:
        _wait(lambda: not ({MessageStatus.PENDING, MessageStatus.SENDING} & set(_counts(tenant_id))), timeout=120)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    log = root / "sent" / f"tenant-{tenant_id}.jsonl"
    deliveries = Counter(json.loads(line)["body"] for line in log.read_text(encoding="utf-8").splitlines() if line)
    with db.session_scope() as session:
        rows = session.execute(sa.select(WhatsappMessage.body, WhatsappMessage.status).where(WhatsappMessage.tenant_id == tenant_id)).all()
    status_of = {body: MessageStatus(status) for body, status in rows}
    duplicates = {b: n for b, n in deliveries.items() if n > 1}
    assert duplicates == {}
    sent = [b for b, s in status_of.items() if s == MessageStatus.SENT]
    uncertain = [b for b, s in status_of.items() if s == MessageStatus.UNCERTAIN]
    assert len(sent) + len(uncertain) == BURST, Counter(status_of.values())
    assert all(deliveries[b] == 1 for b in sent), "a message marked SENT that WhatsApp never got is lost"
    assert all(deliveries[b] <= 1 for b in uncertain)
    if client_ids:
        # WhatsApp's record answers for every cut send: nothing is left for a person.
        assert uncertain == []
