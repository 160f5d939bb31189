"""The dashboard's charts are hand-built Plotly JSON: it must stay what plotly itself produces."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from watheeq_ui.pages.dashboard import _AXIS, _figure


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
        xaxis=_AXIS,
        yaxis={**_AXIS, "rangemode": "tozero"},
        hovermode="x unified",
    )
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
