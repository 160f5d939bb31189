"""The softphone's server side: the agent's own SIP config, call logging, client matches.

The browser component reports JsSIP events here; each one becomes a call-log change
through :mod:`services.call_center.softphone`. Only the signed-in user's own extension
config is ever loaded, and it is dropped when the phone unmounts (sign-out).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import reflex as rx
from reflex.config import get_config

from services import accounts, call_center, clients, db, phones, presence
from services.call_center.softphone import SoftphoneCallEvent, apply_softphone_event, leg_key
from services.errors import Conflict, DomainError, NotFound
from services.models import AgentStatus, AwayReason, CallDirection, CallFilters, Principal
from services.presence import PhoneEvent
from watheeq_ui.i18n import tr
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page
from watheeq_ui.state.lang import LangState

log = logging.getLogger(__name__)

# A browser clock further off than this is not trusted for call times.
_MAX_CLOCK_SKEW = timedelta(minutes=10)
_RECENT = 5
# A call reported answered but never ended (a crashed tab) stops counting after this.
_LONGEST_CALL_S = 4 * 3600


def _browser_time(value: Any, now: datetime) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromtimestamp(float(value) / 1000, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return at if abs(at - now) <= _MAX_CLOCK_SKEW else None


# The phone's ring notices (sent at once, while the call itself is reported only when it is
# answered or ends): the agent is Ringing, or no longer (a colleague took the call).
_RING_EVENTS = {"ringing": PhoneEvent.RINGING, "ring_ended": PhoneEvent.HUNG_UP}
# What each softphone call event means for the agent's presence.
_PHONE_EVENTS = {"new": PhoneEvent.RINGING, "accepted": PhoneEvent.ANSWERED, "ended": PhoneEvent.HUNG_UP, "failed": PhoneEvent.HUNG_UP}


def _direction(value: Any) -> CallDirection:
    return CallDirection.INBOUND if value == "incoming" else CallDirection.OUTBOUND


class SoftphoneState(rx.State):
    # This agent's SIP identity while signed in; never a secret (see load_config).
    config: dict[str, Any] = {}
    command: dict[str, Any] = {}
    match: dict[str, Any] = {}
    recent: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    # The agent's presence as the server keeps it (services.presence), and the phone's
    # registration in this tab (only the tab holding the phone registers and beats).
    presence: str = ""
    away_reason: str = ""

    _extension: str = ""
    _registered: bool = False
    # Calls this tab is talking on (SIP Call-ID -> when answered, monotonic seconds): talking
    # is activity, so a long call never ends in an idle sign-out that would drop it.
    _talking: dict[str, float] = {}


    async def _lang(self) -> str:
        return (await self.get_state(LangState)).lang

    @rx.event
    async def load_config(self):
        """on_mount of the phone: the signed-in agent's extension, or nothing."""
        principal = await principal_for_page(self, activity=False)
        if principal is None:
            self.clear_config()
            return
        try:
            cfg = await offloop.call(call_center.get_extension_for_user, principal, user_id=principal.user_id)
        except NotFound:
            # The phone says so (and what to do) instead of silently not being there.
            self.clear_config()
            self.config = {"problem": "no_extension"}
            return
        except Conflict:
            self.clear_config()
            self.config = {"problem": "no_pbx"}
            return
        wanted = {
            "wss_url": cfg.wss_url,
            "sip_uri": cfg.sip_uri,
            "sip_domain": cfg.sip_domain,
            "authorization_user": cfg.authorization_user,
            "display_name": cfg.display_name,
            "extension": cfg.extension,
            "dtmf_transport": "RFC2833",
            # No password and no ICE servers (TURN credentials) here: Reflex keeps state on
            # disk or in Redis. The phone fetches them from this user's own API route.
            "credentials_url": f"{get_config().api_url}/api/v1/call-center/extension",
        }
        self._extension = cfg.extension
        [mine] = (await offloop.call(presence.list_states, principal))[:1] or [None]
        if mine is not None and mine.user_id == principal.user_id:
            self.presence = mine.status.value
            self.away_reason = mine.reason.value if mine.reason else ""
        if wanted != self.config:  # an unchanged config must not restart the user agent
            self.config = wanted
        await self._load_recent(principal)

    @rx.event
    def clear_config(self):
        self.config = {}
        self.match = {}
        self.recent = []
        self.cases = []
        self._extension = ""
        self._talking = {}
        self._registered = False
        self.presence = ""
        self.away_reason = ""

    async def _own_extension(self, principal: Principal) -> str:
        """The agent's extension. The phone registers without waiting for the page's events
        (it has its identity from the API), so its first report may come before load_config."""
        if not self._extension:
            try:
                cfg = await offloop.call(call_center.get_extension_for_user, principal, user_id=principal.user_id)
            except (NotFound, Conflict):
                return ""
            self._extension = cfg.extension
        return self._extension

    async def _report(self, principal: Principal, event: PhoneEvent, *, other_party: str = "", call_ref: str = "") -> None:
        """Tells services.presence what the phone did; the agent's state comes back."""
        status = await offloop.call(presence.report_phone, principal, event=event, other_party=other_party, call_ref=call_ref)
        if status != AgentStatus.AWAY:
            self.away_reason = ""
        self.presence = status.value

    @rx.event
    async def heartbeat(self, _value: str = ""):
        """Every 10 s from the tab: the tab holding the registered phone is alive."""
        principal = await principal_for_page(self, activity=False)
        if principal is None or not self._registered:
            return
        status = await offloop.call(presence.heartbeat, principal, registered=True)
        self.presence = status.value

    @rx.event
    async def set_presence(self, value: str):
        """The agent's Available/Away control: "AVAILABLE" or "AWAY:<reason>"."""
        principal = await principal_for_page(self)
        if principal is None:
            return None
        status, _, reason = str(value).partition(":")
        if status not in ("AVAILABLE", "AWAY") or (status == "AWAY" and reason not in AwayReason.__members__):
            return None
        try:
            state = await offloop.call(presence.set_own_state, principal, status=AgentStatus(status), reason=AwayReason(reason) if reason else None)
        except DomainError as exc:
            return rx.toast.error(exc.message)
        self.presence = state.status.value
        self.away_reason = state.reason.value if state.reason else ""
        return None

    async def _load_recent(self, principal: Principal) -> None:
        page = await offloop.call(
            call_center.get_call_history, principal, filters=CallFilters(agent_user_id=principal.user_id), page_size=_RECENT
        )
        self.recent = [
            {
                "id": c.id,
                "direction": c.direction.value,
                "status": c.status.value,
                "remote_number": c.remote_number,
                "client_name": c.client_name or "",
            }
            for c in page.data
        ]

    @rx.event
    async def on_registration(self, payload: dict[str, Any]):
        """The first registration of a page closes the calls its previous page left open."""
        # The phone's own doing, not the user's: it does not keep the session alive.
        principal = await principal_for_page(self, activity=False)
        if principal is None or not await self._own_extension(principal):
            return
        registered = payload.get("state") == "registered"
        if registered or payload.get("state") == "failed":
            self._registered = registered
            await self._report(principal, PhoneEvent.REGISTERED if registered else PhoneEvent.UNREGISTERED)
        if not registered or not payload.get("first"):
            return
        closed = await offloop.call(
            call_center.close_open_calls_for_agent, principal, user_id=principal.user_id, before=datetime.now(timezone.utc)
        )
        if closed:
            await self._load_recent(principal)

    @rx.event
    async def on_call_event(self, payload: dict[str, Any]):
        # Placing, answering and talking are the user's activity; a call ringing at an
        # unattended tab is not, or incoming calls would keep it signed in forever.
        by_user = payload.get("direction") != "incoming" or payload.get("kind") == "accepted" or bool(payload.get("answered_at"))
        principal = await principal_for_page(self, activity=by_user)
        if principal is None or not await self._own_extension(principal):
            return
        ring = _RING_EVENTS.get(str(payload.get("kind")))
        if ring is not None:
            # An incoming call ringing (or answered by a colleague): presence only, no call row.
            remote = str(payload.get("remote") or "")[:64]
            await self._report(principal, ring, other_party=remote, call_ref=str(payload.get("call_id") or "")[:255])
            return
        now = datetime.now(timezone.utc)
        at = _browser_time(payload.get("at"), now)
        started = _browser_time(payload.get("started_at"), now)
        answered = _browser_time(payload.get("answered_at"), now)
        if at is None:
            # One clock for all times of a call, or durations are meaningless.
            at, started, answered = now, None, None
        try:
            event = SoftphoneCallEvent(
                kind=payload.get("kind"),
                sip_call_id=str(payload.get("call_id") or ""),
                direction=_direction(payload.get("direction")),
                remote_number=str(payload.get("remote") or "")[:64] or "unknown",
                at=at,
                started_at=started,
                answered_at=answered,
                originator=payload.get("originator"),
                cause=payload.get("cause"),
                status_code=payload.get("status_code") if isinstance(payload.get("status_code"), int) else None,
            )
            cases = await offloop.run(_log_event, principal, self._extension, event)
        except (DomainError, ValueError) as exc:
            # A bad or stale event must not break the phone; the log is reconciled later.
            log.warning("softphone event not logged: %s", exc)
            return
        phone_event = _PHONE_EVENTS.get(event.kind.value)
        if event.kind.value == "new" and event.direction is not CallDirection.INBOUND:
            phone_event = None  # dialing out: the agent is on a call once it is answered
        if phone_event is not None:
            await self._report(principal, phone_event, other_party=event.remote_number, call_ref=event.sip_call_id)
        if cases is not None:
            self.cases = [{"id": c.id, "title": c.title} for c in cases]
        elif event.kind.value == "new":
            self.cases = []
        if event.kind.value == "accepted":
            self._talking = {**self._talking, event.sip_call_id: time.monotonic()}
        if event.kind.value in ("ended", "failed"):
            self._talking = {k: v for k, v in self._talking.items() if k != event.sip_call_id}
            await self._load_recent(principal)

    @rx.event
    async def keep_alive_while_talking(self):
        """With the layout's session check: a call in progress counts as the user's activity."""
        now = time.monotonic()
        self._talking = {k: v for k, v in self._talking.items() if now - v < _LONGEST_CALL_S}
        if self._talking:
            await principal_for_page(self, activity=True)

    @rx.event
    async def lookup(self, number: str):
        """The client whose phone is ``number`` (as typed or as the caller's), for the card."""
        principal = await principal_for_page(self)
        number = (number or "").strip()
        if principal is None or len(number) < 5:
            self.match = {}
            return
        client = await offloop.run(_match_number, principal, number)
        self.match = {"number": number, "client_id": client.id, "name": client.name} if client else {}

    @rx.event
    async def save_wrap_up(self, payload: dict[str, Any]):
        principal = await principal_for_page(self)
        if principal is None or not await self._own_extension(principal):
            return
        key = leg_key(
            sip_call_id=str(payload.get("call_id") or ""),
            direction=_direction(payload.get("direction")),
            extension=self._extension,
        )
        note = str(payload.get("note") or "").strip() or None
        case_id = payload.get("case_id") if isinstance(payload.get("case_id"), int) else None
        # Saving or skipping the wrap-up ends it: the agent is Available again.
        await self._report(principal, PhoneEvent.WRAP_UP_DONE)
        if note is None and case_id is None:
            return None
        try:
            found = await offloop.run(_wrap_up, principal, key, note, case_id)
        except DomainError as exc:
            return rx.toast.error(exc.message)
        if not found:
            return rx.toast.error(tr(await self._lang(), "sp_call_not_found"))
        return rx.toast.success(tr(await self._lang(), "sp_saved"))

    @rx.event
    def dial(self, number: str):
        """Click-to-call from any page: the phone dials ``number``."""
        seq = int(self.command.get("seq", 0)) + 1
        self.command = {"seq": seq, "op": "dial", "target": str(number or "")}


