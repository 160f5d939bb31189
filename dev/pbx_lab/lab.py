"""The PBX lab: a stand-in for the firm's Grandstream UCM6301, for tests, benches and demos.

What runs (``make dev-pbx``; ``make run`` starts it too; tests start it in a network namespace
whose only interface is ``lo``), all Debian packages:

- **Kamailio** (dev/kamailio/kamailio.cfg): registrar and proxy for the agents over
  ws://127.0.0.1:8088, wss://127.0.0.1:8089 and udp/tcp 127.0.0.1:5060, digest auth per firm
  domain (credentials exported from the database by dev/kamailio/credentials.py).
- **rtpengine** (userspace, ng control on 127.0.0.1:2223): every call's media flows through
  it, as through the UCM. Kamailio asks for each leg in its own terms, per forked branch
  (``via-branch``): towards a browser ``ICE=force DTLS=passive SDES-off RTP/SAVPF
  rtcp-mux-offer generate-mid``, towards a desk phone or the trunk ``ICE=remove DTLS=off
  RTP/AVP rtcp-mux-demux``; rtpengine runs with ``--dtls-passive``, so it never starts a DTLS
  handshake before Chromium has the answer (it did, and the browser leg stayed without
  keys). It records every call (``record-call=yes``, pcap, one file per call,
  ``spool/pcaps/``); the lab turns a recording into a two-channel WAV with
  :meth:`Lab.recording_wav` (G.711; an Opus browser-to-browser call stays pcap only).
  Known: rtpengine 10.5 segfaults while exiting if a recorded call is still up, so stopping
  the lab mid-call loses that call's recording (finished calls are unaffected).
  rtpengine-recording-daemon is not used: it reads packets from the kernel module's /proc
  interface, which a userspace-only rtpengine (no kernel module here) does not have.
- **The trunk**: udp 127.0.0.1:5080, no authentication, loopback only. An INVITE to a firm's
  DID (PBX settings; the demo firm's is +966110000000) rings that firm's ring group. An
  agent's call to a number that is not an extension leaves through it to the outside phone
  at ``OUTSIDE_URI`` (udp 127.0.0.1:5090).
- **The outside phone**: baresip playing a real audio file and recording what it hears
  (``make dev-pbx`` runs one that answers every call; tests drive their own, see below).
- **Accounting**: ``accounting.sqlite`` in the lab folder. ``lab_call`` has one row per call
  (call id, kind inbound/outbound/internal, firm domain, DID, from, to, invited / answered /
  ended times as Unix seconds, disposition ANSWERED / NO ANSWER / BUSY / CANCELED / FAILED,
  SIP code, answering extension), written by Kamailio from its dialog events; ``lab_leg``
  has one row per *leg*, as the UCM's CDR: each ringing branch of a ring group (CANCELED
  when the caller gave up or another agent answered, NO ANSWER when the ring time ran out),
  the answered leg, a blind transfer's new leg (its own Call-ID, the transferring extension,
  the original call's ``linked_id``: the REFER's Refer-To carries the link), and the one leg
  of a call nobody could take (no extension); services/pbx/lab.py reads it as a CDR
  source, dev/pbx_lab/ucm_emulator.py serves it as a UCM would. ``acc`` and
  ``missed_calls`` are Kamailio's own per-transaction records (acc module).

The UCM behaviour it mimics (UCM6301 firmware 1.0.x, "Ring Group" with strategy "Ring
All"): an inbound route sends the DID to a ring group; every member extension's every
registered device rings at once; the first to answer takes the call and the others stop
ringing (CANCEL, "call completed elsewhere"); when nobody answers within the ring group's
timeout (here ``ring_seconds``, default 20, ``DEV_PBX_RING_SECONDS``) the call goes to the
failover destination, which in the lab is "hang up": the caller gets 408 (and 480 when no
member is registered at all, after the same ringing time). Queues (agents logging in and
out, wrap-up time, announcements, strategies other than ring-all) are not modelled.

Blind transfer: the lab is a proxy, so a REFER from an agent is passed to the other party
in the dialog, which then calls the transfer target itself (what JsSIP and desk phones do
with a REFER). A UCM (Asterisk) instead answers the REFER itself and bridges the other
party to the target; the lab does not do that (it would need a B2BUA) - see README.md.

For tests (every process lives in ``netns`` when given: a pid of a process in the namespace;
tests/softphone/pbx_lab_support.py seeds a database and makes the namespace)::

    lab = Lab(workdir, database_url=url, netns=pid, ring_seconds=8)
    lab.start()                                   # rtpengine + Kamailio, as make dev-pbx
    agent = lab.agent("a1", user="1001", domain=d, password=pw, port=5071)  # registered desk phone
    caller = lab.phone("caller", port=5094, number="0551234567")  # an outside phone calling from that number
    caller.dial(lab.did_uri("+966110000000"))
    agent.wait_event("CALL_INCOMING"); agent.accept()
    caller.wait_event("CALL_ESTABLISHED"); ...; caller.hangup()
    agent.send_dtmf("12#"); agent.command("transfer", "sip:1003@" + d)
    caller.heard()                                # WAVs of what that phone heard, per call
    lab.calls()                                   # the accounting rows (LabCall, talk_seconds)
    lab.acc_rows("missed_calls")                  # Kamailio's acc records
    lab.recording_wav(call_id)                    # the PBX's recording of that call, as WAV
    lab.outside_call(to="+966110000000", duration=5)   # one-shot outside call, OutsideCall
    lab.answer_outside()                          # a phone on 5090 that answers outbound calls
    lab.restart(); lab.stop()

Phones take their port and port + 1 (baresip's TCP/TLS): keep them 2 apart. A browser test
whose PBX the run command started uses ``Lab(stack.pbx.dir, netns=stack.netns.pid)`` without
``start()``; there the run command's own outside phone already answers on 5090 (what it
hears: ``<pbx dir>/outside-phone/heard/``), so such a test calls from another port.

Command line: ``python dev/pbx_lab/lab.py prepare DIR`` (what scripts/dev_pbx.sh runs),
``python dev/pbx_lab/lab.py calls DIR`` (the accounting rows as JSON lines).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TRUNK = ("127.0.0.1", 5080)
OUTSIDE_PORT = 5090
RTPENGINE_NG = "127.0.0.1:2223"
DEFAULT_RING_SECONDS = 20
KAMAILIO_SQL = Path("/usr/share/kamailio/db_sqlite")

LAB_CALL_SCHEMA = """
CREATE TABLE IF NOT EXISTS lab_call (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,            -- inbound (trunk -> ring group), outbound (agent -> trunk), internal
    firm TEXT NOT NULL,            -- the firm's SIP domain
    did TEXT NOT NULL DEFAULT '',  -- the DID called (inbound)
    from_uri TEXT NOT NULL,
    to_uri TEXT NOT NULL,
    invited_at REAL NOT NULL,      -- Unix seconds: INVITE received
    answered_at REAL,              -- 200 OK relayed (NULL: never answered)
    ended_at REAL NOT NULL,        -- BYE or final failure
    disposition TEXT NOT NULL,     -- ANSWERED, NO ANSWER, BUSY, CANCELED, FAILED
    sip_code INTEGER NOT NULL,
    answered_by TEXT NOT NULL DEFAULT ''  -- the extension that answered (or placed an outbound call)
);
CREATE INDEX IF NOT EXISTS ix_lab_call_call_id ON lab_call (call_id);
CREATE TABLE IF NOT EXISTS lab_leg (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the leg's position: rows are written when a leg ends
    call_id TEXT NOT NULL,         -- this leg's SIP Call-ID
    branch INTEGER NOT NULL,       -- the forked branch of its INVITE (call_id + branch: one leg)
    linked_id TEXT NOT NULL,       -- the call's Call-ID; a transferee's new call keeps the original's
    kind TEXT NOT NULL,            -- inbound, outbound, internal (as lab_call)
    firm TEXT NOT NULL,            -- the firm's SIP domain
    did TEXT NOT NULL DEFAULT '',
    from_uri TEXT NOT NULL,
    to_uri TEXT NOT NULL,
    extension TEXT NOT NULL DEFAULT '',   -- the extension rung (inbound), calling (outbound); '' when none
    invited_at REAL NOT NULL,      -- Unix seconds: this branch's INVITE sent
    answered_at REAL,
    ended_at REAL NOT NULL,
    disposition TEXT NOT NULL,     -- ANSWERED, NO ANSWER, BUSY, CANCELED, FAILED
    sip_code INTEGER NOT NULL,
    transferred_by TEXT NOT NULL DEFAULT ''  -- the extension that blind-transferred the caller to this leg
);
CREATE INDEX IF NOT EXISTS ix_lab_leg_firm ON lab_leg (firm, id);
"""


def missing_packages() -> list[str]:
    """The Debian packages the lab needs that are not installed here."""
    need = []
    for tool, package in (("kamailio", "kamailio"), ("rtpengine", "rtpengine-daemon"), ("baresip", "baresip"),
                          ("sox", "sox"), ("sipp", "sip-tester"), ("kamcmd", "kamailio")):
        if shutil.which(tool) is None and package not in need:
            need.append(package)
    modules = {"websocket.so": "kamailio-websocket-modules", "tls.so": "kamailio-tls-modules",
               "db_sqlite.so": "kamailio-sqlite-modules", "rtpengine.so": "kamailio"}
    for module, package in modules.items():
        if not list(Path("/usr/lib").glob(f"*/kamailio/modules/{module}")) and package not in need:
            need.append(package)
    return need


# --------------------------------------------------------------------------- preparing a run


def prepare(directory: Path, *, ring_seconds: int = DEFAULT_RING_SECONDS, media: bool = True,
            outside_uri: str = f"sip:outside@127.0.0.1:{OUTSIDE_PORT}") -> None:
    """Writes lab.cfg (read by kamailio.cfg), the accounting database and the sound files."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spool").mkdir(exist_ok=True)
    (directory / "recordings").mkdir(exist_ok=True)
    db = directory / "accounting.sqlite"
    lines = [
        "# Written by dev/pbx_lab/lab.py prepare; runtime only.",
        "#!define WITH_ACC",
        f"#!define RING_MS {int(ring_seconds * 1000)}",
        f'#!define OUTSIDE_URI "{outside_uri}"',
        f'#!define RTPENGINE_SOCK "udp:{RTPENGINE_NG}"',
        f"#!subst \"!LABDB!{db}!\"",
    ]
    if media:
        lines.insert(1, "#!define WITH_MEDIA")
    (directory / "lab.cfg").write_text("\n".join(lines) + "\n")
    create_accounting(db)
    sounds(directory)


