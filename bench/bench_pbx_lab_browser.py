"""Outside calls to agents in Chromium, through the PBX lab: how fast the card shows, how fast
the caller gets audio after the agent answers, and how many such calls the machine carries.

    sudo PATH=$PWD/.tools/node_modules/.bin:$PATH .venv/bin/python bench/bench_pbx_lab_browser.py \\
        [--calls 12] [--concurrent 20 15 10] [--hold 10] [--browsers 1] [--ring-group 2] [--keep DIR]

Starts the same stack as the softphone's browser tests (the run command on a seeded
temporary database, the PBX lab it starts, Debian's Chromium; all inside a network namespace
with only ``lo``). The outside phone is a small SIP/RTP user agent written here (OUTSIDE,
run inside the namespace) so that it can time its own packets: it sends the INVITE to the
firm's DID on the trunk (udp 127.0.0.1:5080), sends G.711 silence once answered, and stamps
the first RTP packet it receives. The page stamps, with ``Date.now()`` on the same clock, the
moment the incoming card enters the DOM (a MutationObserver; the paint follows within a
frame) and the moment the Answer click reaches the page.

1. INVITE sent on the trunk -> the incoming card on the agent's screen (two agents signed in,
   the ring group rings both; A's card), median over --calls calls (target < 300 ms).
2. Answer click -> first RTP packet received by the outside phone (target < 500 ms).
3. N concurrent outside calls answered by N agents, each a separate context signed in as its
   own user with its own extension (seeded through the services before the PBX starts):
   calls are placed one after the other and each answered by the next idle agent, then all N
   are held --hold seconds; a call fails unless it was answered, the caller received RTP
   through the whole hold, the agent's browser received audio bytes through the hold, and
   both ends saw it end after the caller's BYE. Tried for each size in --concurrent.

Results: printed, and written to bench/results/pbx_lab_browser.json (with the load average).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.softphone import e2e_support as e2e  # noqa: E402

A = ("agent@demo.watheeq.local", "1002")
B = ("agent2@demo.watheeq.local", "1003")
OWNER = "owner@demo.watheeq.local"
DID = "+966110000000"
BENCH_AGENT = "bench-agent{:02d}@demo.watheeq.local"
BENCH_EXTENSION = 2100  # + index: 2101, 2102, ...

# The outside phone: one SIP socket, one RTP socket per call. Commands on stdin ("call K",
# "bye K", "quit"), events as JSON lines on stdout, times as time.time() (the page's clock).
OUTSIDE = r"""
import json, random, socket, sys, threading, time
did = sys.argv[1]
SIP_PORT, RTP_BASE, PBX = 5100, 32000, ("127.0.0.1", 5080)
sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sip.bind(("127.0.0.1", SIP_PORT))
lock = threading.Lock()
calls = {}
def emit(**ev):
    with lock:
        sys.stdout.write(json.dumps(ev) + "\n"); sys.stdout.flush()
def header(msg, name):
    for line in msg.split("\r\n")[1:]:
        if not line: break
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower(): return v.strip()
    return None
def headers(msg, name):
    out = []
    for line in msg.split("\r\n")[1:]:
        if not line: break
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower(): out += [x.strip() for x in v.split(",")]
    return out
def base(c, method, cseq, branch):
    return (f"{method} {c['target']} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{SIP_PORT};branch=z9hG4bK{branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:0551000{c['k']:03d}@127.0.0.1:{SIP_PORT}>;tag={c['tag']}\r\n"
            f"To: <sip:{did}@127.0.0.1:5080>{c['to_tag']}\r\nCall-ID: {c['call_id']}\r\nCSeq: {cseq} {method}\r\n"
            + "".join(f"Route: {r}\r\n" for r in c["routes"]))
