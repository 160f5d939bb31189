"""The dashboard's charts are hand-built Plotly JSON: it must stay what plotly itself produces."""

from __future__ import annotations

import json
import re

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from watheeq_ui.pages.dashboard import _AXIS, _DAY_AXIS, COUNT_TICKS, _figure, count_axis


def _plotly_json(x: list, answered: list[int], missed: list[int], kind: str) -> dict:
    fig = go.Figure()
    if kind == "bar":
        fig.add_bar(x=x, y=answered, name="✓", marker_color="#12a594")
        fig.add_bar(x=x, y=missed, name="✗", marker_color="#e5484d")
        fig.update_layout(barmode="stack")
    else:
        fig.add_scatter(x=x, y=answered, name="✓", mode="lines+markers", line={"color": "#12a594", "width": 2.5})
        fig.add_scatter(x=x, y=missed, name="✗", mode="lines+markers", line={"color": "#e5484d", "width": 2.5})
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
    peak = max(a + m for a, m in zip(answered, missed)) if kind == "bar" else max(answered + missed)
    fig.update_yaxes(count_axis(peak))
    return json.loads(pio.to_json(fig))


@pytest.mark.parametrize("kind", ["bar", "line"])
def test_chart_json_equals_the_figure_plotly_builds(kind):
    x = [f"{h:02d}" for h in range(24)] if kind == "bar" else [f"2026-11-{d:02d}" for d in range(1, 31)]
    answered = [(i * 37) % 500 for i in range(len(x))]
    missed = [(i * 11) % 90 for i in range(len(x))]
    assert _figure(x, answered, missed, kind) == _plotly_json(x, answered, missed, kind)


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
