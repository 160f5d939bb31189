"""Start the production topology (as tests/production does: a network namespace, Caddy with its
internal CA, PostgreSQL, Redis, WATHEEQ_BACKEND_WORKERS Granian workers, two sidecars) and run
bench/bench_live_load.py against it inside the namespace.

    .venv/bin/python bench/bench_prod_topology.py sessions --sessions 300 --seconds 60
    .venv/bin/python bench/bench_prod_topology.py rest --seconds 20 --concurrency 32
    .venv/bin/python bench/bench_prod_topology.py sessions --sessions 5 + rest --seconds 10   (one topology, two runs)

Every argument is passed on to bench_live_load.py; --site and --cacert are set here. The
topology's logs are kept in test-output/production/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WATHEEQ_ENV_FILE", str(ROOT / "tests" / "no-such.env"))

from services import security  # noqa: E402

os.environ.setdefault("WATHEEQ_SECRET_KEY", security.generate_key())  # a throwaway firm's key, as the tests do

from tests.production import test_production_profile as profile  # noqa: E402


def main() -> int:
    topology = profile.prod._get_wrapped_function()(None)  # the test's fixture, driven by hand
    prod = next(topology)
    try:
        print(f"topology up: workers {prod.workers()}", flush=True)
        # The namespace has only loopback: PostgreSQL through its Unix socket, as the app reaches it.
        url = prod.engine.url
        database_url = f"postgresql://{url.username}@/{url.database}?host={profile._socket_dir()}"
        # Several runs on one topology: their arguments separated by "+".
        runs: list[list[str]] = [[]]
        for arg in sys.argv[1:]:
            runs.append([]) if arg == "+" else runs[-1].append(arg)
        code = 0
        for run in runs:
            argv = [sys.executable, str(ROOT / "bench" / "bench_live_load.py"), *run, "--site", profile.SITE, "--cacert", str(prod.ca),
                    "--database-url", database_url]
            print("$ bench_live_load.py " + " ".join(run), flush=True)
            code = subprocess.run(prod.netns.cmd(argv), cwd=ROOT).returncode or code
        return code
    finally:
        topology.close()


if __name__ == "__main__":
    raise SystemExit(main())
