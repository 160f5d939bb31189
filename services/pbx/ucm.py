"""The Grandstream UCM6301 as a :class:`~services.pbx.records.CdrSource`: its HTTPS API
(``cdrapi`` for records, ``recapi`` for recording files) and its "CDR real-time output"
(records pushed over TCP as the UCM writes them). Records are read by
:mod:`services.pbx.ucm_format`; the UCM emulator (dev/pbx_lab/ucm_emulator.py) serves the
same endpoints for tests and the lab.

What Grandstream's published material says (UCM63xx "HTTPS API Settings (New)", the
UCM61xx/62xx CDR API guide, the CDR real-time output settings page; see
shared/research/softphone.md section 5):

- every call is ``POST https://<ucm>:<port>/api`` with ``{"request": {"action": ...}}``;
  ``challenge`` (user, version "1.0") returns ``response.challenge``; ``login`` with
  ``token = md5(challenge + password)`` returns ``response.cookie``, which later requests
  carry in their JSON body; ``status`` 0 is success, -6 a bad/expired cookie, -37 a wrong
  account or password, -71 an unknown user, -68/-70 login restricted/forbidden;
- ``cdrapi``: ``format=json``, ``numRecords`` at most 1000, ``offset``, ``startTime`` /
  ``endTime`` as ``YYYY-MM-DDTHH:MM:SS``; a bad, empty, unknown or duplicated parameter
  returns *no records* and no error;
- record fields: AcctId, accountcode, src, dst, dcontext, clid, channel, dstchannel,
  lastapp, lastdata, start, answer, end, duration, billsec, disposition, amaflags,
  uniqueid, userfield, channel_ext, dstchannel_ext, service, caller_name, recordfiles,
  src_trunk_name, dst_trunk_name;
- ``recapi`` with ``filedir`` ("monitor") and ``filename`` returns the file's bytes;
- real-time output: TCP (or HTTP) to a configured address and port, JSON or XML, up to
  10,000 records buffered while the receiver is down.

Assumptions the documentation does not settle (check them on the firm's UCM):

1. A cdrapi response is ``{"cdr_root": [...]}`` (also accepted under ``response`` or as
   ``cdr``); an entry is one record or a session ``{"main_cdr", "sub_cdr_1", ...}`` whose
   records are the legs of one call.
2. ``linked_id`` = the record's ``session`` field, else ``linkedid``, else the session's
   main record ``uniqueid``, else its own ``uniqueid``.
3. ``unique_id`` = ``uniqueid + "/" + dstchannel`` (``channel`` when no dstchannel): Asterisk
   writes one record per caller/callee channel pair with the *caller's* uniqueid, so
   uniqueid alone is not unique per leg. It is the same in cdrapi and the real-time push.
4. ``position`` = ``AcctId``, which only grows. cdrapi cannot filter on it: ``catch_up``
   pages the ``since`` window (everything when ``since`` is None) and drops records with
   AcctId <= the watermark. A pushed record without AcctId gets position 0 (it never moves a
   watermark; the next catch-up brings it with its AcctId).
5. Times are the UCM's local time without offset, in the firm's timezone (Tenant.timezone).
6. ``userfield`` Inbound/Outbound/Internal gives the direction (else the trunk names do);
   the agent's extension is ``dstchannel_ext`` (inbound, internal) or ``channel_ext``
   (outbound); the outside number is ``src`` (inbound) or ``dst`` (outbound); the DID is the
   session main record's ``dst`` for an inbound call.
7. Answer time "" or "0000-00-00 00:00:00" means unanswered; dispositions other than
   ANSWERED / NO ANSWER / BUSY / CANCEL(ED) / FAILED / CONGESTION read as FAILED.
8. ``action_type`` containing TRANSFER with ``action_owner`` = the extension that
   transferred the leg; records with ``lastapp`` ForkCDR are copies and are skipped.
9. ``recordfiles`` names one or more files separated by "@" (or ","); a name "dir/file"
   is fetched with that ``filedir``, a bare name with ``filedir`` "monitor". recapi answers
   an error as JSON (Content-Type application/json) and a file as anything else.
10. The real-time output over TCP sends JSON objects (one record, a session, or a
    ``cdr_root`` list), back to back or newline-separated, on connections the UCM opens;
    this side only accepts connections from the UCM's host (or loopback).
11. The cookie stays valid until the UCM answers -6; then one new login is tried.
12. The UCM's certificate is verified (TLS) except for a UCM on loopback (the emulator);
    ``WATHEEQ_UCM_CA_FILE`` names a CA/self-signed certificate to trust for a UCM with its own.

The API password is stored encrypted (purpose :data:`UCM_API_PASSWORD_PURPOSE`) and is
never logged, returned or put in an error message; neither are the token or cookie.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from services.key_rotation import UCM_API_PASSWORD_PURPOSE
from services.models import PbxSettings
from services.pbx.records import CdrRecord, CdrSourceError
from services.pbx.ucm_format import UcmFormatError, format_time, records_from_payload, sessions_of

PAGE_SIZE = 1000
DEFAULT_TIMEZONE = "Asia/Riyadh"
_FAR_PAST = "2000-01-01T00:00:00"
_CHUNK = 64 * 1024
_AUTH_MESSAGES = {
    -37: "The UCM refused the API user name or password (wrong account or password).",
    -71: "The UCM has no API user by this name.",
    -68: "The UCM restricts API logins from this address (add it to the permitted IPs).",
    -70: "The UCM forbids API logins for this user (login forbidden).",
    -47: "The UCM's API user has no permission for call records.",
}


def _status(body: dict[str, Any]) -> int:
    try:
        return int(body.get("status", 0))
    except (TypeError, ValueError):
        return -1


class UcmCdrSource:
    """One firm's UCM: ``api_url`` like ``https://ucm.example:8089`` (``/api`` is added)."""

    kind = "ucm"

    def __init__(self, *, api_url: str, user: str, password: str, timezone: str = DEFAULT_TIMEZONE,
                 realtime_port: int | None = None, realtime_bind: str = "127.0.0.1",
                 verify: bool | str = True, timeout: float = 20.0, page_size: int = PAGE_SIZE) -> None:
        url = api_url.strip().rstrip("/")
        if not url.startswith("https://"):
            raise CdrSourceError("not_configured", "The UCM API URL starts with https://.")
        self.endpoint = url if url.endswith("/api") else url + "/api"
        self.host = urlsplit(self.endpoint).hostname or ""
        self.user = user
        self._password = password
        self.tz = ZoneInfo(timezone or DEFAULT_TIMEZONE)
        self.realtime_port = realtime_port
        self.realtime_bind = realtime_bind
        self.page_size = max(1, min(PAGE_SIZE, page_size))
        if isinstance(verify, str):  # a CA file / the UCM's own self-signed certificate
            verify = ssl.create_default_context(cafile=verify)
        self._client = httpx.Client(verify=verify, timeout=timeout)
        self._cookie: str | None = None

    def __repr__(self) -> str:  # never the password or cookie
        return f"UcmCdrSource({self.endpoint!r}, user={self.user!r})"

    @classmethod
    def from_settings(cls, settings: PbxSettings, *, timezone: str | None = None) -> UcmCdrSource:
        from services import security

        if not settings.api_url or not settings.api_user or not settings.api_password_encrypted:
            raise CdrSourceError("not_configured", "Set the UCM's API URL, API user and API password in the PBX "
                                                   "settings.")
        password = security.decrypt_secret(settings.api_password_encrypted, purpose=UCM_API_PASSWORD_PURPOSE)
        host = urlsplit(settings.api_url.strip()).hostname or ""
        verify: bool | str = os.environ.get("WATHEEQ_UCM_CA_FILE") or True
        if _is_loopback(host):
            verify = False  # the UCM emulator on this machine, with its self-signed certificate
        return cls(api_url=settings.api_url, user=settings.api_user, password=password,
                   timezone=timezone or DEFAULT_TIMEZONE, realtime_port=settings.realtime_port, verify=verify)

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ the API

    def _post(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post(self.endpoint, json={"request": request})
        except httpx.ConnectError as exc:
            tls = "certificate" in str(exc).lower() or "ssl" in str(exc).lower()
            raise CdrSourceError("unreachable", "The UCM's HTTPS certificate is not trusted (set "
                                 "WATHEEQ_UCM_CA_FILE to its certificate)." if tls else
                                 f"The UCM at {self.endpoint} cannot be reached (connection refused or no "
                                 "route).") from None
        except httpx.TimeoutException:
            raise CdrSourceError("unreachable", f"The UCM at {self.endpoint} did not answer in time.") from None
        except httpx.HTTPError as exc:
            raise CdrSourceError("unreachable", f"The UCM's API could not be reached ({type(exc).__name__}).") \
                from None
        if response.status_code != 200:
            raise CdrSourceError("bad_response", f"The UCM's API answered HTTP {response.status_code}.")
        try:
            body = response.json()
        except ValueError:
            raise CdrSourceError("bad_response", "The UCM's API did not answer JSON.") from None
        if not isinstance(body, dict):
            raise CdrSourceError("bad_response", "The UCM's API answered JSON that is not an object.")
        return body

    def login(self) -> None:
        """Challenge, then login with md5(challenge + password); keeps the cookie."""
        body = self._post({"action": "challenge", "user": self.user, "version": "1.0"})
        challenge = (body.get("response") or {}).get("challenge") if isinstance(body.get("response"), dict) else None
        if _status(body) != 0 or not challenge:
            raise self._auth_error(_status(body), "challenge")
        token = hashlib.md5((str(challenge) + self._password).encode("utf-8")).hexdigest()
        body = self._post({"action": "login", "token": token, "user": self.user})
        cookie = (body.get("response") or {}).get("cookie") if isinstance(body.get("response"), dict) else None
        if _status(body) != 0 or not cookie:
            raise self._auth_error(_status(body), "login")
        self._cookie = str(cookie)

    @staticmethod
    def _auth_error(status: int, step: str) -> CdrSourceError:
        message = _AUTH_MESSAGES.get(status)
        if message is None:
            return CdrSourceError("auth_failed", f"The UCM refused the API {step} (status {status}).")
        return CdrSourceError("auth_failed", message)

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        """An authenticated action; one new login when the UCM says the cookie expired (-6)."""
        for attempt in (1, 2):
            if self._cookie is None:
                self.login()
            body = self._post({**request, "cookie": self._cookie})
            status = _status(body)
            if status in (-6, -5) and attempt == 1:
                self._cookie = None
                continue
            if status in (-6, -5):
                raise CdrSourceError("auth_failed", "The UCM keeps refusing the API session after a new login.")
            if status != 0:
                raise CdrSourceError("bad_response", f"The UCM refused the {request.get('action')} request "
                                                     f"(status {status}).")
            return body
        raise AssertionError("unreachable")

    def _page(self, offset: int, count: int, start_time: str | None) -> tuple[list[CdrRecord], int]:
        """The legs of one cdrapi page, and how many raw records (session entries and their
        sub-records, ForkCDR copies included) it held: at least ``count`` means "maybe more"
        whether the UCM counts numRecords in sessions or in records."""
        request: dict[str, Any] = {"action": "cdrapi", "format": "json", "numRecords": count, "offset": offset}
        if start_time:
            request["startTime"] = start_time
        body = self._call(request)
        try:
            raw = sum(len(session) for session in sessions_of(body))
            return list(records_from_payload(body, tz=self.tz)), raw
        except UcmFormatError as exc:
            raise CdrSourceError("bad_response", f"The UCM's call records could not be read: {exc}.") from None

    def _check_empty(self, start_time: str | None) -> None:
        """An empty first page: a quiet window, or a parameter the UCM ignored silently? The
        same query over a window that holds every record tells (it must not be empty when
        the UCM has any record at all)."""
        if start_time is None:
            return  # no filter: the UCM really has no records
        if self._page(0, 1, _FAR_PAST)[1]:
            return  # the same parameters do return records: the window is just quiet
        if self._page(0, 1, None)[1]:
            raise CdrSourceError("empty_page", "The UCM returned no records for a query it should answer "
                                               "(it ignores a parameter it does not accept and returns an empty "
                                               "result); check the UCM firmware's cdrapi parameters.")

    def catch_up(self, after_position: int, *, since: datetime | None = None) -> Iterator[CdrRecord]:
        start_time = format_time(since, self.tz).replace(" ", "T") if since is not None else None
        found: dict[str, CdrRecord] = {}
        offset = 0
        while True:
            page, raw = self._page(offset, self.page_size, start_time)
            if offset == 0 and not raw:
                self._check_empty(start_time)
            for record in page:
                if record.position > after_position and (since is None or record.started_at >= since):
                    found.setdefault(record.unique_id, record)
            if raw < self.page_size:
                break
            offset += self.page_size
        yield from sorted(found.values(), key=lambda r: r.position)

    def test_connection(self) -> str:
        """Login and one cdrapi page: a sentence for the PBX settings page."""
        self.login()
        page, _raw = self._page(0, 1, None)
        if not page:
            return f"Connected to the UCM as {self.user}; it has no call records yet."
        return f"Connected to the UCM as {self.user}; its call records can be read."

    # ------------------------------------------------------------------ recordings

    def open_recording(self, name: str) -> Iterator[bytes]:
        if not name or ".." in name or name.startswith("/"):
            raise CdrSourceError("not_found", "No such recording on the UCM.")
        filedir, _, filename = name.rpartition("/")
        request = {"action": "recapi", "filedir": filedir or "monitor", "filename": filename}
        for attempt in (1, 2):
            if self._cookie is None:
                self.login()
            stream = self._client.stream("POST", self.endpoint,
                                         json={"request": {**request, "cookie": self._cookie}})
            try:
                response = stream.__enter__()
            except httpx.HTTPError:
                raise CdrSourceError("unreachable", f"The UCM at {self.endpoint} cannot be reached.") from None
            if response.status_code == 200 and "json" not in response.headers.get("content-type", ""):
                return self._chunks(stream, response)
            try:
                body = json.loads(response.read() or b"{}") if response.status_code == 200 else {}
            except ValueError:
                body = {}
            finally:
                stream.__exit__(None, None, None)
            if _status(body) in (-6, -5) and attempt == 1:
                self._cookie = None
                continue
            raise CdrSourceError("not_found", f"The UCM has no recording {filename}.")
        raise CdrSourceError("auth_failed", "The UCM keeps refusing the API session after a new login.")

    @staticmethod
    def _chunks(stream, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(_CHUNK)
        finally:
            stream.__exit__(None, None, None)

    # ------------------------------------------------------------------ real-time output

    async def live(self) -> AsyncIterator[CdrRecord]:
        if not self.realtime_port:
            raise CdrSourceError("not_configured", "Set the port this side listens on for the UCM's CDR real-time "
                                                   "output.")
        queue: asyncio.Queue[CdrRecord | CdrSourceError] = asyncio.Queue()
        allowed = _addresses(self.host)

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = (writer.get_extra_info("peername") or ("",))[0]
            if peer not in allowed and not _is_loopback(peer):
                writer.close()
                return
            decoder, buffer = json.JSONDecoder(), ""
            try:
                while chunk := await reader.read(_CHUNK):
                    buffer += chunk.decode("utf-8", errors="replace")
                    while True:
                        buffer = buffer.lstrip()
                        if not buffer:
                            break
                        try:
                            payload, end = decoder.raw_decode(buffer)
                        except ValueError:
                            break  # incomplete: wait for more
                        buffer = buffer[end:]
                        try:
                            for record in records_from_payload(payload, tz=self.tz):
                                queue.put_nowait(record)
                        except UcmFormatError as exc:
                            queue.put_nowait(CdrSourceError("bad_response", f"A pushed record could not be read: "
                                                                            f"{exc}."))
            finally:
                writer.close()

        try:
            server = await asyncio.start_server(on_connection, self.realtime_bind, self.realtime_port)
        except OSError as exc:
            raise CdrSourceError("unreachable", f"Cannot listen on {self.realtime_bind}:{self.realtime_port} for the "
                                                f"UCM's real-time output ({exc.strerror}).") from None
        try:
            while True:
                item = await queue.get()
                if isinstance(item, CdrSourceError):
                    raise item
                yield item
        finally:
            server.close()
            await server.wait_closed()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _addresses(host: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


__all__ = ["UCM_API_PASSWORD_PURPOSE", "UcmCdrSource"]