def rtp(c):
    s = c["rtp"]; s.settimeout(0.2)
    seq, ts, ssrc = random.randrange(65536), random.randrange(2**32), random.randrange(2**32)
    nxt = time.monotonic()
    while not c["done"]:
        now = time.monotonic()
        if c["answered"] and now >= nxt:
            hdr = bytes([0x80, 0]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + ssrc.to_bytes(4, "big")
            s.sendto(hdr + b"\xff" * 160, c["media"]); seq = (seq + 1) % 65536; ts = (ts + 160) % 2**32; nxt += 0.02
        try:
            s.settimeout(max(0.001, nxt - time.monotonic()) if c["answered"] else 0.2)
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            continue
        if len(data) >= 12 and data[0] >> 6 == 2:
            if c["packets"] == 0: emit(ev="rtp", k=c["k"], at=time.time())
            c["packets"] += 1
def call(k):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("127.0.0.1", RTP_BASE + 2 * k))
    c = dict(k=k, tag=f"o{k}{random.randrange(10**6)}", to_tag="", call_id=f"bench-{k}-{time.time()}@127.0.0.1",
             target=f"sip:{did}@127.0.0.1:5080", routes=[], rtp=r, answered=False, done=False, packets=0, media=None, cseq=1)
    calls[c["call_id"]] = c
    sdp = (f"v=0\r\no=- {k} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {RTP_BASE + 2 * k} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
    c["invite"] = (base(c, "INVITE", 1, f"i{k}") + f"Contact: <sip:outside@127.0.0.1:{SIP_PORT}>\r\n"
                   f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
    threading.Thread(target=rtp, args=(c,), daemon=True).start()
    emit(ev="invite", k=k, at=time.time())
    sip.sendto(c["invite"].encode(), PBX)
def ack(c, branch):
    sip.sendto((base(c, "ACK", 1, branch) + "Content-Length: 0\r\n\r\n").encode(), PBX)
def bye(k):
    c = next(x for x in calls.values() if x["k"] == k)
    c["cseq"] += 1
    sip.sendto((base(c, "BYE", c["cseq"], f"b{k}") + "Content-Length: 0\r\n\r\n").encode(), PBX)
def receive():
    while True:
        msg = sip.recv(65535).decode(errors="replace")
        c = calls.get(header(msg, "Call-ID") or "")
        if c is None: continue
        if msg.startswith("SIP/2.0"):
            code, method = int(msg.split()[1]), (header(msg, "CSeq") or " ").split()[-1]
            if method == "INVITE" and code == 200:
                to = header(msg, "To"); c["to_tag"] = to[to.index(">") + 1:] if ">" in to else ""
                if not c["answered"]:
                    c["routes"] = list(reversed(headers(msg, "Record-Route")))
                    c["target"] = header(msg, "Contact").split("<", 1)[1].split(">", 1)[0]
                    body = msg.split("\r\n\r\n", 1)[1]
                    ip = [l[9:] for l in body.split("\r\n") if l.startswith("c=IN IP4 ")][0]
                    port = int([l for l in body.split("\r\n") if l.startswith("m=audio ")][0].split()[1])
                    c["media"] = (ip, port); c["answered"] = True
                    emit(ev="answered", k=c["k"], at=time.time())
                ack(c, f"a{c['k']}")
            elif method == "INVITE" and code >= 300:
                to = header(msg, "To"); c["to_tag"] = to[to.index(">") + 1:] if ">" in to else ""
                ack(c, f"i{c['k']}"); c["done"] = True; emit(ev="failed", k=c["k"], code=code)
            elif method == "BYE":
                c["done"] = True; emit(ev="ended", k=c["k"], code=code, packets=c["packets"])
        elif msg.startswith("BYE "):
            vias = "".join(f"Via: {v}\r\n" for v in headers(msg, "Via"))
            sip.sendto((f"SIP/2.0 200 OK\r\n{vias}From: {header(msg, 'From')}\r\nTo: {header(msg, 'To')}\r\n"
                        f"Call-ID: {c['call_id']}\r\nCSeq: {header(msg, 'CSeq')}\r\nContent-Length: 0\r\n\r\n").encode(),
                       ("127.0.0.1", 5080))
            c["done"] = True; emit(ev="ended_by_pbx", k=c["k"], packets=c["packets"])
threading.Thread(target=receive, daemon=True).start()
emit(ev="ready")
for line in sys.stdin:
    cmd, *arg = line.split()
    if cmd == "call": call(int(arg[0]))
    elif cmd == "bye": bye(int(arg[0]))
    elif cmd == "packets": emit(ev="packets", counts={str(x["k"]): x["packets"] for x in calls.values()})
    elif cmd == "quit": break
"""

# Stamps the card's arrival in the DOM and the Answer click, on the page's clock.
JS_WATCH = """() => {
  if (window.__bench) return;
  window.__bench = { cards: {}, answers: [] };
  const check = () => {
    for (const el of document.querySelectorAll('[data-testid="softphone-incoming-number"]')) {
      const number = el.textContent.trim();
      if (!(number in window.__bench.cards)) window.__bench.cards[number] = Date.now();
    }
  };
  new MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true });
  document.addEventListener("click", (e) => {
    if (e.target.closest('[data-testid="softphone-answer"]')) window.__bench.answers.push(Date.now());
  }, true);
}"""

JS_BYTES = """async () => {
  let bytes = 0;
  for (const c of window.__watheeqSoftphone.calls()) {
    if (!c.pc) continue;
    (await c.pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") bytes += s.bytesReceived || 0; });
  }
  return bytes;
}"""


class Outside:
    """The outside phone process inside the namespace, and its events."""

    def __init__(self, stack: e2e.Stack) -> None:
        self.proc = subprocess.Popen(stack.netns.cmd([sys.executable, "-c", OUTSIDE, DID]), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.events: list[dict] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait("ready", None, 10)

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.changed:
                self.events.append(json.loads(line))
                self.changed.notify_all()

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def find(self, ev: str, k: int | None) -> dict | None:
        return next((e for e in self.events if e["ev"] == ev and e.get("k") == k), None)

    def wait(self, ev: str, k: int | None, timeout: float) -> dict:
        with self.changed:
            if not self.changed.wait_for(lambda: self.find(ev, k) or self.find("failed", k), timeout):
                raise TimeoutError(f"outside phone: no {ev} for call {k}")
            failed = self.find("failed", k)
            if failed and ev != "failed":
                raise RuntimeError(f"outside call {k} failed: SIP {failed['code']}")
            return self.find(ev, k)

    def packets(self) -> dict[int, int]:
        before = len(self.events)
        self.send("packets")
        with self.changed:
            self.changed.wait_for(lambda: any(e["ev"] == "packets" for e in self.events[before:]), 5)
        got = [e for e in self.events[before:] if e["ev"] == "packets"][-1]
        return {int(k): v for k, v in got["counts"].items()}

    def close(self) -> None:
        try:
            self.send("quit")
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def seed_bench_agents(count: int):
    """Adds ``count`` agents with their own extensions to the demo firm, through the services."""

    def prepare(db_url: str) -> None:
        from sqlmodel import Session

        from services import accounts, db
        from services.call_center import extensions
        from services.models import ExtensionAssign, Role
        from services.seed import DEMO_PASSWORD

        engine = db.create_db_engine(db_url)
        with Session(engine) as session:
            owner = accounts.authenticate(session=session, email=OWNER, password=DEMO_PASSWORD)
            for i in range(1, count + 1):
                user = accounts.create_user(session=session, tenant_id=owner.tenant_id, email=BENCH_AGENT.format(i),
                                            password=DEMO_PASSWORD, role=Role.AGENT, full_name=f"Bench Agent {i}")
                extensions.assign_extension(session=session, tenant_id=owner.tenant_id, actor=owner, data=ExtensionAssign(
                    user_id=user.id, extension=str(BENCH_EXTENSION + i), password=f"bench-sip-{os.urandom(8).hex()}"))
            session.commit()
        engine.dispose()

    return prepare


def _sign_in(browser, email: str, extension: str):
    """A new context signed in as this agent; one retry, as a loaded machine can miss the 20 s."""
    for attempt in (1, 2):
        ctx = browser.new_context(viewport=e2e.VIEWPORT)
        try:
            return ctx, e2e.sign_in(ctx, email, extension)
        except Exception as exc:  # noqa: BLE001
            if ctx.pages:
                e2e.screenshot(ctx.pages[0], f"bench-sign-in-{extension}-{attempt}")
                print(f"sign-in of {email} failed ({type(exc).__name__}) on {ctx.pages[0].url}: "
                      f"{ctx.pages[0].inner_text('body')[:300]!r}", flush=True)
            ctx.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _ms(values: list[float]) -> dict:
    ms = sorted(v * 1000 for v in values)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 1), "min_ms": round(ms[0], 1),
            "max_ms": round(ms[-1], 1)}


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _number(k: int) -> str:
    return f"0551000{k:03d}"  # the outside phone's From for call k (OUTSIDE)


def _answer(phone: e2e.Phone, outside: Outside, k: int, timeout: float = 15) -> tuple[float, float]:
    """Places outside call k, answers it on ``phone``; (INVITE -> card, click -> first RTP) in seconds."""
    outside.send(f"call {k}")
    invite = outside.wait("invite", k, 5)["at"]
    card = phone.page.get_by_test_id("softphone-incoming").filter(has_text=_number(k))
    card.wait_for(timeout=timeout * 1000)
    shown = e2e.wait_until(lambda: phone.page.evaluate(f"() => window.__bench.cards['{_number(k)}']"),
                           5, "the card's stamp") / 1000
    card.get_by_test_id("softphone-answer").click()
    first_rtp = outside.wait("rtp", k, timeout)["at"]
    clicked = phone.page.evaluate("() => window.__bench.answers")[-1] / 1000
    return shown - invite, first_rtp - clicked


def latency(browser, stack: e2e.Stack, outside: Outside, calls: int, ring_group: int) -> dict:
    signed = [_sign_in(browser, *who) for who in (A, B)[:ring_group]]
    contexts = [ctx for ctx, _ in signed]
    a, b = signed[0][1], (signed[1][1] if ring_group > 1 else None)
    for _, phone in signed:
        phone.page.evaluate(JS_WATCH)
    to_card, to_media, stale = [], [], []
    for k in range(calls):
        card, media = _answer(a, outside, k)
        to_card.append(card)
        to_media.append(media)
        try:
            if b is not None:
                b.page.get_by_test_id("softphone-incoming").filter(has_text=_number(k)).wait_for(state="hidden", timeout=5_000)
        except Exception:  # noqa: BLE001 - a result: the colleague kept ringing
            stale.append(k)
            if len(stale) == 1:
                print("B still ringing after A answered; B's timeline:",
                      [m for m in e2e.timeline(b.page)][-8:], flush=True)
                print("\n".join(line for line in stack.pbx.log().splitlines()[-400:]
                                if "CANCEL" in line or "bench-" in line)[-3000:], flush=True)
        time.sleep(1)
        outside.send(f"bye {k}")
        outside.wait("ended", k, 10)
        a.page.get_by_test_id("softphone-wrapup").wait_for(timeout=10_000)
        time.sleep(1)
    for ctx in contexts:
        for page in ctx.pages:
            page.goto("about:blank")
        ctx.close()
    return {"invite_to_card": _ms(to_card), "answer_click_to_first_rtp": _ms(to_media), "load": _load(),
            "colleague_still_ringing_after_answer": stale}


def concurrent(browsers, stack: e2e.Stack, outside: Outside, n: int, hold: int, first_k: int) -> dict:
    """N outside calls up at once, each answered by its own agent; what failed, if anything."""
    started = time.monotonic()
    agents, contexts = [], []
    for i in range(1, n + 1):
        ctx, agent = _sign_in(browsers[i % len(browsers)], BENCH_AGENT.format(i), str(BENCH_EXTENSION + i))
        contexts.append(ctx)
        agents.append(agent)
        agents[-1].page.evaluate(JS_WATCH)
    signed_in = time.monotonic() - started
    e2e.wait_until(lambda: all(stack.pbx.contacts(a.extension) == 1 for a in agents), 20, "one binding per agent")
    to_card, to_media, failures = [], [], []
    answered = []
    for i, agent in enumerate(agents):
        k = first_k + i
        try:
            card, media = _answer(agent, outside, k, timeout=20)
            to_card.append(card)
            to_media.append(media)
            answered.append((k, agent))
        except Exception as exc:  # noqa: BLE001 - a failed call is a result here
            failures.append(f"call {k} to {agent.extension}: {type(exc).__name__}: {str(exc)[:200]}")
            break  # the next agent may be ringing with this call: stop at the first failure
    up = time.monotonic()
    load_during = None
    if answered:
        rtp0 = outside.packets()
        bytes0 = {k: agent.page.evaluate(JS_BYTES) for k, agent in answered}
        time.sleep(hold)
        load_during = _load()
        rtp1 = outside.packets()
        for k, agent in answered:
            got = rtp1.get(k, 0) - rtp0.get(k, 0)
            if got < (hold - 1) * 50 * 0.9:
                failures.append(f"call {k}: the caller received {got} RTP packets in {hold} s")
            grew = agent.page.evaluate(JS_BYTES) - bytes0[k]
            if grew < (hold - 1) * 50 * 0.9 * 80:  # 80 bytes a packet at the least (Opus silence)
                failures.append(f"call {k}: {agent.extension}'s browser received {grew} audio bytes in {hold} s")
    for k, agent in answered:
        outside.send(f"bye {k}")
    for k, agent in answered:
        try:
            outside.wait("ended", k, 15)
            agent.page.get_by_test_id("softphone-wrapup").wait_for(timeout=15_000)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"call {k}: not ended on both sides: {type(exc).__name__}: {str(exc)[:200]}")
    for ctx in contexts:
        for page in ctx.pages:
            page.goto("about:blank")
        ctx.close()
    return {"calls": n, "answered": len(answered), "all_up_for_s": round(time.monotonic() - up, 1),
            "failures": failures, "sign_in_s": round(signed_in, 1),
            "invite_to_card": _ms(to_card) if to_card else None,
            "answer_click_to_first_rtp": _ms(to_media) if to_media else None, "load": load_during}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--concurrent", type=int, nargs="*", default=[20, 15, 10])
    parser.add_argument("--hold", type=int, default=10)
    parser.add_argument("--browsers", type=int, default=1, choices=(1, 2))
    parser.add_argument("--ring-group", type=int, default=2, choices=(1, 2),
                        help="agents signed in for the latency calls (1: only A rings)")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (logs of the app and the PBX)")
    args = parser.parse_args()
    reason = e2e.skip_reason()
    if reason:
        print(f"benchmark cannot run: {reason}")
        return 1
    results: dict = {"cpu": os.cpu_count(), "load_at_start": _load()}
    most = max(args.concurrent, default=0)
    with (contextlib.nullcontext(str(args.keep)) if args.keep
          else tempfile.TemporaryDirectory(prefix="watheeq-bench-lab-browser-")) as tmp:
        started = time.monotonic()
        stack = e2e.start_stack(Path(tmp), prepare=seed_bench_agents(most) if most else None)
        print(f"stack up in {time.monotonic() - started:.1f} s (load {_load()})", flush=True)
        outside = Outside(stack)
        try:
            from contextlib import ExitStack

            with ExitStack() as browsers_open:
                browsers = [browsers_open.enter_context(e2e.chromium(stack)) for _ in range(args.browsers)]
                results["latency"] = latency(browsers[0], stack, outside, args.calls, args.ring_group)
                print("latency:", results["latency"], flush=True)
                results["concurrent"] = []
                k = 1000
                for n in args.concurrent:
                    figures = concurrent(browsers, stack, outside, n, args.hold, k)
                    k += n
                    results["concurrent"].append(figures)
                    print("concurrent:", figures, flush=True)
                    if not figures["failures"]:
                        break  # the largest size that works
        finally:
            outside.close()
            stack.close()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pbx_lab_browser.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
