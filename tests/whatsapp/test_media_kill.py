"""A real sidecar SIGKILLed during a burst of 1,000 inbound messages, 100 of them with files:
after the restart every message and every file is stored exactly once (counts and hashes)."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services import db
from services.models import Blob, WhatsappMessage
from services.whatsapp import media
from services.whatsapp.simulator import enqueue_command
from tests.whatsapp.test_send_crash import _linked
from tests.whatsapp.test_sidecar_kill import _start_worker

BURST = 1000
FILES = 100


def _state(tenant_id: int) -> tuple[int, int, dict[str, str]]:
    with db.session_scope() as session:
        rows = session.execute(
            sa.select(WhatsappMessage.wa_message_id, WhatsappMessage.media_state, Blob.sha256)
            .outerjoin(Blob, Blob.id == WhatsappMessage.blob_id)
            .where(WhatsappMessage.tenant_id == tenant_id)
        ).all()
    stored = {w: sha for w, state, sha in rows if state == media.STORED}
    return len(rows), sum(1 for _, state, _ in rows if state == media.PENDING), stored


def _wait(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


async def test_a_sidecar_killed_in_a_burst_with_files_stores_each_message_and_file_once(engine: Engine, data_dir: Path) -> None:
    tenant_id, _admin = await _linked(data_dir)
    root = data_dir / "whatsapp" / "simulator"
    files = data_dir / "phone"
    files.mkdir()
    expected: dict[str, str] = {}
    for i in range(BURST):
        params = {"from_phone": f"96650{i % 7:07d}", "body": f"burst {i}", "wa_message_id": f"B{i:04d}"}
        if i % (BURST // FILES) == 0:
            data = os.urandom(20_000 + i)
            path = files / f"f{i}.bin"
            path.write_bytes(data)
            params |= {"media_file": str(path), "media_mime": "application/pdf"}
            expected[f"B{i:04d}"] = hashlib.sha256(data).hexdigest()
        enqueue_command(tenant_id, "inbound", root=root, **params)
    worker = _start_worker(engine, data_dir, client_ids=True)
    try:
        _wait(lambda: (s := _state(tenant_id))[0] > BURST // 3 and len(s[2]) > 5, 120)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        killed_at = _state(tenant_id)
        assert killed_at[0] < BURST or killed_at[1] > 0 or len(killed_at[2]) < FILES, "the burst must still be under way at the kill"
        worker = _start_worker(engine, data_dir, client_ids=True)
        _wait(lambda: (s := _state(tenant_id))[0] == BURST and s[1] == 0 and len(s[2]) == FILES, 180)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)
    count, pending, stored = _state(tenant_id)
    assert (count, pending) == (BURST, 0)
    assert stored == expected
    # One stored file per message with a file: a download repeated after the kill replaced its file.
    assert len(list((data_dir / "store").rglob("*.wqs"))) == FILES
    with db.session_scope() as session:
        duplicates = session.execute(
            sa.select(WhatsappMessage.body).where(WhatsappMessage.tenant_id == tenant_id).group_by(WhatsappMessage.body).having(sa.func.count() > 1)
        ).all()
    assert duplicates == []
