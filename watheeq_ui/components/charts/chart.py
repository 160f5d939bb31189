"""The Reflex wrapper of figure_chart.jsx: a figure's JSON ({data, layout}, as Plotly takes
it) drawn as plain SVG, without Plotly's bundle in the browser."""

from __future__ import annotations

from typing import Any

import reflex as rx

_JSX = rx.asset("figure_chart.jsx", shared=True)


class FigureChart(rx.Component):
    """Stacked bars or lines with markers, a y axis from the layout, a hover tooltip."""

    library = _JSX.importable_path
    tag = "FigureChart"

    figure: rx.Var[dict[str, Any]]


def figure_chart(figure: rx.Var | dict, **props: Any) -> rx.Component:
    return FigureChart.create(figure=figure, **props)
