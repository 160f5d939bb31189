"""The callback queue for agents: claim an item, call back with one click (the call is linked
to the item), write on WhatsApp, close with an outcome. Follows live changes of the queue."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from urllib.parse import quote

import reflex as rx
from pydantic import BaseModel

from services import callbacks, db
from services.errors import DomainError
from services.models import CallbackOutcome, CallbackPublic, Principal

from watheeq_ui import formatting, routes
from watheeq_ui.components.softphone import call_button
from watheeq_ui.components.ui import card, empty_state, icon_either, name_text, section_title
from watheeq_ui.i18n import t, t_fmt, tr
from watheeq_ui.layout import template
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tenant_timezone
from watheeq_ui.state.lang import LangState
from watheeq_ui.state.live_watch import BEAT_GRACE_SECONDS, BEAT_MS, LiveWaiter

# A check of the session at least this often while nothing changes (a revoked one stops the page).
CHECK_SECONDS = 15.0


class CallbackRow(BaseModel):
    id: int
    number: str
    client: str
    channel: str
    misses: int
    first_missed: str
    waited: str
    over_target: bool
    outside_hours: bool
    claimed_by: str
    mine: bool
    free: bool
    whatsapp_href: str


def callback_rows(items: list[CallbackPublic], viewer: Principal, tz: str, now: datetime) -> list[CallbackRow]:
    return [
        CallbackRow(
            id=i.id,
            number=i.number_e164 or i.number,
            client=i.client_name or "",
            channel=i.channel.value,
            misses=i.miss_count,
            first_missed=formatting.local_time(i.first_missed_at, tz, "%H:%M"),
            waited=formatting.duration((now - i.first_missed_at).total_seconds()),
            over_target=i.over_target,
            outside_hours=i.outside_hours,
            claimed_by=i.claimed_by_name or "",
            mine=i.claimed_by_user_id == viewer.user_id,
            free=i.claimed_by_user_id is None,
            whatsapp_href=f"{routes.WHATSAPP}?to={quote(i.number_e164 or i.number)}",
        )
        for i in items
    ]


def _fetch(principal: Principal) -> list[CallbackPublic]:
    with db.session_scope() as session:
        return callbacks.list_callbacks(session=session, tenant_id=principal.tenant_id, actor=principal)


class CallbacksState(rx.State):
    loaded: bool = False
    items: list[CallbackRow] = []
    _last_beat: float = 0.0
    _watch_generation: int = 0

    async def _read(self, principal: Principal, tz: str) -> None:
        self._show(await offloop.run(_fetch, principal), principal, tz)

    def _show(self, items: list[CallbackPublic], principal: Principal, tz: str) -> None:
        self.items = callback_rows(items, principal, tz, datetime.now(timezone.utc))

    @rx.event
    async def load(self):
        principal = await principal_for_page(self)
        if principal is None:
            return None
        await self._read(principal, await tenant_timezone(self))
        self.loaded = True
        self._last_beat = time.monotonic()
        self._watch_generation += 1
        return CallbacksState.watch

    @rx.event
    def beat(self, _value: str = ""):
        self._last_beat = time.monotonic()

    @rx.event
    def stop_watching(self):
        self._watch_generation += 1

    @rx.event(background=True)
    async def watch(self):
        """Re-reads the queue on each change of it (another agent claimed or closed, a new miss)."""
        async with self:
            generation = self._watch_generation
            viewer = await principal_for_page(self, activity=False)
            if viewer is None:
                return
            tz = await tenant_timezone(self)
        waiter = LiveWaiter(viewer.tenant_id, ("callbacks",))
        try:
            next_check = time.monotonic() + CHECK_SECONDS
            while True:
                changed = await waiter.wait(CHECK_SECONDS)
                async with self:
                    if self._watch_generation != generation or time.monotonic() - self._last_beat > BEAT_GRACE_SECONDS:
                        return
                    if not changed and time.monotonic() < next_check:
                        continue
                    principal = await principal_for_page(self, activity=False)
                    if principal is None or principal.tenant_id != viewer.tenant_id:
                        return
                items = await offloop.run(_fetch, principal)
                next_check = time.monotonic() + CHECK_SECONDS
                async with self:
                    if self._watch_generation != generation:
                        return
                    self._show(items, principal, tz)
        finally:
            waiter.close()

    async def _act(self, action, callback_id: int, done_key: str | None = None, **kwargs):
        principal = await principal_for_page(self)
        if principal is None:
            return None
        lang = (await self.get_state(LangState)).lang
        try:
            await offloop.call(action, principal, callback_id=callback_id, **kwargs)
        except DomainError as exc:
            await self._read(principal, await tenant_timezone(self))
            return rx.toast.error(exc.message)
        await self._read(principal, await tenant_timezone(self))
        return rx.toast.success(tr(lang, done_key)) if done_key else None

    @rx.event
    async def claim(self, callback_id: int):
        return await self._act(callbacks.claim, callback_id)

    @rx.event
    async def release(self, callback_id: int):
        return await self._act(callbacks.release, callback_id)

    @rx.event
    async def close(self, callback_id: int, outcome: str):
        if outcome not in CallbackOutcome.__members__:
            return None
        return await self._act(callbacks.close, callback_id, "cb_closed", outcome=CallbackOutcome(outcome))

    @rx.event
    async def call_back(self, callback_id: int):
        """One click: claims the item (if free) before the phone dials; the call is linked."""
        principal = await principal_for_page(self)
        if principal is None:
            return None
        try:
            await offloop.call(callbacks.claim, principal, callback_id=callback_id)
        except DomainError:
            pass  # already ours, or someone else's: the phone still dials; only the holder's call is linked
        return None


def _outcome_menu(row: CallbackRow) -> rx.Component:
    return rx.menu.root(
        rx.menu.trigger(rx.button(t("cb_close_as"), size="1", variant="soft", color_scheme="gray", data_testid="callback-close")),
        rx.menu.content(
            *[
                rx.menu.item(t(f"outcome_{o.value}"), on_click=CallbacksState.close(row.id, o.value), data_testid=f"outcome-{o.value}")
                for o in CallbackOutcome
            ]
        ),
    )


def callback_item(row: CallbackRow, *, actions: bool = True) -> rx.Component:
    """One item: number, client, count, waiting time, who holds it; the agent's actions."""
    return rx.hstack(
        icon_either(row.channel == "WHATSAPP", "message-circle", "phone-missed", size=16, color="var(--red-9)"),
        rx.vstack(
            rx.hstack(
                rx.text(row.number, weight="medium", dir="ltr", data_testid="callback-number"),
                name_text(row.client),
                rx.badge(t_fmt("cb_misses", n=row.misses), color_scheme="gray", data_testid="callback-count"),
                rx.cond(
                    row.channel == "WHATSAPP",
                    rx.badge(t("cb_channel_WHATSAPP"), color_scheme="green", data_testid="callback-channel", data_channel="WHATSAPP"),
                    rx.badge(t("cb_channel_CALL"), color_scheme="gray", variant="outline", data_testid="callback-channel", data_channel="CALL"),
                ),
                rx.cond(row.outside_hours, rx.badge(t("cb_outside_hours"), color_scheme="amber")),
                align="center",
                spacing="2",
            ),
            rx.hstack(
                rx.text(row.first_missed, " · ", rx.text(row.waited, as_="span", dir="ltr"), size="1", color_scheme="gray"),
                rx.cond(row.over_target, rx.badge(t("wb_over_target"), color_scheme="red", data_testid="callback-over-target")),
                rx.cond(
                    row.claimed_by != "",
                    rx.badge(t_fmt("cb_claimed_by", name=row.claimed_by), color_scheme="blue", data_testid="callback-claimed-by"),
                ),
                spacing="2",
                align="center",
            ),
            spacing="1",
        ),
        rx.spacer(),
        *(
            [
                rx.cond(row.free, rx.button(t("cb_claim"), size="1", on_click=CallbacksState.claim(row.id), data_testid="callback-claim")),
                rx.cond(
                    row.free | row.mine,
                    rx.hstack(
                        call_button(row.number, label_key="call_back", test_id="callback-call", before=[CallbacksState.call_back(row.id)]),
                        rx.link(rx.button(rx.icon("message-circle", size=14), t("cb_whatsapp"), size="1", variant="soft"), href=row.whatsapp_href),
                        rx.cond(row.mine, rx.button(t("cb_release"), size="1", variant="ghost", on_click=CallbacksState.release(row.id))),
                        _outcome_menu(row),
                        spacing="2",
                    ),
                ),
            ]
            if actions
            else []
        ),
        width="100%",
        align="center",
        padding="0.5rem",
        border_radius="6px",
        border=rx.cond(row.over_target, "2px solid var(--red-9)", "1px solid var(--gray-a5)"),
        data_testid="callback-item",
        data_over_target=rx.cond(row.over_target, "true", "false"),
    )


@template(route=routes.CALLBACKS, title_key="nav_callbacks", on_load=CallbacksState.load)
def callbacks_page() -> rx.Component:
    return rx.vstack(
        rx.moment(interval=BEAT_MS, on_change=CallbacksState.beat, display="none"),
        rx.box(on_unmount=CallbacksState.stop_watching, display="none"),
        card(
            section_title("cb_title"),
            rx.cond(
                CallbacksState.items.length() > 0,
                rx.vstack(rx.foreach(CallbacksState.items, callback_item), width="100%", spacing="2"),
                empty_state("cb_empty", "phone"),
            ),
            data_testid="callback-queue",
        ),
        width="100%",
    )
