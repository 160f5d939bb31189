"""The live wallboard (OWNER, ADMIN, MANAGER): a tile per agent with state and time in state,
calls in progress, callers ringing and the longest ring, today's figures, the callback queue
with items over target highlighted; a full-screen mode for the office TV.

Pushed, not polled: the page's background task waits on the firm's live changes (agents,
callbacks, calls) and re-reads the board (services.wallboard) only then. Between changes it
only advances the clocks (time in state, longest ring, oldest callback) once a second,
without touching the database; the session is re-checked every 15 s.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import reflex as rx
from pydantic import BaseModel

from services import db, wallboard
from services.models import AgentStatus, Principal

from watheeq_ui import formatting, routes
from watheeq_ui.components.ui import card, empty_state, icon_either, name_text, section_title, stat_card
from watheeq_ui.i18n import t
from watheeq_ui.layout import template
from watheeq_ui.pages.callbacks import CallbackRow, callback_item, callback_rows
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tenant_timezone
from watheeq_ui.state.live_watch import BEAT_GRACE_SECONDS, BEAT_MS, LiveWaiter, SharedRead

CHECK_SECONDS = 15.0
TICK_SECONDS = 1.0
TOPICS = ("agents", "callbacks", "calls")
STATUS_COLOR = {
    AgentStatus.OFFLINE: "gray",
    AgentStatus.AVAILABLE: "green",
    AgentStatus.RINGING: "amber",
    AgentStatus.ON_CALL: "blue",
    AgentStatus.WRAP_UP: "violet",
    AgentStatus.AWAY: "orange",
}


class AgentTile(BaseModel):
    user_id: int
    name: str
    extension: str
    status: str
    reason: str
    other_party: str
    in_state: str
    color: str


def _fetch(principal: Principal) -> wallboard.Wallboard:
    with db.session_scope() as session:
        return wallboard.snapshot(session=session, tenant_id=principal.tenant_id, actor=principal)


# Every wallboard of a firm in this worker shares one read per change (see SharedRead).
BOARDS: SharedRead[wallboard.Wallboard] = SharedRead(TOPICS, _fetch, max_age=CHECK_SECONDS)


def _elapsed(since: float | None, now: float) -> str:
    return "—" if since is None else formatting.duration(max(0.0, now - since))


class WallboardState(rx.State):
    loaded: bool = False
    tv: bool = False
    agents: list[AgentTile] = []
    in_progress: str = "0"
    ringing: str = "0"
    longest_ring: str = "—"
    answered: str = "0"
    missed: str = "0"
    service_level: str = "—"
    asa: str = "—"
    queue: str = "0"
    oldest: str = "—"
    over_target: str = "0"
    callbacks: list[CallbackRow] = []
    _since: list[float] = []
    _ring_since: float | None = None
    _oldest_since: float | None = None
    _last_beat: float = 0.0
    _watch_generation: int = 0

    async def _read(self, principal: Principal, tz: str) -> None:
        self._show(await offloop.run(_fetch, principal), principal, tz)

    def _show(self, board: wallboard.Wallboard, principal: Principal, tz: str) -> None:
        self.agents = [
            AgentTile(
                user_id=a.user_id, name=a.full_name, extension=a.extension or "", status=a.status.value,
                reason=a.reason.value if a.reason else "", other_party=a.other_party, in_state="", color=STATUS_COLOR[a.status],
            )
            for a in board.agents
        ]
        self._since = [a.since.timestamp() for a in board.agents]
        self.in_progress = formatting.count(board.calls_in_progress)
        self.ringing = formatting.count(board.callers_ringing)
        self._ring_since = board.longest_ring_started_at.timestamp() if board.longest_ring_started_at else None
        self.answered = formatting.count(board.answered_today)
        self.missed = formatting.count(board.missed_today)
        self.service_level = formatting.percent(board.service_level)
        self.asa = formatting.duration(board.average_speed_of_answer)
        self.queue = formatting.count(board.callbacks_open)
        self.over_target = formatting.count(board.callbacks_over_target)
        self._oldest_since = board.oldest_callback_at.timestamp() if board.oldest_callback_at else None
        self.callbacks = callback_rows(board.callbacks, principal, tz, datetime.now(timezone.utc))
        self._tick()

    def _tick(self) -> None:
        now = time.time()
        self.agents = [tile.model_copy(update={"in_state": _elapsed(since, now)}) for tile, since in zip(self.agents, self._since)]
        self.longest_ring = _elapsed(self._ring_since, now)
        self.oldest = _elapsed(self._oldest_since, now)

    @rx.event
    async def load(self):
        principal = await principal_for_page(self, "supervisor")
        if principal is None:
            return None
        await self._read(principal, await tenant_timezone(self))
        self.loaded = True
        self._last_beat = time.monotonic()
        self._watch_generation += 1
        return WallboardState.watch

    @rx.event
    def beat(self, _value: str = ""):
        self._last_beat = time.monotonic()

    @rx.event
    def stop_watching(self):
        self._watch_generation += 1
        self.tv = False

    @rx.event
    def toggle_tv(self):
        self.tv = not self.tv
        script = "document.documentElement.requestFullscreen?.().catch(() => {})" if self.tv else "document.fullscreenElement && document.exitFullscreen()"
        return rx.call_script(script)

    @rx.event(background=True)
    async def watch(self):
        """Re-reads the board on every change of the firm's agents, callbacks or calls."""
        async with self:
            generation = self._watch_generation
            # Watching is not activity: a TV showing the board must not keep a tab signed in forever.
            viewer = await principal_for_page(self, "supervisor", activity=False)
            if viewer is None:
                return
            tz = await tenant_timezone(self)
        waiter = LiveWaiter(viewer.tenant_id, TOPICS)
        try:
            next_check = time.monotonic() + CHECK_SECONDS
            while True:
                changed = await waiter.wait(TICK_SECONDS)
                reread = changed or time.monotonic() >= next_check
                async with self:
                    if self._watch_generation != generation or time.monotonic() - self._last_beat > BEAT_GRACE_SECONDS:
                        return
                    if not reread:
                        self._tick()
                        continue
                    # Nothing reaches the browser for a session that has ended meanwhile.
                    principal = await principal_for_page(self, "supervisor", activity=False)
                    if principal is None or principal.tenant_id != viewer.tenant_id:
                        return
                # The read runs on a worker thread, outside the state lock.
                _, board = await offloop.run(BOARDS.get, principal)
                next_check = time.monotonic() + CHECK_SECONDS
                async with self:
                    if self._watch_generation != generation:
                        return
                    self._show(board, principal, tz)
        finally:
            waiter.close()


