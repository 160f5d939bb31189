"""The PBX lab under load: how fast an outside call rings an agent, and how many calls at
once it carries with media through rtpengine (target: 20 on this 2-core machine).

    .venv/bin/python bench/bench_pbx_lab.py [--invites 30] [--concurrent 20] [--hold 15]

1. Ring latency: a raw UDP caller on the trunk sends INVITEs to the demo firm's DID one after
   the other; two registered baresip agents (the ring group) ring. Measured: INVITE sent ->
   180 Ringing received at the caller (the PBX forked it to both agents and relayed the
   first 180 back), then the caller CANCELs.
2. Concurrent calls: sipp on the trunk places N calls at once (each streams a G.711 tone
   with rtp_stream) to the DID; one baresip agent answers them all and plays its own tone
   back. Counted: calls sipp completed, the PBX's ANSWERED records, and the recordings in
   which both directions carried at least (hold - 2) s of audio. Also the lab's CPU use.

Everything runs in a network namespace with only ``lo`` (root needed), like the tests.
Results: printed, and written to bench/results/pbx_lab.json; figures in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dev.pbx_lab.lab import _pcap_packets, _rtp_of  # noqa: E402
from tests.softphone.pbx_lab_support import lab_for_tests  # noqa: E402

RING_CALLER = r"""
import json, socket, sys, time
did, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 5096)); s.settimeout(5)
PBX = ("127.0.0.1", 5080)
def req(method, n, to_tag=""):
    return (f"{method} sip:{did}@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5096;branch=z9hG4bK-b{n};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:outside@127.0.0.1:5096>;tag=f{n}\r\nTo: <sip:{did}@127.0.0.1:5080>{to_tag}\r\n"
            f"Call-ID: ring-bench-{n}-{time.time()}\r\nCSeq: 1 {method}\r\nContact: <sip:outside@127.0.0.1:5096>\r\n")
sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
out = []
for n in range(count):
    invite = req("INVITE", n)
    call_id = [l for l in invite.split("\r\n") if l.startswith("Call-ID")][0]
    sent = time.perf_counter()
    s.sendto((invite + f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode(), PBX)
    ringing = None
    while True:
        msg = s.recv(65535).decode()
        code = int(msg.split()[1])
        if code == 180 and ringing is None:
            ringing = time.perf_counter() - sent
            cancel = invite.replace("INVITE sip", "CANCEL sip", 1).replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
            s.sendto((cancel + "Content-Length: 0\r\n\r\n").encode(), PBX)
        elif code >= 300:
            to = [l for l in msg.split("\r\n") if l.lower().startswith("to:")][0]
            ack = invite.replace("INVITE sip", "ACK sip", 1).replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
            ack = "\r\n".join(to if l.startswith("To:") else l for l in ack.split("\r\n"))
            s.sendto((ack + "Content-Length: 0\r\n\r\n").encode(), PBX)
            break
    out.append(ringing)
    time.sleep(0.3)
print(json.dumps(out))
"""

UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="outside caller streaming a tone">
  <send retrans="500" start_rtd="ring">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:outside@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:outside@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [rtpstream_audio_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true" rtd="ring"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:outside@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]>
  </send>
  <nop><action><exec rtp_stream="@FILE@,-1,0"/></action></nop>
  <pause milliseconds="@HOLD_MS@"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:outside@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            continue
    return total


def _lab_pids(lab) -> list[int]:
    out = subprocess.run(["pgrep", "-g", str(lab.proc.pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _both_directions(pcap: Path, seconds: float) -> bool:
    per_source: dict = {}
    for _when, packet in _pcap_packets(pcap):
        rtp = _rtp_of(packet)
        if rtp and rtp[1] in (0, 8):
            per_source[rtp[0]] = per_source.get(rtp[0], 0) + 1
    # 50 packets a second of 20 ms audio.
    return len(per_source) >= 2 and all(n >= seconds * 50 for n in list(per_source.values())[:2])


def ring_latency(lab, firm, invites: int) -> dict:
    lab.agent("ring-a", user="1001", domain=firm.domain, password=firm.passwords["1001"], port=5071)
    lab.agent("ring-b", user="1002", domain=firm.domain, password=firm.passwords["1002"], port=5073)
    done = subprocess.run(lab.cmd([sys.executable, "-c", RING_CALLER, firm.did, str(invites)]), capture_output=True,
                          text=True, timeout=invites * 10)
    if done.returncode != 0:
        raise SystemExit(f"ring caller failed: {done.stderr[-2000:]}")
    times = [t * 1000 for t in json.loads(done.stdout) if t is not None]
    for phone in lab.phones:
        phone.stop()
    lab.phones = []
    return {"invites": invites, "rang": len(times), "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(sorted(times)[int(len(times) * 0.95) - 1], 1), "max_ms": round(max(times), 1)}


def concurrent_calls(lab, firm, calls: int, hold: int) -> dict:
    lab.agent("answering-agent", user="1001", domain=firm.domain, password=firm.passwords["1001"], port=5071,
              answer="auto")
    ulaw = lab.dir / "tone-ulaw.wav"
    subprocess.run(["sox", str(lab.sound("outside")), "-e", "u-law", "-t", "wav", str(ulaw), "trim", "0", "60"],
                   check=True)
    scenario = lab.dir / "bench-uac.xml"
    scenario.write_text(UAC.replace("@FILE@", str(ulaw)).replace("@HOLD_MS@", str(hold * 1000)))
    before_calls = len(lab.calls())
    before_recordings = set(lab.recordings())
    pids = _lab_pids(lab) + [p.proc.pid for p in lab.phones]
    cpu0, wall0 = _cpu_seconds(pids), time.monotonic()
    done = subprocess.run(
        lab.cmd(["sipp", "127.0.0.1:5080", "-i", "127.0.0.1", "-p", "5098", "-sf", str(scenario), "-s", firm.did,
                 "-m", str(calls), "-l", str(calls), "-r", str(calls), "-rp", "1000", "-nostdin",
                 "-mp", "42000", "-timeout", str(hold + 40),
                 "-trace_stat", "-stf", str(lab.dir / "sipp-stat.csv"), "-trace_err",
                 "-error_file", str(lab.dir / "sipp-errors.log"), "-trace_rtt", "-rtt_freq", "1"]),
        capture_output=True, text=True, cwd=lab.dir, timeout=hold + 90)
    cpu = _cpu_seconds(pids) - cpu0
    wall = time.monotonic() - wall0
    if not (lab.dir / "sipp-stat.csv").exists():
        raise SystemExit(f"sipp did not run (rc {done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    stat = (lab.dir / "sipp-stat.csv").read_text().splitlines()
    head, last = stat[0].split(";"), stat[-1].split(";")
    successful = int(last[head.index("SuccessfulCall(C)")])
    failed = int(last[head.index("FailedCall(C)")])
    time.sleep(2)
    rows = [r for r in lab.calls()[before_calls:] if r.disposition == "ANSWERED"]
    new_recordings = [p for p in lab.recordings() if p not in before_recordings]
    with_media = sum(1 for p in new_recordings if _both_directions(p, hold - 2))
    errors = lab.dir / "sipp-errors.log"
    if failed and errors.exists():
        print(errors.read_text()[-3000:])
        print([(r.disposition, r.sip_code) for r in lab.calls()[before_calls:]])
        print(lab.phones[0].log()[-2000:])
    return {"calls": calls, "hold_s": hold, "sipp_rc": done.returncode, "successful": successful, "failed": failed,
            "answered_records": len(rows), "recordings": len(new_recordings),
            "recordings_with_media_both_ways": with_media,
            "lab_cpu_percent_of_one_core": round(100 * cpu / wall, 1),
            "talk_seconds_median": round(statistics.median([r.talk_seconds for r in rows]), 2) if rows else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invites", type=int, default=30)
    parser.add_argument("--concurrent", type=int, nargs="+", default=[20])
    parser.add_argument("--hold", type=int, default=15)
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="pbx-lab-bench-") as tmp, lab_for_tests(Path(tmp), ring_seconds=20) as (lab, firm):
        results["ring_latency"] = ring_latency(lab, firm, args.invites)
        print("ring latency:", results["ring_latency"], flush=True)
        results["concurrent"] = []
        for n in args.concurrent:
            figures = concurrent_calls(lab, firm, n, args.hold)
            results["concurrent"].append(figures)
            print("concurrent:", figures, flush=True)
            for phone in lab.phones:
                phone.stop()
            lab.phones = []
    results["cpu"] = os.cpu_count()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pbx_lab.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
