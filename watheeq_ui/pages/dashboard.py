"""Home: today's call figures, missed calls to call back, calls per hour, the 30-day trend
and the per-agent table."""

from __future__ import annotations

import copy
import json
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import plotly.io as pio
import reflex as rx
from pydantic import BaseModel

from services import call_center, db, live
from services.models import CallFilters, CallPublic, CallStats, CallStatus, Principal

from watheeq_ui import formatting, live_tabs, routes
from watheeq_ui.components.charts import figure_chart
from watheeq_ui.components.softphone import call_button
from watheeq_ui.components.ui import card, empty_state, name_text, section_title, stat_card
from watheeq_ui.i18n import t
from watheeq_ui.layout import template
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page, tenant_timezone

TREND_DAYS = 30
MISSED_SHOWN = 5
# Gridlines on the count axis: enough to read a bar against, few enough to stay quiet.
COUNT_TICKS = 5
# Both charts are bars and lines: the browser draws their figure JSON as plain SVG
# (components/charts/figure_chart.jsx). Plotly's bundle and drawing were most of a dashboard
# load (and held the page's main thread, the softphone's registration with it); the figures
# stay Plotly's JSON, built and checked with plotly here (tests/test_dashboard_figures.py).
_AXIS = {"gridcolor": "rgba(128,128,128,0.18)", "zeroline": False, "color": "#80838d"}
# Days written with digits only: Plotly's own date ticks name the month in English ("Nov 2").
_DAY_AXIS = {**_AXIS, "type": "date", "tickformat": "%m-%d", "hoverformat": "%Y-%m-%d"}


class AgentRow(BaseModel):
    name: str
    total: str
    inbound: str
    outbound: str
    answered: str
    missed: str
    answer_rate: str
    talk_time: str
    average_talk: str


class MissedRow(BaseModel):
    id: int
    time: str
    remote: str
    client: str
    agent: str


def _layout(kind: str) -> dict:
    fig = go.Figure()
    if kind == "bar":
        fig.update_layout(barmode="stack")
    # The "none" template keeps the figure's JSON small; colours work on light and dark.
    fig.update_layout(
        template="none",
        height=280,
        margin={"l": 36, "r": 12, "t": 8, "b": 32},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        showlegend=False,
        font={"color": "#80838d", "size": 11},
        xaxis=_DAY_AXIS if kind == "line" else _AXIS,
        yaxis={**_AXIS, "rangemode": "tozero"},
        hovermode="x unified",
    )
    return json.loads(pio.to_json(fig))["layout"]


# Figures are kept as the JSON Plotly draws (typed as a figure for rx.plotly), not as
# go.Figure: validating, serialising and deep-copying (the default of every new tab's state)
# a go.Figure cost tens of milliseconds of server time per page load. The layouts are built
# with plotly once, here.
_LAYOUTS = {kind: _layout(kind) for kind in ("bar", "line")}


def count_axis(peak: int) -> dict:
    """Y-axis settings for call counts: whole-number ticks, about five of them, from zero.

    Plotly picks fractional steps (0.2, 0.5) whenever the highest count is small; a step of
    1, 2 or 5 times a power of ten at or above a fifth of the peak never is.
    """
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if step * COUNT_TICKS >= peak:
                return {"tick0": 0, "dtick": step, "tickformat": ",d", "rangemode": "tozero"}
        magnitude *= 10


def _figure(x: list, answered: list[int], missed: list[int], kind: str) -> dict:
    series = (("✓", answered, "#12a594"), ("✗", missed, "#e5484d"))
    if kind == "bar":
        traces = [{"marker": {"color": color}, "name": name, "x": x, "y": y, "type": "bar"} for name, y, color in series]
    else:
        traces = [
            {"line": {"color": color, "width": 2.5}, "mode": "lines+markers", "name": name, "x": x, "y": y, "type": "scatter"}
            for name, y, color in series
        ]
    layout = copy.deepcopy(_LAYOUTS[kind])
    # Stacked bars reach the hour's total; the two lines each reach their own highest point.
    peak = max((a + m for a, m in zip(answered, missed)), default=0) if kind == "bar" else max([0, *answered, *missed])
    layout["yaxis"].update(count_axis(peak))
    return {"data": traces, "layout": layout}


def hour_figure(stats: CallStats) -> dict:
    """Answered and missed calls of each of the day's 24 hours, stacked; an hour without calls is zero."""
    hours = list(range(24))
    by_hour = {b.hour: b for b in stats.per_hour}
    return _figure(
        [f"{h:02d}" for h in hours],
        [by_hour[h].answered if h in by_hour else 0 for h in hours],
        [by_hour[h].missed if h in by_hour else 0 for h in hours],
        "bar",
    )