def create_accounting(db: Path) -> None:
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(LAB_CALL_SCHEMA)
        have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "version" not in have:
            con.executescript((KAMAILIO_SQL / "standard-create.sql").read_text())
        if "acc" not in have:
            con.executescript((KAMAILIO_SQL / "acc-create.sql").read_text())
        con.commit()


def sounds(directory: Path) -> dict[str, Path]:
    """Audio the phones play: a different tone per party, so a recording tells who was heard."""
    out = {}
    for name, freq in (("outside", 440), ("agent", 660), ("agent2", 880)):
        path = directory / f"play-{name}.wav"
        if not path.exists():
            subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path), "synth", "120", "sine",
                            str(freq), "vol", "0.5"], check=True)
        out[name] = path
    return out


# --------------------------------------------------------------------------- accounting


@dataclass(frozen=True)
class LabCall:
    call_id: str
    kind: str
    firm: str
    did: str
    from_uri: str
    to_uri: str
    invited_at: float
    answered_at: float | None
    ended_at: float
    disposition: str
    sip_code: int
    answered_by: str

    @property
    def talk_seconds(self) -> float:
        return self.ended_at - self.answered_at if self.answered_at else 0.0


def read_calls(db: Path) -> list[LabCall]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        rows = con.execute(
            "SELECT call_id, kind, firm, did, from_uri, to_uri, invited_at, answered_at, ended_at, disposition, "
            "sip_code, answered_by FROM lab_call ORDER BY id").fetchall()
    return [LabCall(*row) for row in rows]


