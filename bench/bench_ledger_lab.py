"""Live PBX record → visible in the call history, in the PBX lab (network namespace).

Not a test: prints p50 / p95 / max of the delay between an outside caller's hang-up (the
PBX writes the leg's record then) and the call being in ``get_call_history``, with the real
reconciler process (``python -m services.pbx.reconciler``) following the lab's accounting.

    .venv/bin/python bench/bench_ledger_lab.py            # 20 calls nobody answers
    .venv/bin/python bench/bench_ledger_lab.py --calls 40
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session  # noqa: E402

from services import db  # noqa: E402
from services.models import Call, PbxFeed, PbxSettings  # noqa: E402
from tests.softphone.pbx_lab_support import lab_for_tests  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, lab_for_tests(Path(tmp), ring_seconds=2) as (lab, firm):
        db_url = f"sqlite:///{lab.dir.parent / 'watheeq.db'}"
        engine = db.create_db_engine(db_url)
        with Session(engine) as session:
            settings = session.execute(sa.select(PbxSettings).where(PbxSettings.sip_domain == firm.domain)).scalar_one()
            settings.cdr_source = "lab"
            tenant_id = settings.tenant_id
            session.commit()
        env = {**os.environ, "WATHEEQ_DATABASE_URL": db_url, "DEV_PBX_DIR": str(lab.dir), "WATHEEQ_PBX_TICK_SECONDS": "0.2"}
        proc = subprocess.Popen([sys.executable, "-m", "services.pbx.reconciler", "--worker-id", "bench"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def connected() -> bool:
                with engine.connect() as conn:
                    return bool(conn.execute(sa.select(PbxFeed.connected).where(PbxFeed.tenant_id == tenant_id)).scalar())

            deadline = time.monotonic() + 30
            while not connected():
                assert time.monotonic() < deadline, "the reconciler did not connect"
                time.sleep(0.1)

            def count() -> int:
                with engine.connect() as conn:
                    return conn.execute(sa.select(sa.func.count()).select_from(Call).where(Call.tenant_id == tenant_id)).scalar_one()

            delays = []
            for i in range(args.calls):
                before = count()
                caller = lab.phone(f"caller-{i}", port=5094 + 2 * (i % 8), number=f"05512{i:05d}")
                caller.dial(lab.did_uri(firm.did))
                closed = caller.wait_event("CALL_CLOSED", 15)["at"]
                while count() == before:
                    assert time.time() - closed < 30, "the call did not appear"
                    time.sleep(0.01)
                delays.append(time.time() - closed)
                caller.stop()
        finally:
            proc.terminate()
            proc.wait(10)
            engine.dispose()
    delays.sort()
    p95 = statistics.quantiles(delays, n=100)[94] if len(delays) > 1 else delays[0]
    print(f"{len(delays)} calls nobody answered: hang-up -> in the history: p50 {statistics.median(delays) * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms (target p95 < 2 s) load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