def trend_figure(stats: CallStats) -> dict:
    """Answered and missed calls per day, oldest day first."""
    days = sorted(stats.per_day, key=lambda d: d.day)
    return _figure([d.day for d in days], [d.answered for d in days], [d.missed for d in days], "line")


def agent_rows(stats: CallStats) -> list[AgentRow]:
    """The per-agent table, busiest agent first."""
    return [
        AgentRow(
            name=a.agent_name or "—",
            total=formatting.count(a.total),
            inbound=formatting.count(a.inbound),
            outbound=formatting.count(a.outbound),
            answered=formatting.count(a.answered),
            missed=formatting.count(a.missed),
            answer_rate=formatting.percent(a.answered / a.total if a.total else None),
            talk_time=formatting.duration(a.talk_seconds),
            average_talk=formatting.duration(a.average_talk_seconds),
        )
        for a in sorted(stats.per_agent, key=lambda a: -a.total)
    ]


class DashboardState(rx.State):
    loaded: bool = False
    own_only: bool = False
    today_label: str = ""
    total: str = "0"
    inbound: str = "0"
    outbound: str = "0"
    answered: str = "0"
    missed: str = "0"
    answer_rate: str = "—"
    asa: str = "—"
    avg_talk: str = "—"
    service_level: str = "—"
    hour_figure: dict = {}
    trend_figure: dict = {}
    agents: list[AgentRow] = []
    has_calls: bool = False
    missed_calls: list[MissedRow] = []

    def _show_today(self, stats: CallStats) -> None:
        self.total = formatting.count(stats.total)
        self.inbound = formatting.count(stats.inbound)
        self.outbound = formatting.count(stats.outbound)
        self.answered = formatting.count(stats.answered)
        self.missed = formatting.count(stats.missed)
        self.answer_rate = formatting.percent(stats.answer_rate)
        self.asa = formatting.duration(stats.average_speed_of_answer)
        self.avg_talk = formatting.duration(stats.average_talk_time)
        self.service_level = formatting.percent(stats.service_level)
        self.hour_figure = hour_figure(stats)

    def _show_trend(self, stats: CallStats) -> None:
        self.trend_figure = trend_figure(stats)
        self.has_calls = stats.total > 0
        self.agents = agent_rows(stats)

    @rx.event
    async def load(self):
        principal = await principal_for_page(self)
        if principal is None:
            return
        await self._load(principal)
        # A call logged or changed in the firm is pushed: the figures follow without a reload.
        live_tabs.follow(self, principal.tenant_id, principal.user_id, "calls")

    async def on_live_change(self, change: live.Change) -> None:
        principal = await principal_for_page(self, activity=False)
        if principal is not None:
            await self._load(principal)

    async def _load(self, principal: Principal) -> None:
        tz = ZoneInfo(await tenant_timezone(self))
        today = datetime.now(tz).date()
        trend_start = datetime.combine(today - timedelta(days=TREND_DAYS - 1), time(0), tzinfo=tz)
        today_start = datetime.combine(today, time(0), tzinfo=tz)
        missed, today_stats, trend = await offloop.run(_read_dashboard, principal, today_start, trend_start)
        self.own_only = not principal.is_supervisor
        self.today_label = today.isoformat()
        self._show_today(today_stats)
        self._show_trend(trend)
        self.missed_calls = [
            MissedRow(
                id=c.id,
                time=formatting.local_time(c.started_at, str(tz), "%H:%M"),
                remote=c.remote_number,
                client=c.client_name or "",
                agent=c.agent_name or "",
            )
            for c in missed
        ]
        self.loaded = True


def _read_dashboard(principal: Principal, today_start: datetime, trend_start: datetime) -> tuple[list[CallPublic], CallStats, CallStats]:
    """The dashboard's three reads in one unit of work (run off the event loop)."""
    with db.session_scope() as session:
        # The agent's own missed calls, or the firm's for a supervisor (the history's rule).
        missed = call_center.get_call_history(
            session=session,
            tenant_id=principal.tenant_id,
            actor=principal,
            filters=CallFilters(date_from=today_start, statuses=[CallStatus.MISSED]),
            page_size=MISSED_SHOWN,
        ).data
        today_stats = call_center.get_stats(session=session, tenant_id=principal.tenant_id, actor=principal)
        trend = call_center.get_stats(session=session, tenant_id=principal.tenant_id, actor=principal, date_from=trend_start)
    return missed, today_stats, trend


