"""Plotly figures for the analytics pages, built from selector output (the API's own data)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import plotly.graph_objects as go
from django.utils.safestring import SafeString

from analytics.selectors import SegmentRow, Totals, TrendPoint
from marketing_ai.charts import embed

BRAND, GOOD, WARN = "#3b5bdb", "#2f9e44", "#f08c00"


def trend(points: list[TrendPoint], interval: str, markers: Sequence[tuple[datetime, str]] = ()) -> SafeString:
    """Views and conversions (left axis) and revenue as an area (right axis) per period.

    ``markers``: (when, label) of changes to the campaign's settings, drawn as dotted vertical lines.
    """
    dates = [p.date.isoformat() for p in points]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=dates, y=[float(p.totals.revenue) for p in points], name="Revenue", yaxis="y2",
                             fill="tozeroy", mode="lines", line=dict(color=GOOD, width=1), opacity=0.4))
    fig.add_trace(go.Scatter(x=dates, y=[p.totals.views for p in points], name="Views", mode="lines+markers",
                             line=dict(color=BRAND)))
    fig.add_trace(go.Scatter(x=dates, y=[p.totals.conversions for p in points], name="Conversions",
                             mode="lines+markers", line=dict(color=WARN)))
    fig.update_layout(
        title=f"Performance trend ({interval})",
        yaxis=dict(title="count", rangemode="tozero"),
        yaxis2=dict(title="revenue", overlaying="y", side="right", rangemode="tozero", showgrid=False),
        legend=dict(orientation="h", y=-0.2),
        hovermode="x unified",
    )
    for when, label in markers:
        x = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")  # plotly.js reads naive times; the axis is UTC
        fig.add_shape(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1, line=dict(color=WARN, width=1, dash="dot"))
        fig.add_annotation(x=x, xref="x", y=1, yref="paper", text=label, showarrow=False, textangle=-90,
                           xanchor="right", yanchor="top", font=dict(size=10), hovertext=label)
    return embed(fig, div_id="chart-trend")


def segments(rows: list[SegmentRow]) -> SafeString:
    """Conversion rate per segment with its 95 % Wilson interval as error bars."""
    names = [r.segment_name for r in rows]
    rates = [r.totals.conversion_rate * 100 for r in rows]
    cis = [r.totals.conversion_rate_ci for r in rows]
    fig = go.Figure(go.Bar(
        x=names, y=rates, marker_color=BRAND, name="Conversion rate",
        error_y=dict(type="data", symmetric=False,
                     array=[ci.high * 100 - rate for ci, rate in zip(cis, rates, strict=True)],
                     arrayminus=[rate - ci.low * 100 for ci, rate in zip(cis, rates, strict=True)]),
        customdata=[[r.users_count, float(r.totals.revenue), r.totals.views] for r in rows],
        hovertemplate="%{x}<br>conversion rate %{y:.2f}%<br>customer-days %{customdata[0]:,}"
                      "<br>views %{customdata[2]:,}<br>revenue %{customdata[1]:,.2f}<extra></extra>",
    ))
    fig.update_layout(title="Conversion rate by segment (95% Wilson interval)", yaxis=dict(title="%", rangemode="tozero"))
    return embed(fig, div_id="chart-segments")


def funnel(totals: Totals) -> SafeString:
    """Sent -> opened -> viewed -> clicked -> converted."""
    stages = totals.funnel()
    fig = go.Figure(go.Funnel(y=[s for s, _ in stages], x=[n for _, n in stages], textinfo="value+percent initial",
                              marker=dict(color=[BRAND, "#5c7cfa", "#748ffc", "#91a7ff", GOOD])))
    fig.update_layout(title="Conversion funnel")
    return embed(fig, div_id="chart-funnel")
