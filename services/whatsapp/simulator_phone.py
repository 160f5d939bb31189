"""The simulated line's phone: a command queue on disk that any process can write to.

The phone is played through a command queue on disk that any process can write to
(:func:`enqueue_command`, or ``python -m services.whatsapp.simulator``): one JSON file per
command, ``<data>/whatsapp/simulator/commands/<tenant>-<time>-<random>.json``, in one
folder so that a poll is one directory listing however many lines are simulated. The
gateway of the sidecar that holds the tenant picks it up within ``poll_interval``. Commands:

- ``scan`` {phone, push_name}: the phone scans the current QR (only while a QR is shown);
- ``inbound`` {from_phone | from_lid (+ from_phone when WhatsApp gives both), body,
  message_type?, wa_message_id?, push_name?, from_me?}: a message arrives (kept queued until
  the line is connected, as the phone would; those that waited make the offline sync of the
  next restore);
- ``inbound`` may carry a file: {media_file (a path), media_mime?, media_name?};
- ``fail_downloads`` {count}: the next ``count`` file downloads fail (then are retried);
- ``history_sync`` {messages: [inbound params...]}: a history sync of many messages at once;
- ``lid_mapping`` {lid, phone}: the client learns which number a LID belongs to (the sidecar
  asks it about unresolved LID senders on its health round);
- ``receipt`` {wa_message_ids? | all_sent: true, status: DELIVERED|READ}: receipts arrive;
- ``unlink``: the device is removed from the phone (logged-out event, store deleted);
- ``fail_connects`` {count, reason}: the next ``count`` connects fail with ``reason``;
- ``fail_sends`` {count, reason}: the next ``count`` sends fail;
- ``drop``: the connection dies silently (a zombie: no event, sends fail);
- ``failure`` {kind, count?}: one of the known failures (:data:`FAILURES`), with the raw text
  neonize gives for it, reported at once; connect failures also fail the next ``count``
  connects (replacing earlier ones);
- ``call`` {from_phone, call_id?, push_name?}: the phone calls the line (a CallOffer);
- ``temporary_ban`` {code?, seconds?}: WhatsApp bans the number for ``seconds`` (default an
  hour) with a TempBanReason ``code`` (default SEND_TO_TOO_MANY_PEOPLE): a TemporaryBan event,
  then the connection fails, as whatsmeow reports it;
- ``crash_after_sends`` {count}: the process kills itself (SIGKILL) right after the
  ``count``-th next delivery, before the sidecar hears the answer: the crash window of a send.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from services.whatsapp.failures import Failure
from services.whatsapp.gateway import whatsapp_dir

log = logging.getLogger("services.whatsapp.simulator")

ACTIONS = frozenset({"scan", "inbound", "history_sync", "lid_mapping", "fail_downloads", "receipt", "unlink", "fail_connects", "fail_sends", "drop", "failure", "crash_after_sends", "temporary_ban", "call"})
# Commands applied as soon as the gateway sees them, even before a client runs.
SYNC_ACTIONS = frozenset({"fail_connects", "fail_sends", "crash_after_sends", "fail_downloads"})

# Known failures, each with the raw text (and class, when a structured event gives it) that the
# neonize gateway reports for it. The dial errors are neonize 0.5.2's own, as seen on a machine
# without a route out (DNS) and with a proxy that is down.
_DIAL = 'failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: Get "https://web.whatsapp.com/ws/chat": '
FAILURES: dict[str, tuple[str, Failure | None]] = {
    "no_route": (_DIAL + "dial tcp: lookup web.whatsapp.com on 10.255.255.53:53: dial udp 10.255.255.53:53: connect: network is unreachable", None),
    "proxy_unreachable": (_DIAL + "proxyconnect tcp: dial tcp 127.0.0.1:3128: connect: connection refused", None),
    "temp_banned": ("temporarily banned by WhatsApp (SEND_TO_TOO_MANY_PEOPLE) until 2026-12-01 09:00 UTC", Failure.TEMP_BANNED),
    "stream_replaced": ("the same device connected from elsewhere (stream replaced)", Failure.STREAM_REPLACED),
    "client_outdated": ("WhatsApp says this client is outdated (405): update neonize", Failure.CLIENT_OUTDATED),
    "pairing_failed": ("pairing failed: pair-device: websocket closed before pairing finished (code 1006)", Failure.PAIRING_FAILED),
    "unknown": ("proto: cannot parse invalid wire-format data (frame 0x7f at offset 12)", None),
    # These two are events, not connect errors: a phone-side unlink, and a QR nobody scans.
    "logged_out": ("logged out", Failure.LOGGED_OUT),
    "qr_timeout": ("", Failure.QR_TIMEOUT),
}


def simulator_dir(root: Path | None = None) -> Path:
    path = root or (whatsapp_dir() / "simulator")
    path.mkdir(parents=True, exist_ok=True)
    return path


def enqueue_command(tenant_id: int, action: str, *, root: Path | None = None, **params: Any) -> Path:
    """Queue a phone-side action for a tenant's simulated line; returns the command file."""
    if action not in ACTIONS:
        raise ValueError(f"unknown simulator action {action!r}")
    folder = commands_dir(simulator_dir(root))
    name = f"{int(tenant_id)}-{time.time_ns():020d}-{secrets.token_hex(4)}"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(json.dumps({"action": action, **params}), encoding="utf-8")
    final = folder / f"{name}.json"
    # Rename is atomic: the poller never sees half a command.
    tmp.replace(final)
    return final