def _agents_table() -> rx.Component:
    headers = ["agent", "total_calls", "inbound", "outbound", "answered", "missed", "answer_rate", "talk_time", "avg_talk"]
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(t(h)) for h in headers])),
        rx.table.body(
            rx.foreach(
                DashboardState.agents,
                lambda a: rx.table.row(
                    rx.table.row_header_cell(name_text(a.name)),
                    rx.table.cell(a.total),
                    rx.table.cell(a.inbound),
                    rx.table.cell(a.outbound),
                    rx.table.cell(a.answered),
                    rx.table.cell(a.missed),
                    rx.table.cell(a.answer_rate),
                    rx.table.cell(a.talk_time),
                    rx.table.cell(a.average_talk),
                ),
            )
        ),
        variant="ghost",
        width="100%",
        data_testid="agents-table",
    )


def _missed_calls() -> rx.Component:
    return card(
        section_title("missed_to_call_back"),
        rx.cond(
            DashboardState.missed_calls.length() > 0,
            rx.vstack(
                rx.foreach(
                    DashboardState.missed_calls,
                    lambda m: rx.hstack(
                        rx.icon("phone-missed", size=16, color="var(--red-9)"),
                        rx.text(m.time, size="2", color_scheme="gray"),
                        rx.text(m.remote, size="2", weight="medium", dir="ltr"),
                        rx.text(name_text(m.client), size="2"),
                        rx.text(name_text(m.agent), size="1", color_scheme="gray"),
                        rx.spacer(),
                        call_button(m.remote, label_key="call_back", test_id="missed-call-back"),
                        width="100%",
                        align="center",
                        data_testid="missed-call",
                    ),
                ),
                width="100%",
                spacing="2",
            ),
            rx.text(t("no_missed_calls"), size="2", color_scheme="gray"),
        ),
        data_testid="missed-calls",
    )


def _legend() -> rx.Component:
    return rx.hstack(
        rx.hstack(rx.box(width="10px", height="10px", background="#12a594", border_radius="2px"), rx.text(t("answered"), size="1")),
        rx.hstack(rx.box(width="10px", height="10px", background="#e5484d", border_radius="2px"), rx.text(t("missed"), size="1")),
        spacing="4",
        align="center",
    )


@template(route=routes.DASHBOARD, title_key="nav_dashboard", on_load=DashboardState.load)
def dashboard() -> rx.Component:
    return rx.cond(
        DashboardState.loaded,
        rx.vstack(
            rx.hstack(
                rx.heading(rx.cond(DashboardState.own_only, t("my_calls_today"), t("firm_calls_today")), size="4"),
                rx.badge(DashboardState.today_label, variant="surface", color_scheme="gray"),
                rx.spacer(),
                rx.badge(
                    t("service_level"),
                    ": ",
                    # A figure reads left to right in both languages ("33.3%", not "%33.3").
                    rx.text(DashboardState.service_level, as_="span", dir="ltr"),
                    variant="soft",
                    size="2",
                    data_testid="stat-service-level",
                ),
                rx.link(rx.button(rx.icon("list", size=16), t("nav_calls"), variant="soft"), href=routes.CALLS),
                width="100%",
                align="center",
            ),
            rx.grid(
                stat_card("total_calls", DashboardState.total, "phone", "teal", "stat-total"),
                stat_card("inbound", DashboardState.inbound, "phone-incoming", "blue", "stat-inbound"),
                stat_card("outbound", DashboardState.outbound, "phone-outgoing", "cyan", "stat-outbound"),
                stat_card("answered", DashboardState.answered, "phone-call", "green", "stat-answered"),
                stat_card("missed", DashboardState.missed, "phone-missed", "red", "stat-missed"),
                stat_card("answer_rate", DashboardState.answer_rate, "percent", "teal", "stat-answer-rate"),
                stat_card("asa", DashboardState.asa, "timer", "amber", "stat-asa"),
                stat_card("avg_talk", DashboardState.avg_talk, "clock", "violet", "stat-avg-talk"),
                columns=rx.breakpoints(initial="2", md="4"),
                spacing="4",
                width="100%",
            ),
            _missed_calls(),
            rx.grid(
                card(
                    section_title("calls_per_hour", _legend()),
                    figure_chart(DashboardState.hour_figure, data_testid="figure-hour"),
                    data_testid="chart-hour",
                ),
                card(
                    section_title("last_30_days", _legend()),
                    figure_chart(DashboardState.trend_figure, data_testid="figure-trend"),
                    data_testid="chart-trend",
                ),
                columns=rx.breakpoints(initial="1", lg="2"),
                spacing="4",
                width="100%",
            ),
            card(
                section_title("per_agent"),
                rx.cond(DashboardState.has_calls, _agents_table(), empty_state("no_data", "phone-off")),
            ),
            spacing="5",
            width="100%",
        ),
        rx.center(rx.spinner(size="3"), padding="4rem", width="100%"),
    )