# --------------------------------------------------------------------------- recordings


def _pcap_packets(path: Path) -> list[tuple[float, bytes]]:
    """(time, IP packet) of a raw-IP pcap as rtpengine writes it (--recording-format=raw)."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        pos += 16
        out.append((sec + frac / (1e9 if nano else 1e6), data[pos:pos + incl]))
        pos += incl
    return out


def _rtp_of(packet: bytes) -> tuple[tuple[str, int], int, int, bytes] | None:
    """(source, payload type, RTP timestamp, payload) of an IPv4/UDP/RTP packet."""
    if len(packet) < 28 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if packet[9] != 17:
        return None
    src = (socket.inet_ntoa(packet[12:16]), struct.unpack("!H", packet[ihl:ihl + 2])[0])
    rtp = packet[ihl + 8:]
    if len(rtp) < 12 or rtp[0] >> 6 != 2:
        return None
    cc = rtp[0] & 0x0F
    pt = rtp[1] & 0x7F
    ts = struct.unpack("!I", rtp[4:8])[0]
    head = 12 + 4 * cc
    if rtp[0] & 0x10 and len(rtp) >= head + 4:
        head += 4 + 4 * struct.unpack("!H", rtp[head + 2:head + 4])[0]
    return src, pt, ts, rtp[head:]


def _g711_to_linear(payload: bytes, pt: int) -> bytes:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # Python 3.11's G.711 decoder; the lab runs on the app's interpreter

    return audioop.ulaw2lin(payload, 2) if pt == 0 else audioop.alaw2lin(payload, 2)


def pcap_to_wav(pcap: Path, out: Path) -> dict[str, Any]:
    """Decodes a call's G.711 recording into a WAV: one channel per direction (sender), the
    audio placed at the time it passed the PBX. Returns its duration and the streams found."""
    packets = _pcap_packets(pcap)
    streams: dict[tuple[str, int], list[tuple[float, bytes]]] = {}
    codecs: set[int] = set()
    for when, packet in packets:
        rtp = _rtp_of(packet)
        if rtp is None:
            continue
        src, pt, _ts, payload = rtp
        if pt in (0, 8):
            codecs.add(pt)
            streams.setdefault(src, []).append((when, _g711_to_linear(payload, pt)))
    if not streams:
        raise ValueError(f"{pcap}: no G.711 audio in this recording (codecs other than PCMU/PCMA are kept as pcap only)")
    start = min(chunks[0][0] for chunks in streams.values())
    end = max(chunks[-1][0] + len(chunks[-1][1]) / 2 / 8000 for chunks in streams.values())
    frames = int(round((end - start) * 8000))
    channels = []
    for chunks in list(streams.values())[:2]:
        buf = bytearray(frames * 2)
        for when, pcm in chunks:
            at = int(round((when - start) * 8000)) * 2
            buf[at:at + len(pcm)] = pcm[: max(0, len(buf) - at)]
        channels.append(bytes(buf))
    if len(channels) == 1:
        channels.append(bytes(frames * 2))
    stereo = bytearray(frames * 4)
    for i in range(frames):
        stereo[4 * i:4 * i + 2] = channels[0][2 * i:2 * i + 2]
        stereo[4 * i + 2:4 * i + 4] = channels[1][2 * i:2 * i + 2]
    with wave.open(str(out), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(stereo))
    return {"duration": frames / 8000, "streams": [f"{a}:{p}" for a, p in streams], "first_packet": start,
            "last_packet": end}


def audio_level(path: Path, channel: int | None = None) -> float:
    """RMS amplitude (0..1) of a WAV as sox measures it; ``channel`` picks one (1-based)."""
    argv = ["sox", str(path), "-n"]
    if channel is not None:
        argv += ["remix", str(channel)]
    done = subprocess.run(argv + ["stat"], capture_output=True, text=True)
    for line in done.stderr.splitlines():
        if line.startswith("RMS     amplitude"):
            return float(line.split(":")[1])
    raise ValueError(f"sox could not measure {path}: {done.stderr[-500:]}")


def rough_frequency(path: Path, channel: int | None = None) -> float:
    """The dominant frequency (Hz) of a WAV as sox's ``stat`` estimates it."""
    argv = ["sox", str(path), "-n"]
    if channel is not None:
        argv += ["remix", str(channel)]
    done = subprocess.run(argv + ["stat"], capture_output=True, text=True)
    for line in done.stderr.splitlines():
        if line.startswith("Rough   frequency"):
            return float(line.split(":")[1])
    raise ValueError(f"sox could not measure {path}: {done.stderr[-500:]}")


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


