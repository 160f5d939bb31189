"""Charts drawn as SVG by React from a figure's JSON (see figure_chart.jsx)."""

from watheeq_ui.components.charts.chart import figure_chart

__all__ = ["figure_chart"]
