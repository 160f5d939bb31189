"""A minimal SIP user agent over UDP, for tests against the dev Kamailio.

Enough SIP to register with digest auth, place an INVITE (and end it) and notice an
INVITE delivered to us; sipp cannot change To and From independently of the digest user,
which the identity tests need. Run inside the test's loopback-only network namespace:

    python tests/softphone/sip_udp.py SCENARIO.json   ->  JSON results on stdout

A scenario is a list of steps; each one opens its own UDP port (its "phone"):
``{"op": "register", "port": 5081, "user": "1001", "domain": "a.pbx.localhost",
"password": "...", "to_user": "1002", "expires": 60}`` -> final status code (``expires`` 0
removes the binding: the phone unregisters);
``{"op": "invite", ..., "target": "sip:1001@a.pbx.localhost"}`` -> final status code;
``{"op": "received", "port": 5082, "wait": 1.5}`` -> the request lines that port got since
the last "received" (an INVITE is turned away with 486).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import socket
import sys
import time

PBX = ("127.0.0.1", 5060)
# Every phone of the scenario: while one waits for its answer, the others must still
# pick up (and turn away) what the PBX delivers to them.
PHONES: list[Phone] = []


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SIP digest


def _header(message: str, name: str) -> str | None:
    match = re.search(rf"^{name}:\s*(.*?)\r$", message, re.M | re.I)
    return match.group(1) if match else None


def _digest(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    fields = f'username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
    if "qop" in params:
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return f'Digest {fields}, response="{response}", qop=auth, nc={nc}, cnonce="{cnonce}"'
    return f'Digest {fields}, response="{_md5(f"{ha1}:{nonce}:{ha2}")}"'


class Phone:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.05)
        self.requests: list[str] = []
        PHONES.append(self)

    def _send(self, head: str, body: str = "") -> None:
        self.sock.sendto((head.replace("\n", "\r\n") + body).encode(), PBX)

    def _response(self, call_id: str, cseq: int, timeout: float = 4.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for other in PHONES:
                if other is not self:
                    other.drain(0)
            try:
                data = self.sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                continue
            if data.startswith("SIP/2.0 "):
                if _header(data, "Call-ID") == call_id and (_header(data, "CSeq") or "").startswith(f"{cseq} ") \
                        and int(data.split()[1]) >= 200:
                    return data
            else:
                self.requests.append(data.split("\r\n", 1)[0])
        raise TimeoutError(f"no final response to CSeq {cseq}")

    def _request(self, method: str, ruri: str, from_user: str, to_uri: str, domain: str, extra: str,
                 user: str, password: str, call_id: str, body: str = "") -> str:
        tag = secrets.token_hex(4)
        for cseq in (1, 2):
            branch = "z9hG4bK" + secrets.token_hex(8)
            ctype = "Content-Type: application/sdp\n" if body else ""
            self._send(
                f"{method} {ruri} SIP/2.0\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};rport;branch={branch}\n"
                f"Max-Forwards: 70\nFrom: <sip:{from_user}@{domain}>;tag={tag}\nTo: <{to_uri}>\n"
                f"Call-ID: {call_id}\nCSeq: {cseq} {method}\n"
                f"Contact: <sip:{from_user}@127.0.0.1:{self.port}>\n{extra}{ctype}"
                f"Content-Length: {len(body)}\n\n", body
            )
            reply = self._response(call_id, cseq)
            code = int(reply.split()[1])
            if method == "INVITE":
                to = _header(reply, "To")
                self._send(
                    f"ACK {ruri} SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};rport;branch={branch}\n"
                    f"Max-Forwards: 70\nFrom: <sip:{from_user}@{domain}>;tag={tag}\nTo: {to}\n"
                    f"Call-ID: {call_id}\nCSeq: {cseq} ACK\nContent-Length: 0\n\n"
                )
            if code not in (401, 407) or cseq == 2:
                return reply
            name, hdr = ("WWW-Authenticate", "Authorization") if code == 401 else ("Proxy-Authenticate", "Proxy-Authorization")
            extra = extra + f"{hdr}: {_digest(_header(reply, name) or '', method, ruri, user, password)}\n"
        raise AssertionError("unreachable")

    def register(self, user: str, domain: str, password: str, to_user: str | None = None,
                 auth_user: str | None = None, expires: int = 60) -> int:
        to = f"sip:{to_user or user}@{domain}"
        reply = self._request("REGISTER", f"sip:{domain}", user, to, domain, f"Expires: {expires}\n", auth_user or user,
                              password, f"reg-{secrets.token_hex(6)}")
        return int(reply.split()[1])

    def invite(self, user: str, domain: str, password: str, target: str, auth_user: str | None = None) -> int:
        sdp = (f"v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
               f"m=audio {self.port + 1000} RTP/AVP 0\na=rtpmap:0 PCMU/8000\n")
        reply = self._request("INVITE", target, user, target, domain, "", auth_user or user, password,
                              f"inv-{secrets.token_hex(6)}", sdp.replace("\n", "\r\n"))
        return int(reply.split()[1])

    def drain(self, wait: float) -> list[str]:
        deadline = time.monotonic() + wait
        while True:
            try:
                data = self.sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                if time.monotonic() >= deadline:
                    break
                continue
            if not data.startswith("SIP/2.0 "):
                self.requests.append(data.split("\r\n", 1)[0])
                if data.startswith("INVITE "):
                    # Turn it away so the caller's transaction ends at once.
                    self._reply(data, "486 Busy Here")
        return self.requests

    def take(self, wait: float) -> list[str]:
        """The request lines this phone got since the last take."""
        self.drain(wait)
        got, self.requests = self.requests, []
        return got

    def _reply(self, request: str, status: str) -> None:
        lines = [f"SIP/2.0 {status}"]
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for value in re.findall(rf"^{name}:\s*(.*?)\r$", request, re.M | re.I):
                lines.append(f"{name}: {value}" + (";tag=busy" if name == "To" and "tag=" not in value else ""))
        self.sock.sendto(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode(), PBX)


def run(steps: list[dict]) -> list:
    phones: dict[int, Phone] = {}
    results: list = []
    for step in steps:
        phone = phones.get(step["port"]) or phones.setdefault(step["port"], Phone(step["port"]))
        op = step["op"]
        if op == "register":
            results.append(phone.register(step["user"], step["domain"], step["password"], step.get("to_user"),
                                          step.get("auth_user"), step.get("expires", 60)))
        elif op == "invite":
            results.append(phone.invite(step["user"], step["domain"], step["password"], step["target"],
                                        step.get("auth_user")))
        elif op == "received":
            results.append(phone.take(step.get("wait", 1.0)))
        else:
            results.append(None)
    return results


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        print(json.dumps(run(json.load(fh))))