def _status_label(status: rx.Var) -> rx.Component:
    return rx.match(status, *[(s.value, t(f"ag_{s.value}")) for s in AgentStatus], status)


def _reason_label(reason: rx.Var) -> rx.Component:
    return rx.match(reason, ("BREAK", t("away_BREAK")), ("MEETING", t("away_MEETING")), ("COURT", t("away_COURT")), "")


def _agent_tile(tile: AgentTile) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text(name_text(tile.name), weight="bold", size="3"),
                rx.spacer(),
                rx.text(tile.extension, size="1", color_scheme="gray", dir="ltr"),
                width="100%",
            ),
            rx.hstack(
                rx.badge(_status_label(tile.status), color_scheme=tile.color, size="2", data_testid="agent-status"),
                rx.cond(tile.reason != "", rx.text(_reason_label(tile.reason), size="2", data_testid="agent-reason")),
                rx.spacer(),
                rx.text(tile.in_state, size="4", weight="medium", dir="ltr", data_testid="agent-in-state"),
                width="100%",
                align="center",
            ),
            rx.cond(tile.other_party != "", rx.text(tile.other_party, size="2", dir="ltr", color_scheme="gray")),
            spacing="2",
            width="100%",
        ),
        data_testid="agent-tile",
        data_user_id=tile.user_id,
        data_status=tile.status,
        border_inline_start=f"4px solid var(--{tile.color}-9)",
    )


def _board() -> rx.Component:
    s = WallboardState
    return rx.vstack(
        rx.hstack(
            rx.heading(t("nav_wallboard"), size="5"),
            rx.spacer(),
            rx.button(
                icon_either(s.tv, "minimize", "maximize", size=16),
                rx.cond(s.tv, t("wb_exit_full_screen"), t("wb_full_screen")),
                variant="soft",
                on_click=s.toggle_tv,
                data_testid="wallboard-tv",
            ),
            width="100%",
            align="center",
        ),
        rx.grid(
            stat_card("wb_in_progress", s.in_progress, "phone-call", "blue", "wb-in-progress"),
            stat_card("wb_ringing", s.ringing, "bell-ring", "amber", "wb-ringing"),
            stat_card("wb_longest_ring", s.longest_ring, "timer", "amber", "wb-longest-ring"),
            stat_card("wb_answered", s.answered, "phone-incoming", "green", "wb-answered"),
            stat_card("wb_missed", s.missed, "phone-missed", "red", "wb-missed"),
            stat_card("service_level", s.service_level, "percent", "teal", "wb-service-level"),
            stat_card("asa", s.asa, "timer", "violet", "wb-asa"),
            stat_card("wb_queue", s.queue, "list-todo", "orange", "wb-queue"),
            stat_card("wb_oldest", s.oldest, "hourglass", "orange", "wb-oldest"),
            stat_card("wb_over_target", s.over_target, "triangle-alert", "red", "wb-over-target"),
            columns=rx.breakpoints(initial="2", md="5"),
            spacing="3",
            width="100%",
        ),
        card(
            section_title("wb_agents"),
            rx.cond(
                s.agents.length() > 0,
                rx.grid(rx.foreach(s.agents, _agent_tile), columns=rx.breakpoints(initial="1", sm="2", lg="4"), spacing="3", width="100%"),
                empty_state("wb_no_agents", "users"),
            ),
        ),
        card(
            section_title("wb_queue"),
            rx.cond(
                s.callbacks.length() > 0,
                rx.vstack(rx.foreach(s.callbacks, lambda row: callback_item(row, actions=False)), width="100%", spacing="2"),
                empty_state("cb_empty", "phone"),
            ),
            data_testid="wallboard-queue",
        ),
        spacing="4",
        width="100%",
    )


@template(route=routes.WALLBOARD, title_key="nav_wallboard", access="supervisor", on_load=WallboardState.load)
def wallboard_page() -> rx.Component:
    return rx.fragment(
        rx.moment(interval=BEAT_MS, on_change=WallboardState.beat, display="none"),
        rx.box(on_unmount=WallboardState.stop_watching, display="none"),
        rx.cond(
            WallboardState.tv,
            # The TV: the board alone, over the whole screen.
            rx.box(_board(), position="fixed", inset="0", z_index="1000", overflow="auto", padding="1.5rem",
                   background=rx.color("gray", 1), data_testid="wallboard-full-screen"),
            rx.cond(WallboardState.loaded, _board(), rx.center(rx.spinner(size="3"), padding="4rem", width="100%")),
        ),
    )
