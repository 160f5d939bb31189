"""A real sidecar process, SIGKILLed again and again in the middle of a burst, on SQLite and
PostgreSQL: no message is delivered twice and none is lost.

Every message ends SENT (delivered once by the simulated WhatsApp) or UNCERTAIN (for a person
to decide; delivered at most once). Half the kills come from outside at a random moment, half
from the simulator right after WhatsApp took a message and before the sidecar heard so, the
window in which a blind retry would send it twice.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from services import db
from services.models import MessageStatus, WhatsappSend
from services.whatsapp import store
from services.whatsapp.simulator import enqueue_command
from tests.whatsapp.sidecar_support import UNSETTLED, deliveries, reap, settled, start_worker, status_counts, statuses_by_body, wait_until
from tests.whatsapp.test_send_crash import _linked

BURST = 1000
KILLS = 4


def _start_worker(engine: Engine, data: Path, client_ids: bool) -> subprocess.Popen[bytes]:
    return start_worker(engine.url.render_as_string(hide_password=False), data, client_ids=client_ids, worker_id="kill-test")


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

    while kills < KILLS:
        before = settled(tenant_id)
        if kills % 2:
            enqueue_command(tenant_id, "crash_after_sends", root=root, count=rng.randint(5, 40))
        worker = _start_worker(engine, data_dir, client_ids)
        try:
            if kills % 2:
                wait_until(lambda: worker.poll() is not None, timeout=60)
                assert worker.returncode == -signal.SIGKILL
            else:
                wait_until(lambda: settled(tenant_id) > before, timeout=60)
                time.sleep(rng.uniform(0.02, 0.15))
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
        finally:
            reap(worker)
        kills += 1
    assert settled(tenant_id) < BURST, "the burst must still be under way at the last kill"
    worker = _start_worker(engine, data_dir, client_ids)
    try:
        wait_until(lambda: not (UNSETTLED & set(status_counts(tenant_id))), timeout=120)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
    finally:
        reap(worker)

    delivered = deliveries(data_dir, tenant_id)
    status_of = statuses_by_body(tenant_id)
    duplicates = {b: n for b, n in delivered.items() if n > 1}
    assert duplicates == {}
    sent = [b for b, s in status_of.items() if s == MessageStatus.SENT]
    uncertain = [b for b, s in status_of.items() if s == MessageStatus.UNCERTAIN]
    assert len(sent) + len(uncertain) == BURST, Counter(status_of.values())
    assert all(delivered[b] == 1 for b in sent), "a message marked SENT that WhatsApp never got is lost"
    assert all(delivered[b] <= 1 for b in uncertain)
    if client_ids:
        # WhatsApp's record answers for every cut send: nothing is left for a person.
        assert uncertain == []
