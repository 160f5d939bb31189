"""The dashboard's figures from fixed statistics: which numbers go in which chart and row."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from services.models import AgentStats, CallStats, DayBucket, HourBucket
from watheeq_ui.pages.dashboard import COUNT_TICKS, _figure, agent_rows, count_axis, hour_figure, trend_figure


def _stats(**kw) -> CallStats:
    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    base = dict(
        date_from=now, date_to=now, timezone="Asia/Riyadh", total=0, inbound=0, outbound=0, answered=0, missed=0,
        answer_rate=None, service_level=None, service_level_threshold_seconds=20, average_speed_of_answer=None,
        average_talk_time=None, average_handle_time=None, per_agent=[], per_hour=[], per_day=[],
    )
    return CallStats(**{**base, **kw})


def test_the_hour_chart_stacks_each_hours_answered_and_missed_calls_with_quiet_hours_at_zero():
    stats = _stats(per_hour=[HourBucket(hour=14, total=2, answered=0, missed=2), HourBucket(hour=9, total=4, answered=3, missed=1)])
    figure = hour_figure(stats)
    answered, missed = figure["data"]
    assert answered["type"] == missed["type"] == "bar" and figure["layout"]["barmode"] == "stack"
    assert answered["x"] == missed["x"] == [f"{h:02d}" for h in range(24)]
    assert answered["y"] == [0] * 9 + [3] + [0] * 14
    assert missed["y"] == [0] * 9 + [1] + [0] * 4 + [2] + [0] * 9
    assert (answered["marker"]["color"], missed["marker"]["color"]) == ("#12a594", "#e5484d")
    # Four calls at 09:00 stacked: one call per gridline.
    assert figure["layout"]["yaxis"]["dtick"] == 1


def test_the_trend_chart_draws_the_days_in_order_with_a_line_each():
    stats = _stats(
        per_day=[
            DayBucket(day="2026-11-03", total=10, answered=7, missed=3),
            DayBucket(day="2026-11-01", total=12, answered=12, missed=0),
            DayBucket(day="2026-11-02", total=0, answered=0, missed=0),
        ]
    )
    figure = trend_figure(stats)
    answered, missed = figure["data"]
    assert answered["mode"] == missed["mode"] == "lines+markers"
    assert answered["x"] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert (answered["y"], missed["y"]) == ([12, 0, 7], [0, 0, 3])
    # Lines are not stacked: the highest point is 12 answered calls, read in steps of 5.
    assert figure["layout"]["yaxis"]["dtick"] == 5


def test_the_agent_table_lists_the_busiest_agent_first_with_rates_and_times():
    def agent(name: str, total: int, answered: int, talk: int, average: float | None) -> AgentStats:
        return AgentStats(
            agent_user_id=None, agent_name=name, total=total, inbound=total - 1 if total else 0, outbound=1 if total else 0,
            answered=answered, missed=total - answered, talk_seconds=talk, average_talk_seconds=average,
        )

    rows = agent_rows(_stats(per_agent=[agent("Huda", 4, 1, 65, 65.0), agent("", 0, 0, 0, None), agent("Sami", 1234, 864, 3725, 4.4)]))
    assert [r.name for r in rows] == ["Sami", "Huda", "—"]
    sami, huda, nobody = rows
    assert (sami.total, sami.inbound, sami.outbound, sami.answered, sami.missed) == ("1,234", "1,233", "1", "864", "370")
    assert (sami.answer_rate, sami.talk_time, sami.average_talk) == ("70.0%", "1:02:05", "0:04")
    assert (huda.answer_rate, huda.talk_time, huda.average_talk) == ("25.0%", "1:05", "1:05")
    # No calls: no rate to show rather than a division by zero.
    assert (nobody.answer_rate, nobody.average_talk) == ("—", "—")


@pytest.mark.parametrize("kind", ["bar", "line"])
def test_chart_json_is_a_figure_plotly_accepts(kind):
    # Plotly validates every property of a figure it is given: a misspelt or misplaced key raises.
    x = [f"{h:02d}" for h in range(24)] if kind == "bar" else [f"2026-11-{d:02d}" for d in range(1, 31)]
    figure = _figure(x, [1] * len(x), [0] * len(x), kind)
    rebuilt = json.loads(pio.to_json(go.Figure(figure)))
    assert [trace["y"] for trace in rebuilt["data"]] == [[1] * len(x), [0] * len(x)]
    assert rebuilt["layout"]["yaxis"]["dtick"] == figure["layout"]["yaxis"]["dtick"] == 1


def test_each_chart_gets_its_own_layout():
    first = _figure(["00"], [1], [0], "bar")
    first["layout"]["height"] = 1
    assert _figure(["00"], [1], [0], "bar")["layout"]["height"] == 280


@pytest.mark.parametrize("peak", [0, 1, 2, 3, 4, 5, 6, 9, 11, 17, 49, 51, 99, 101, 480, 1234, 98765])
def test_count_axis_has_whole_number_ticks_from_zero(peak):
    axis = count_axis(peak)
    assert isinstance(axis["dtick"], int) and axis["dtick"] >= 1
    assert axis["tick0"] == 0 and axis["tickformat"] == ",d" and axis["rangemode"] == "tozero"
    # At most COUNT_TICKS steps up to the peak, and the step is 1, 2 or 5 times a power of ten.
    assert axis["dtick"] * COUNT_TICKS >= peak
    assert str(axis["dtick"]).rstrip("0") in {"1", "2", "5"}


def test_count_axis_uses_the_smallest_step_that_fits():
    assert [count_axis(p)["dtick"] for p in (1, 5, 6, 10, 11, 25, 26, 50, 51)] == [1, 1, 2, 2, 5, 5, 10, 10, 20]


def test_a_quiet_hour_chart_counts_in_whole_calls():
    # One answered call and two missed ones in the busiest hour: Plotly's own choice is 0.5 steps.
    hours = [f"{h:02d}" for h in range(24)]
    answered = [1 if h == 9 else 0 for h in range(24)]
    missed = [2 if h == 9 else 0 for h in range(24)]
    yaxis = _figure(hours, answered, missed, "bar")["layout"]["yaxis"]
    assert yaxis["dtick"] == 1 and yaxis["tick0"] == 0 and yaxis["tickformat"] == ",d"
    trend = _figure(["2026-11-01", "2026-11-02"], [3, 1], [40, 2], "line")["layout"]["yaxis"]
    assert trend["dtick"] == 10


def test_the_trend_chart_writes_days_in_digits_in_both_languages():
    xaxis = _figure(["2026-11-01", "2026-11-02"], [1, 2], [0, 1], "line")["layout"]["xaxis"]
    assert xaxis["type"] == "date"
    # No month or weekday names (%b, %B, %a, %A), which Plotly writes in English only.
    assert xaxis["tickformat"] and not re.search(r"%[bBaA]", xaxis["tickformat"])
    assert xaxis["hoverformat"] and not re.search(r"%[bBaA]", xaxis["hoverformat"])