# ---------------------------------------------------------------------- service work (run off the loop)


def _log_event(principal: Principal, extension: str, event: SoftphoneCallEvent):
    """Log the phone's event; at the end of a call with a known client, that client's cases."""
    with db.session_scope() as session:
        call = apply_softphone_event(
            session=session, tenant_id=principal.tenant_id, actor=principal, extension=extension, event=event
        )
        if call.client_id and event.kind.value in ("ended", "failed"):
            return clients.list_cases(session=session, tenant_id=principal.tenant_id, client_id=call.client_id)
        return None


def _match_number(principal: Principal, number: str):
    with db.session_scope() as session:
        region = accounts.get_tenant(session=session, tenant_id=principal.tenant_id).region
        e164 = phones.try_normalise(number, region)
        return clients.match_number(session=session, tenant_id=principal.tenant_id, e164=e164)


def _wrap_up(principal: Principal, key: str, note: str | None, case_id: int | None) -> bool:
    """The agent's note and case on their own call; False when it is not theirs (or unknown)."""
    with db.session_scope() as session:
        call = call_center.find_call_by_sip_id(session=session, tenant_id=principal.tenant_id, sip_call_id=key)
        if call is None or call.agent_user_id != principal.user_id:
            return False
        call_center.add_notes(
            session=session, tenant_id=principal.tenant_id, actor=principal, call_id=call.id, note=note, case_id=case_id
        )
        return True