# --------------------------------------------------------------------------- phones (baresip)


def write_phone_config(directory: Path, *, name: str, port: int, user: str | None, domain: str | None,
                       password: str | None, answer: str, play: Path, regint: int, record_dir: Path,
                       number: str | None = None) -> int:
    """baresip's config and accounts for one phone in ``directory``; returns its control port.

    ``number`` is what an outside phone presents as the caller (its From user), as a
    caller's number arrives on a trunk."""
    directory.mkdir(parents=True, exist_ok=True)
    record_dir.mkdir(parents=True, exist_ok=True)
    ctrl_port = port + 20000
    rtp = 10000 + (port % 250) * 200
    (directory / "config").write_text(f"""poll_method epoll
sip_listen 127.0.0.1:{port}
net_interface 127.0.0.1
audio_player aubridge,{name}-out
audio_source aufile,{play}
audio_alert aubridge,{name}-alert
ausrc_srate 8000
auplay_srate 8000
ausrc_channels 1
auplay_channels 1
rtp_ports {rtp}-{rtp + 199}
call_max_calls 64
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{ctrl_port}
snd_path {record_dir}
""")
    if user:
        account = (f"<sip:{user}@{domain}>;auth_user={user};auth_pass={password};"
                   f"outbound=\"sip:127.0.0.1:5060;transport=udp\";regint={regint};answermode={answer};"
                   f"audio_codecs=PCMU,PCMA")
    else:
        account = f"<sip:{number or 'outside'}@127.0.0.1:{port}>;regint=0;answermode={answer};audio_codecs=PCMU,PCMA"
    accounts = directory / "accounts"
    accounts.write_text(account + "\n")
    accounts.chmod(0o600)
    return ctrl_port


