"""A Grandstream UCM6301 emulator: its HTTPS API (``POST /api``: challenge, login, cdrapi,
recapi) and its "CDR real-time output" (records pushed over TCP), on loopback only, with
the field names and formats of Grandstream's published material (services/pbx/ucm.py lists
them and what they leave open). It exists so that the UCM adapter is exercised end to end.

Records come from a test (:meth:`UcmEmulator.add_records`, raw UCM dicts) or from the PBX
lab's real calls (:meth:`UcmEmulator.sync_lab`: the lab's ``lab_leg`` rows rendered as UCM
records, its recordings served by recapi). Like the UCM, cdrapi answers a bad, unknown or
duplicated parameter with an empty result and no error; a cookie expires (``status -6``)
after ``cookie_ttl`` seconds or on :meth:`expire_cookies`.

    emu = UcmEmulator(workdir, password="secret", lab_dir=lab.dir)   # https://127.0.0.1:<port>
    emu.start(); emu.sync_lab(); emu.push(records, port=5100); emu.stop()

Command line (the lab's UCM for the app: PBX settings source "ucm", API URL printed)::

    python dev/pbx_lab/ucm_emulator.py LAB_DIR --port 8443 --user cdrapi --password ... [--push 127.0.0.1:5100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import socket
import ssl
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.pbx.ucm_format import UCM_TIME_FORMAT  # noqa: E402

CDRAPI_PARAMS = {"action", "cookie", "format", "numRecords", "offset", "caller", "callee", "startTime", "endTime",
                 "minDur", "maxDur", "timeFilterType"}
_NO_ANSWER_TIME = "0000-00-00 00:00:00"


def _parse_request_time(value: Any) -> datetime | None:
    """startTime/endTime as the UCM takes them: YYYY-MM-DDTHH:MM[:SS]; None when malformed."""
    if not isinstance(value, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


class UcmEmulator:
    def __init__(self, workdir: Path, *, user: str = "cdrapi", password: str, port: int = 0,
                 timezone: str = "Asia/Riyadh", lab_dir: Path | None = None, sip_domain: str | None = None,
                 cookie_ttl: float = 600.0) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user, self._password = user, password
        self.port = port
        self.tz = ZoneInfo(timezone)
        self.lab_dir = Path(lab_dir) if lab_dir else None
        self.sip_domain = sip_domain
        self.cookie_ttl = cookie_ttl
        self.records: list[dict[str, Any]] = []
        self.recordings: dict[str, bytes] = {}
        self._lab_recordings: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []  # each request, its cookie/token left out
        # Parameters this "firmware" does not accept: like any bad parameter, they make
        # cdrapi return an empty result without an error.
        self.rejected_params: set[str] = set()
        self._challenges: set[str] = set()
        self._cookies: dict[str, float] = {}
        self._lab_after = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ server

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def cert(self) -> Path:
        return self.dir / "cert.pem"

    def start(self) -> None:
        subprocess.run(["bash", str(ROOT / "dev/kamailio/make_cert.sh"), str(self.dir)], check=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.dir / "cert.pem", self.dir / "key.pem")
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.rstrip("/") != "/api":
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    request = json.loads(self.rfile.read(length))["request"]
                    assert isinstance(request, dict)
                except (ValueError, KeyError, TypeError, AssertionError):
                    self._json({"response": {"error_msg": "Invalid parameters!"}, "status": -1})
                    return
                status, body, content_type = emulator.handle(request)
                if content_type == "application/json":
                    self._json(body)
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------------ the API

    def handle(self, request: dict[str, Any]) -> tuple[int, Any, str]:
        action = request.get("action")
        with self._lock:
            self.requests.append({k: v for k, v in request.items() if k not in ("cookie", "token")})
        if action == "challenge":
            if request.get("user") != self.user:
                return 200, {"response": {}, "status": -71}, "application/json"
            challenge = "".join(secrets.choice("0123456789") for _ in range(16))
            with self._lock:
                self._challenges.add(challenge)
            return 200, {"response": {"challenge": challenge}, "status": 0}, "application/json"
        if action == "login":
            with self._lock:
                match = next((c for c in self._challenges if request.get("user") == self.user and
                              hashlib.md5((c + self._password).encode()).hexdigest() == request.get("token")), None)
                if match is None:
                    return 200, {"response": {}, "status": -37}, "application/json"
                self._challenges.discard(match)
                cookie = f"sid{secrets.randbelow(10**9)}-{int(time.time())}"
                self._cookies[cookie] = time.monotonic() + self.cookie_ttl
            return 200, {"response": {"cookie": cookie}, "status": 0}, "application/json"
        with self._lock:
            expires = self._cookies.get(str(request.get("cookie")))
        if expires is None or expires < time.monotonic():
            return 200, {"response": {}, "status": -6}, "application/json"
        if action == "cdrapi":
            return 200, self._cdrapi(request), "application/json"
        if action == "recapi":
            data = self._recording(request)
            if data is None:
                return 200, {"response": {"error_msg": "No such file"}, "status": -16}, "application/json"
            return 200, data, "audio/x-wav"
        return 200, {"response": {}, "status": -19}, "application/json"

    def expire_cookies(self) -> None:
        with self._lock:
            self._cookies.clear()

    def _cdrapi(self, request: dict[str, Any]) -> dict[str, Any]:
        empty = {"cdr_root": [], "status": 0}
        if set(request) - (CDRAPI_PARAMS - self.rejected_params) or request.get("format", "csv") != "json":
            return empty
        try:
            count = int(request.get("numRecords", 1000))
            offset = int(request.get("offset", 0))
        except (TypeError, ValueError):
            return empty
        if not 0 <= count <= 1000 or offset < 0:
            return empty
        start = end = None
        if "startTime" in request and (start := _parse_request_time(request["startTime"])) is None:
            return empty
        if "endTime" in request and (end := _parse_request_time(request["endTime"])) is None:
            return empty
        sessions = self.sessions()
        chosen = []
        for session in sessions:
            begun = datetime.strptime(session[0]["start"], UCM_TIME_FORMAT)
            if (start is None or begun >= start) and (end is None or begun <= end):
                chosen.append(session)
        return {"cdr_root": [self._entry(s) for s in chosen[offset:offset + count]], "status": 0}

    def sessions(self) -> list[list[dict[str, Any]]]:
        """The records grouped into sessions (by their ``session`` field), oldest first."""
        with self._lock:
            records = sorted(self.records, key=lambda r: int(r["AcctId"]))
        groups: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            groups.setdefault(record.get("session") or record["uniqueid"], []).append(record)
        return list(groups.values())

    @staticmethod
    def _entry(session: list[dict[str, Any]]) -> dict[str, Any]:
        if len(session) == 1:
            return session[0]
        return {"main_cdr": session[0], **{f"sub_cdr_{i}": r for i, r in enumerate(session[1:], 1)}}

    def _recording(self, request: dict[str, Any]) -> bytes | None:
        name = request.get("filename")
        if request.get("filedir") != "monitor" or not isinstance(name, str):
            return None
        if name in self.recordings:
            return self.recordings[name]
        lab_name = self._lab_recordings.get(name)
        if lab_name is None or self.lab_dir is None:
            return None
        from services.pbx.lab import LabCdrSource

        return b"".join(LabCdrSource(self.lab_dir, sip_domain=self.sip_domain or "").open_recording(lab_name))

    # ------------------------------------------------------------------ records

    def add_records(self, records: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            self.records.extend(dict(r) for r in records)

    def sync_lab(self) -> list[dict[str, Any]]:
        """The lab's new legs (of ``sip_domain``'s firm when given) as UCM records."""
        if self.lab_dir is None:
            return []
        db = self.lab_dir / "accounting.sqlite"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        con.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in con.execute("SELECT * FROM lab_leg WHERE id > ? ORDER BY id", (self._lab_after,))]
        finally:
            con.close()
        new = []
        for row in rows:
            self._lab_after = row["id"]
            if self.sip_domain and row["firm"].lower() != self.sip_domain.lower():
                continue
            new.append(self.render_lab_leg(row))
        self.add_records(new)
        return new

    def render_lab_leg(self, leg: dict[str, Any]) -> dict[str, Any]:
        """One lab_leg row as the UCM writes a CDR (Asterisk's fields, UCM extras)."""
        def local(ts: float | None) -> str:
            if ts is None:
                return _NO_ANSWER_TIME
            return datetime.fromtimestamp(ts, UTC).astimezone(self.tz).strftime(UCM_TIME_FORMAT)

        ext = leg["extension"] or ""
        remote = _user(leg["to_uri"] if leg["kind"] == "outbound" else leg["from_uri"])
        tag = zlib.crc32(leg["call_id"].encode()) % 10**6
        inbound, outbound = leg["kind"] == "inbound", leg["kind"] == "outbound"
        src = ext if outbound else remote
        dst = remote if outbound else (leg["did"] or ext)
        recordfiles = ""
        if leg["disposition"] == "ANSWERED":
            from services.pbx.lab import LabCdrSource

            pcap = LabCdrSource(self.lab_dir, sip_domain=leg["firm"])._pcap_for(leg["call_id"]) if self.lab_dir \
                else None
            if pcap is not None:
                recordfiles = f"auto-{int(leg['answered_at'])}-{src}-{ext or dst}-{leg['id']}.wav@"
                self._lab_recordings[recordfiles.rstrip("@")] = pcap.stem + ".wav"
        end = leg["ended_at"]
        return {
            "AcctId": str(leg["id"]), "accountcode": "", "src": src, "dst": dst,
            "dcontext": "from-trunk" if inbound else "from-internal", "clid": f'"{src}" <{src}>',
            "channel": f"PJSIP/{'trunk' if inbound else ext}-{tag:08x}",
            "dstchannel": f"PJSIP/{'trunk' if outbound else ext}-{leg['id']:08x}" if (ext or outbound) else "",
            "lastapp": "Dial", "lastdata": f"PJSIP/{ext or dst},60", "start": local(leg["invited_at"]),
            "answer": local(leg["answered_at"]), "end": local(end),
            "duration": str(int(end - leg["invited_at"])),
            "billsec": str(int(end - leg["answered_at"])) if leg["answered_at"] else "0",
            "disposition": leg["disposition"], "amaflags": "DOCUMENTATION",
            "uniqueid": f"{int(leg['invited_at'])}.{tag}", "userfield": leg["kind"].capitalize(),
            "channel_ext": ext if outbound else "", "dstchannel_ext": "" if outbound else ext, "service": "",
            "caller_name": "", "recordfiles": recordfiles,
            "src_trunk_name": "trunk" if inbound else "", "dst_trunk_name": "trunk" if outbound else "",
            "session": leg["linked_id"], "action_type": "TRANSFER" if leg["transferred_by"] else "DIAL",
            "action_owner": leg["transferred_by"] or "",
        }

    # ------------------------------------------------------------------ real-time output

    @staticmethod
    def push(records: Iterable[dict[str, Any]], *, port: int, host: str = "127.0.0.1", timeout: float = 5) -> None:
        """The real-time output: one TCP connection, each record a JSON object on its line."""
        with socket.create_connection((host, port), timeout=timeout) as sock:
            for record in records:
                sock.sendall(json.dumps(record).encode() + b"\n")


def _user(uri: str) -> str:
    text = uri.strip().strip("<>")
    if ":" in text and "@" in text:
        return text.split(":", 1)[1].split("@", 1)[0]
    return ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab_dir", type=Path)
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--user", default="cdrapi")
    parser.add_argument("--password", required=True)
    parser.add_argument("--domain", default=None, help="only this firm's SIP domain")
    parser.add_argument("--timezone", default="Asia/Riyadh")
    parser.add_argument("--push", default=None, help="HOST:PORT of the real-time output receiver")
    args = parser.parse_args(argv[1:])
    emu = UcmEmulator(args.lab_dir / "ucm-emulator", user=args.user, password=args.password, port=args.port,
                      timezone=args.timezone, lab_dir=args.lab_dir, sip_domain=args.domain)
    emu.start()
    print(f"UCM emulator: {emu.url}/api (user {args.user})", flush=True)
    pending: list[dict[str, Any]] = []  # the UCM keeps up to 10,000 records while the receiver is down
    while True:
        new = emu.sync_lab() if (args.lab_dir / "accounting.sqlite").exists() else []
        if args.push:
            pending = (pending + new)[-10_000:]
            host, port = args.push.rsplit(":", 1)
            if pending:
                try:
                    emu.push(pending, host=host, port=int(port))
                    pending = []
                except OSError as exc:
                    print(f"real-time output: {exc}", file=sys.stderr, flush=True)
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
