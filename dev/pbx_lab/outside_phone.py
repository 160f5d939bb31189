"""The outside world's phone for ``make dev-pbx``: baresip on udp 127.0.0.1:5090, answering
every call the trunk sends it (an agent dialling an outside number), playing a tone and
recording what it hears into DIR/outside-phone/heard/. It replaces this process (exec), so
it stays in the dev PBX's process group and stops with it.

    python dev/pbx_lab/outside_phone.py DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import OUTSIDE_PORT, sounds, write_phone_config  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    lab_dir = Path(argv[1])
    phone_dir = lab_dir / "outside-phone"
    write_phone_config(phone_dir, name="outside", port=OUTSIDE_PORT, user=None, domain=None, password=None,
                       answer="auto", play=sounds(lab_dir)["outside"], regint=0, record_dir=phone_dir / "heard")
    os.execvp("baresip", ["baresip", "-f", str(phone_dir)])
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
