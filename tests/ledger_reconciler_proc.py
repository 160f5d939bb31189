"""A reconciler process over test PBX accounting files (tests/ledger_support.py), for the tests
that kill it: ``python -m tests.ledger_reconciler_proc --db URL --pbx-dir DIR --worker-id ID``.
It is the real :class:`services.pbx.reconciler.Reconciler`; only the source is the test PBX."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from services import db
from services.pbx.reconciler import Reconciler, serve
from tests.ledger_support import AccountingPbx, AccountingSource


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--pbx-dir", required=True)
    parser.add_argument("--worker-id", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.worker_id} %(levelname)s %(message)s")
    db.configure(db.create_db_engine(args.db))
    pbx_dir = Path(args.pbx_dir)

    def source(settings):
        return AccountingSource(AccountingPbx(pbx_dir / f"tenant-{settings.tenant_id}.sqlite"))

    asyncio.run(serve(Reconciler(worker_id=args.worker_id, source_factory=source)))


if __name__ == "__main__":
    main()