class Phone:
    """A baresip SIP phone on 127.0.0.1:``port``, driven over its ctrl_tcp JSON socket.

    baresip also takes ``port`` + 1 (TCP/TLS) and ``port`` + 20000 (control): give phones
    ports at least 2 apart.

    With ``user``/``domain``/``password`` it registers to the lab like a desk phone (an
    agent); without, it is an outside phone that calls the trunk or answers calls from it.
    It plays ``play`` as its microphone and writes what it hears to ``record_dir``
    (baresip's sndfile: ``dump-*-dec.wav`` heard, ``dump-*-enc.wav`` sent, per call).
    """

    def __init__(self, lab: Lab, name: str, *, port: int, user: str | None = None, domain: str | None = None,
                 password: str | None = None, answer: str = "manual", play: Path | None = None,
                 regint: int = 60, record_dir: Path | None = None, number: str | None = None) -> None:
        self.lab = lab
        self.name = name
        self.port = port
        self.user = user
        self.domain = domain
        self.dir = lab.dir / "phones" / name
        self.record_dir = record_dir or self.dir / "heard"
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._responses: dict[str, dict[str, Any]] = {}
        self._token = 0
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(parents=True, exist_ok=True)
        ctrl_port = write_phone_config(self.dir, name=name, port=port, user=user, domain=domain,
                                       password=password, answer=answer,
                                       play=play or lab.sound("outside" if user is None else "agent"),
                                       regint=regint, record_dir=self.record_dir, number=number)
        self.log_path = self.dir / "baresip.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(lab.cmd(["baresip", "-f", str(self.dir)]), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.sock = _wait_for(lambda: _connect(ctrl_port, lab.netns), 10, f"baresip {name}'s control port")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b":" in buf:
                length, rest = buf.split(b":", 1)
                n = int(length)
                if len(rest) < n + 1:
                    break
                message = json.loads(rest[:n])
                buf = rest[n + 1:]
                with self._cond:
                    if message.get("event"):
                        message["at"] = time.time()
                        self.events.append(message)
                    elif message.get("response"):
                        self._responses[str(message.get("token"))] = message
                    self._cond.notify_all()

    def command(self, command: str, params: str = "") -> dict[str, Any]:
        self._token += 1
        token = str(self._token)
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._responses, 10):
                raise AssertionError(f"{self.name}: no answer to {command} {params}")
            return self._responses.pop(token)

    def wait_event(self, kind: str, timeout: float = 15, since: int = 0) -> dict[str, Any]:
        """The first event of ``kind`` (e.g. CALL_INCOMING, CALL_ESTABLISHED, CALL_CLOSED,
        REGISTER_OK, CALL_DTMF_START) after the ``since``-th event."""
        def found():
            return next((e for e in self.events[since:] if e.get("type") == kind), None)

        with self._cond:
            if not self._cond.wait_for(found, timeout):
                raise AssertionError(f"{self.name}: no {kind} in {timeout} s; events: "
                                     f"{[e.get('type') for e in self.events]}\n{self.log()[-1500:]}")
            return found()

    def has_event(self, kind: str) -> bool:
        with self._cond:
            return any(e.get("type") == kind for e in self.events)

    def dial(self, uri: str) -> None:
        self.command("dial", uri)

    def accept(self) -> None:
        self.command("accept")

    def hangup(self) -> None:
        self.command("hangup")

    def send_dtmf(self, digits: str) -> None:
        """RFC 4733 telephone-events in the call's RTP (baresip's default DTMF)."""
        for digit in digits:
            self.command("sndcode", digit)
            time.sleep(0.25)

    def heard(self) -> list[Path]:
        """The WAV files of what this phone heard, one per call, oldest first."""
        return sorted(self.record_dir.glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


_CONNECT_IN_NETNS = """
import socket, sys
parent = socket.socket(fileno=int(sys.argv[2]))
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
except OSError:
    sys.exit(1)
socket.send_fds(parent, [b"fd"], [s.fileno()])
"""


def _connect(port: int, netns: int | None) -> socket.socket | None:
    """A TCP connection to 127.0.0.1:``port`` of the namespace of process ``netns``: a helper
    connects inside it and hands the connected socket over (SCM_RIGHTS)."""
    if netns is None:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            return None
    ours, theirs = socket.socketpair()
    with ours, theirs:
        done = subprocess.run(["nsenter", "-t", str(netns), "-n", "--", sys.executable, "-c", _CONNECT_IN_NETNS,
                               str(port), str(theirs.fileno())], pass_fds=[theirs.fileno()], capture_output=True)
        if done.returncode != 0:
            return None
        _msg, fds, _flags, _addr = socket.recv_fds(ours, 16, 1)
    sock = socket.socket(fileno=fds[0])
    sock.settimeout(None)
    return sock


def _wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- the lab


@dataclass
class OutsideCall:
    """What the outside caller saw of one call."""

    answered: bool
    established_at: float | None
    closed_at: float | None
    heard: Path | None
    phone: Phone

    @property
    def talk_seconds(self) -> float:
        return (self.closed_at or 0) - (self.established_at or 0) if self.established_at else 0.0


class Lab:
    """The PBX lab in ``workdir``: started with scripts/dev_pbx.sh (exactly as ``make dev-pbx``),
    inside the network namespace of process ``netns`` when given.

    The control sockets are reached from this process: Kamailio's ctl is a Unix socket in the
    lab folder, and each phone's ctrl_tcp port is connected to from inside the namespace by
    a helper that hands the socket over, so nothing but ``lo`` of the namespace is involved.
    """

    def __init__(self, workdir: Path, *, database_url: str | None = None, netns: int | None = None,
                 ring_seconds: int = DEFAULT_RING_SECONDS, env: dict[str, str] | None = None) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.netns = netns
        self.ring_seconds = ring_seconds
        self.env = {**os.environ, **(env or {}), "DEV_PBX_DIR": str(self.dir), "PYTHON": sys.executable,
                    "DEV_PBX_RING_SECONDS": str(ring_seconds), "DEV_PBX_OUTSIDE_PHONE": "off"}
        if database_url:
            self.env["WATHEEQ_DATABASE_URL"] = database_url
        self.proc: subprocess.Popen | None = None
        self.phones: list[Phone] = []

    # processes
    def cmd(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.netns), "-n", "--", *argv] if self.netns else argv

    def start(self) -> None:
        log = open(self.dir / "pbx.log", "ab")
        self.proc = subprocess.Popen(self.cmd(["bash", str(ROOT / "scripts/dev_pbx.sh")]), cwd=ROOT, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        _wait_for(self._answers, 20, "the PBX lab to start")
        _wait_for(lambda: self._listening("-Hlun", TRUNK[1]), 5, "the trunk port")

    def _listening(self, flags: str, port: int) -> bool:
        out = subprocess.run(self.cmd(["ss", flags, f"sport = :{port}"]), capture_output=True, text=True).stdout
        return bool(out.strip())

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the PBX lab exited:\n{self.log()[-3000:]}")
        return self.kamcmd("core.uptime").returncode == 0

    def kamcmd(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kamcmd", "-s", f"unix:{self.dir / 'kamailio.ctl'}", *args], capture_output=True,
                              text=True)

    def registered(self) -> str:
        return self.kamcmd("ul.dump").stdout

    def stop(self) -> None:
        for phone in self.phones:
            phone.stop()
        self.phones = []
        self.stop_pbx()

    def stop_pbx(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> None:
        """Stops the PBX (Kamailio and rtpengine, registrations lost) and starts it again."""
        self.stop_pbx()
        _wait_for(lambda: not self._listening("-Hlun", 5060), 5, "the old PBX's sockets to close")
        self.start()

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.dir / "pbx.log",) if p.exists())

    # phones
    def phone(self, name: str, **kwargs: Any) -> Phone:
        phone = Phone(self, name, **kwargs)
        self.phones.append(phone)
        return phone

    def agent(self, name: str, *, user: str, domain: str, password: str, port: int, **kwargs: Any) -> Phone:
        """A desk phone registered as ``user``; returns once the PBX holds its binding."""
        phone = self.phone(name, user=user, domain=domain, password=password, port=port, **kwargs)
        # It may register before its control connection is up: ask the registrar.
        _wait_for(lambda: f"@127.0.0.1:{port}" in self.registered(), 10, f"{user} to register from {port}")
        return phone

    def sound(self, name: str) -> Path:
        return sounds(self.dir)[name]

    @staticmethod
    def did_uri(did: str) -> str:
        return f"sip:{did}@{TRUNK[0]}:{TRUNK[1]}"

    def outside_call(self, *, to: str, play: Path | None = None, record_dir: Path | None = None,
                     duration: float = 5.0, port: int = OUTSIDE_PORT + 4, answer_timeout: float | None = None
                     ) -> OutsideCall:
        """An outside phone calls ``to`` (a DID) through the trunk, talks ``duration`` s once
        answered, hangs up. Returns what it saw; the phone stays up until :meth:`stop`."""
        phone = self.phone(f"outside-{port}-{time.monotonic_ns()}", port=port, play=play, record_dir=record_dir)
        phone.dial(self.did_uri(to))
        limit = answer_timeout if answer_timeout is not None else self.ring_seconds + 5
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if phone.has_event("CALL_ESTABLISHED") or phone.has_event("CALL_CLOSED"):
                break
            time.sleep(0.05)
        if not phone.has_event("CALL_ESTABLISHED"):
            closed = phone.wait_event("CALL_CLOSED", 5)
            return OutsideCall(False, None, closed["at"], None, phone)
        established = phone.wait_event("CALL_ESTABLISHED")
        time.sleep(max(0.0, duration - (time.time() - established["at"])))
        phone.hangup()
        closed = phone.wait_event("CALL_CLOSED", 5)
        heard = phone.heard()
        return OutsideCall(True, established["at"], closed["at"], heard[-1] if heard else None, phone)

    def answer_outside(self, *, play: Path | None = None, record_dir: Path | None = None,
                       port: int = OUTSIDE_PORT) -> Phone:
        """The outside world's phone at OUTSIDE_URI: answers every call the trunk sends it."""
        return self.phone(f"outside-answer-{port}-{time.monotonic_ns()}", port=port, answer="auto", play=play,
                          record_dir=record_dir)

    # what the PBX kept
    def calls(self) -> list[LabCall]:
        return read_calls(self.dir / "accounting.sqlite")

    def wait_calls(self, count: int, timeout: float = 10) -> list[LabCall]:
        return _wait_for(lambda: (rows := self.calls()) and len(rows) >= count and rows, timeout,
                         f"{count} call record(s) in the lab's accounting")

    def acc_rows(self, table: str = "acc") -> list[dict[str, Any]]:
        """Kamailio's own records: ``acc`` (answered INVITEs, BYEs) or ``missed_calls``."""
        if table not in ("acc", "missed_calls"):
            raise ValueError(table)
        with contextlib.closing(sqlite3.connect(f"file:{self.dir / 'accounting.sqlite'}?mode=ro", uri=True)) as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(f"SELECT * FROM {table} ORDER BY id")]

    def recordings(self) -> list[Path]:
        """rtpengine's recordings, one pcap per call."""
        return sorted((self.dir / "spool" / "pcaps").glob("*.pcap"))

    def recording_for(self, call_id: str) -> Path | None:
        """The finished recording of ``call_id`` (its metadata names the call)."""
        for meta in (self.dir / "spool" / "metadata").glob("*"):
            text = meta.read_text(errors="replace")
            if f"CALL-ID: {call_id}" in text or call_id in meta.name:
                pcap = Path(text.splitlines()[0].strip())
                if pcap.exists():
                    return pcap
        for pcap in self.recordings():
            if pcap.name.startswith(call_id):
                return pcap
        return None

    def recording_wav(self, call_id: str, out: Path | None = None, timeout: float = 10) -> tuple[Path, dict[str, Any]]:
        pcap = _wait_for(lambda: self.recording_for(call_id), timeout, f"the recording of {call_id}")
        out = out or self.dir / "recordings" / f"{pcap.stem}.wav"
        return out, pcap_to_wav(pcap, out)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "prepare":
        ring = int(os.environ.get("DEV_PBX_RING_SECONDS") or DEFAULT_RING_SECONDS)
        prepare(Path(argv[2]), ring_seconds=ring, media=shutil.which("rtpengine") is not None)
        return 0
    if len(argv) == 3 and argv[1] == "calls":
        for row in read_calls(Path(argv[2]) / "accounting.sqlite"):
            print(json.dumps(row.__dict__))
        return 0
    print("usage: lab.py prepare DIR | lab.py calls DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
