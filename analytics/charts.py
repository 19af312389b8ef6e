"""Plotly figures for the analytics pages, built from selector output (the API's own data)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import plotly.graph_objects as go
from django.utils.safestring import SafeString
from plotly.subplots import make_subplots

from analytics.selectors import SegmentRow, Totals, TrendPoint
from marketing_ai.charts import PARTIAL_LABELS, add_line_with_partial, embed, shade_partial

BRAND, GOOD, WARN, PAST = "#3b5bdb", "#2f9e44", "#f08c00", "#868e96"

# Half of each interval: the shading of a partial period starts half-way between its point and the one before.
HALF_PERIOD = {"hourly": dt.timedelta(minutes=30), "daily": dt.timedelta(hours=12),
               "weekly": dt.timedelta(days=3.5), "monthly": dt.timedelta(days=15)}


def _instant(value: dt.date | dt.datetime) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)


def _x(value: dt.date | dt.datetime) -> str:
    return value.isoformat()


def trend(points: list[TrendPoint], interval: str, previous: list[TrendPoint] | None = None,
          markers: Sequence[tuple[dt.datetime, str]] = ()) -> SafeString:
    """Views and conversions (counts, top) and revenue (dollars, its own small chart below) per period.

    ``markers``: (when, label) of changes to the campaign's settings, drawn as dotted vertical lines.

    The period still under way is shaded and its points dashed; the previous period of the same length
    can be overlaid (legend entries, hidden until clicked), aligned point by point.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.08)
    x = [_x(p.date) for p in points]
    partial = [p.partial for p in points]
    add_line_with_partial(fig, x=x, y=[p.totals.views for p in points], partial=partial, name="Views", color=BRAND,
                          row=1, col=1, hovertemplate="%{y:,} views<extra></extra>")
    add_line_with_partial(fig, x=x, y=[p.totals.conversions for p in points], partial=partial, name="Conversions",
                          color=WARN, row=1, col=1, hovertemplate="%{y:,} conversions<extra></extra>")
    fig.add_trace(go.Bar(x=x, y=[float(p.totals.revenue) for p in points], name="Revenue", marker_color=GOOD,
                         marker_opacity=[0.35 if p.partial else 0.8 for p in points],
                         hovertemplate="$%{y:,.2f} revenue<extra></extra>"), row=2, col=1)
    if previous:
        n = min(len(points), len(previous))
        before = [_x(p.date) for p in previous[:n]]
        for name, values, color in (("Views", [p.totals.views for p in previous], BRAND),
                                    ("Conversions", [p.totals.conversions for p in previous], WARN)):
            fig.add_trace(go.Scatter(
                x=x[:n], y=values[:n], customdata=before, name=f"{name}, previous period", mode="lines",
                line=dict(color=color, dash="dash", width=1), opacity=0.6, visible="legendonly",
                hovertemplate=f"%{{y:,}} {name.lower()} on %{{customdata}}<extra>previous period</extra>",
            ), row=1, col=1)
    if any(partial):
        first = points[partial.index(True)].date
        shade_partial(fig, x0=_x(_instant(first) - HALF_PERIOD[interval]),
                      x1=_x(_instant(points[-1].date) + HALF_PERIOD[interval]), label=PARTIAL_LABELS[interval])
    fig.update_layout(
        title=f"Performance trend ({interval}, UTC)",
        legend=dict(orientation="h", y=-0.14),
        hovermode="x unified",
        height=420,
        bargap=0.2,
    )
    fig.update_yaxes(title_text="views, conversions", rangemode="tozero", tickformat=",d", row=1, col=1)
    fig.update_yaxes(title_text="revenue ($)", rangemode="tozero", tickprefix="$", tickformat=",.2~f", nticks=3, row=2, col=1)
    for when, label in markers:
        x = when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")  # plotly.js reads naive times; the axis is UTC
        fig.add_shape(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1, line=dict(color=WARN, width=1, dash="dot"))
        fig.add_annotation(x=x, xref="x", y=1, yref="paper", text=label, showarrow=False, textangle=-90,
                           xanchor="right", yanchor="top", font=dict(size=10), hovertext=label)
    return embed(fig, div_id="chart-trend")


def segments(rows: list[SegmentRow], best: str | None = None) -> SafeString:
    """Conversion rate (conversions / views) per segment with its 95 % Wilson interval as error bars.

    Segments without views have no rate: they are left out (the table says "no views"), not drawn as 0.
    """
    rows = [r for r in rows if r.totals.views]
    names = [r.segment_name for r in rows]
    rates = [r.totals.conversion_rate * 100 for r in rows]
    cis = [r.totals.conversion_rate_ci for r in rows]
    fig = go.Figure(go.Bar(
        x=names, y=rates, name="Conversion rate",
        marker_color=[GOOD if name == best else BRAND for name in names],
        error_y=dict(type="data", symmetric=False,
                     array=[ci.high * 100 - rate for ci, rate in zip(cis, rates, strict=True)],
                     arrayminus=[rate - ci.low * 100 for ci, rate in zip(cis, rates, strict=True)]),
        customdata=[[r.users_count, float(r.totals.revenue), r.totals.views, ci.low * 100, ci.high * 100]
                    for r, ci in zip(rows, cis, strict=True)],
        hovertemplate="%{x}<br>conversion rate %{y:.2f}% of views (95% CI %{customdata[3]:.2f}–%{customdata[4]:.2f}%)"
                      "<br>views %{customdata[2]:,}<br>customer-days %{customdata[0]:,}"
                      "<br>revenue $%{customdata[1]:,.2f}<extra></extra>",
    ))
    fig.update_layout(title="Conversion rate by segment",
                      yaxis=dict(title="% of views (95% interval)", ticksuffix="%", rangemode="tozero"),
                      xaxis=dict(title="segment"))
    return embed(fig, div_id="chart-segments")


def funnel(totals: Totals) -> SafeString:
    """Sent -> opened -> viewed -> clicked -> converted, as counts with the share of sends."""
    stages = totals.funnel()
    sent = stages[0][1]
    shares = [f"{n / sent:.1%} of sent" if sent else "no sends" for _, n in stages]
    fig = go.Funnel(y=[s for s, _ in stages], x=[n for _, n in stages], customdata=shares,
                    texttemplate="%{x:,}<br>%{customdata}", textposition="auto",
                    hovertemplate="%{y}: %{x:,} (%{customdata})<extra></extra>",
                    marker=dict(color=[BRAND, "#5c7cfa", "#748ffc", "#91a7ff", GOOD]))
    figure = go.Figure(fig)
    figure.update_layout(title="Conversion funnel (% of sent)", yaxis=dict(title="stage"), xaxis=dict(title="events"))
    return embed(figure, div_id="chart-funnel")