def commands_dir(root: Path) -> Path:
    folder = root / "commands"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def read_command(path: Path) -> dict[str, Any] | None:
    """A queued command, or None (and the file dropped) when it is unreadable or unknown."""
    try:
        command = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        log.warning("simulator: unreadable command %s dropped", path.name)
        path.unlink(missing_ok=True)
        return None
    if not isinstance(command, dict) or command.get("action") not in ACTIONS:
        log.warning("simulator: unknown command %s dropped", path.name)
        path.unlink(missing_ok=True)
        return None
    return command


def pending_commands(folder: Path, tenants: set[int]) -> dict[int, list[Path]]:
    """Queued command files of ``tenants`` in ``folder``, oldest first per tenant: one listing."""
    found: dict[int, list[Path]] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return found
    for entry in entries:
        tenant, _, rest = entry.name.partition("-")
        if not rest.endswith(".json") or not tenant.isdigit() or int(tenant) not in tenants:
            continue
        found.setdefault(int(tenant), []).append(Path(entry.path))
    for paths in found.values():
        paths.sort(key=lambda p: p.name)
    return found


def main(argv: list[str] | None = None) -> None:
    """Play the phone of a simulated line from the command line."""
    parser = argparse.ArgumentParser(prog="python -m services.whatsapp.simulator", description=main.__doc__)
    parser.add_argument("action", choices=sorted(ACTIONS))
    parser.add_argument("--tenant", type=int, required=True)
    parser.add_argument("--phone", help="scan: the linking phone's number")
    parser.add_argument("--push-name", help="scan/inbound: the WhatsApp profile name")
    parser.add_argument("--from-phone", help="inbound: the sender's number")
    parser.add_argument("--body", default="", help="inbound: the text or caption")
    parser.add_argument("--type", dest="message_type", default="text", help="inbound: text, image, document...")
    parser.add_argument("--status", default="DELIVERED", help="receipt: DELIVERED or READ")
    parser.add_argument("--id", dest="ids", action="append", default=[], help="receipt: a WhatsApp message id (repeatable)")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--reason", default="simulated failure")
    parser.add_argument("--kind", choices=sorted(FAILURES), help="failure: which known failure")
    args = parser.parse_args(argv)
    params: dict[str, Any] = {}
    if args.action == "scan":
        params = {"phone": args.phone, "push_name": args.push_name}
    elif args.action == "inbound":
        params = {"from_phone": args.from_phone, "body": args.body, "message_type": args.message_type, "push_name": args.push_name}
    elif args.action == "receipt":
        params = {"status": args.status, **({"wa_message_ids": args.ids} if args.ids else {"all_sent": True})}
    elif args.action in ("fail_connects", "fail_sends"):
        params = {"count": args.count, "reason": args.reason}
    elif args.action == "failure":
        params = {"kind": args.kind, "count": args.count}
    elif args.action == "crash_after_sends":
        params = {"count": args.count}
    print(enqueue_command(args.tenant, args.action, **params))
