"""The PBX settings' feed-health line: is the PBX's call-record feed connected, when did the
last record arrive, how many today, how many gaps were found and filled, the last error.
Its own small state, so the PBX settings form next to it is left alone."""

from __future__ import annotations


import reflex as rx

from services import db
from services.authz import Permission
from services.models import PbxFeedHealth
from services.pbx import feed

from watheeq_ui import formatting
from watheeq_ui.i18n import t, t_fmt
from watheeq_ui.pages.extensions.call_records import source_message
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tenant_timezone
from watheeq_ui.state.lang import LangState


class FeedHealthState(rx.State):
    started: bool = False
    connected: bool = False
    last_record: str = ""
    records_today: str = "0"
    gaps_filled: str = "0"
    error: str = ""

    def _show(self, health: PbxFeedHealth | None, tz: str, lang: str = "en") -> None:
        self.started = health is not None
        if health is None:
            return
        self.connected = health.connected
        self.last_record = formatting.local_time(health.last_record_at, tz, "%Y-%m-%d %H:%M:%S") if health.last_record_at else ""
        self.records_today = formatting.count(health.records_today)
        self.gaps_filled = formatting.count(health.gaps_filled)
        failed = not health.connected and (health.last_error or health.last_error_code)
        self.error = source_message(lang, health.last_error_code, health.last_error) if failed else ""

    @rx.event
    async def load(self):
        principal = await principal_for_page(self, Permission.MANAGE_EXTENSIONS, activity=False)
        if principal is None:
            return
        tz = await tenant_timezone(self)
        lang = (await self.get_state(LangState)).lang

        def read() -> PbxFeedHealth | None:
            with db.session_scope() as session:
                return feed.get_health(session=session, tenant_id=principal.tenant_id)

        self._show(await offloop.run(read), tz, lang)


def feed_health_line() -> rx.Component:
    s = FeedHealthState
    return rx.hstack(
        rx.icon("activity", size=16),
        rx.text(t("cdr_feed"), size="2", weight="medium"),
        rx.cond(
            s.started,
            rx.hstack(
                rx.badge(
                    rx.cond(s.connected, t("cdr_feed_connected"), t("cdr_feed_disconnected")),
                    color_scheme=rx.cond(s.connected, "green", "red"),
                    data_testid="cdr-feed-state",
                ),
                rx.text(rx.cond(s.last_record != "", t_fmt("cdr_last_record", at=s.last_record), t("cdr_no_record_yet")), size="2"),
                rx.text(t_fmt("cdr_records_today", n=s.records_today), size="2", data_testid="cdr-records-today"),
                rx.text(t_fmt("cdr_gaps_filled", n=s.gaps_filled), size="2", data_testid="cdr-gaps-filled"),
                rx.cond(s.error != "", rx.text(s.error, size="2", color_scheme="red", data_testid="cdr-feed-error")),
                spacing="3",
                wrap="wrap",
                align="center",
            ),
            rx.badge(t("cdr_feed_not_started"), color_scheme="gray", data_testid="cdr-feed-state"),
        ),
        rx.icon_button(rx.icon("refresh-cw", size=14), variant="ghost", size="1", on_click=FeedHealthState.load, data_testid="cdr-feed-refresh"),
        on_mount=FeedHealthState.load,
        spacing="3",
        align="center",
        wrap="wrap",
        width="100%",
        data_testid="cdr-feed-health",
    )
