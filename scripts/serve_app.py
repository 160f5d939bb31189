"""`reflex run` for the production topology, with a backend worker that dies restarted.

Reflex starts Granian without ``respawn_failed_workers``, and Granian then stops the whole
server when one worker dies (every browser of every worker disconnected, the run command
stopping everything with it). Here the same command runs with that option on: a killed or
crashed worker is replaced, the others keep serving (Granian still gives up on a worker that
crashes again within seconds of its restart). Everything else is Reflex's own CLI.

    python scripts/serve_app.py run --env prod --single-port --backend-port 8000
"""

from __future__ import annotations

import sys
from pathlib import Path

from granian.server import common

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_init = common.AbstractServer.__init__


def _respawning_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    kwargs["respawn_failed_workers"] = True
    _init(self, *args, **kwargs)


common.AbstractServer.__init__ = _respawning_init  # type: ignore[method-assign]

if __name__ == "__main__":
    from reflex.reflex import cli

    sys.argv[0] = "reflex"
    cli()
