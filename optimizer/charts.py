"""Plotly figures for the optimisation page, built from selector output."""

from __future__ import annotations

from collections import defaultdict

import plotly.graph_objects as go
from django.utils.html import format_html
from django.utils.safestring import SafeString
from plotly.subplots import make_subplots

from marketing_ai.charts import embed
from optimizer import recommend
from optimizer.selectors import WEEKDAYS, Heatmap


def open_heatmap(heatmap: Heatmap) -> SafeString:
    """Opens by weekday x local hour, the recommended (population) hour outlined."""
    fig = go.Figure(
        go.Heatmap(
            z=heatmap.counts.tolist(),
            x=[f"{h:02d}" for h in range(24)],
            y=list(WEEKDAYS),
            colorscale="Blues",
            colorbar=dict(title="opens"),
            hovertemplate="%{y} %{x}:00 local: %{z} opens<extra></extra>",
        )
    )
    h = heatmap.recommended_hour
    fig.add_shape(type="rect", x0=h - 0.5, x1=h + 0.5, y0=-0.5, y1=6.5, line=dict(color="#e03131", width=3))
    # Above the outline (the weekday axis is reversed: Monday, y=0, is at the top), not over Sunday's cells.
    fig.add_annotation(x=h, y=-0.5, yanchor="bottom", yshift=2, text=f"recommended {h:02d}:00", showarrow=False,
                       font=dict(color="#e03131"))
    fig.update_layout(title="Opens by weekday and local hour", xaxis_title="local hour (customer's time zone)",
                      yaxis=dict(autorange="reversed"))
    # What the outline is (under the chart, where it wraps on a phone): the fallback hour for customers
    # without enough history of their own.
    caption = (f"Outlined: {h:02d}:00 local, the most common personal best send hour; customers without enough "
               "opens of their own are sent at it." if heatmap.total_opens else "No opens yet.")
    return embed(fig, div_id="open-heatmap") + format_html('<p class="muted small" data-caption>{}</p>', caption)


def offer_response_figure(curves: dict[str, recommend.OfferRecommendation]) -> go.Figure:
    """Per segment: observed conversion rate (bars), the model's expected profit per send with its 90 % interval
    (line), and the offer it recommends (star) - the posterior and the offer the proposals use."""
    segments = list(curves)
    titles = [
        f"{s}: {curves[s].recommended_offer:g}%" + ("" if curves[s].decided else " (not decided)") for s in segments
    ] or ["no offer data yet"]
    fig = make_subplots(rows=1, cols=max(len(segments), 1), subplot_titles=titles, specs=[[{"secondary_y": True}] * max(len(segments), 1)])
    for i, segment in enumerate(segments, start=1):
        rec = curves[segment]
        x = [f"{s.offer_value:g}%" for s in rec.scores]
        fig.add_trace(
            go.Bar(x=x, y=[(s.observed_rate or 0) * 100 for s in rec.scores], name="conversion rate (%)", marker_color="#91a7ff", showlegend=i == 1),
            row=1, col=i, secondary_y=False,
        )
        fig.add_trace(
            go.Scatter(
                x=x, y=[s.expected_profit for s in rec.scores], name="expected profit / send (90 % interval)", mode="lines+markers",
                line=dict(color="#2f9e44"), showlegend=i == 1,
                error_y=dict(
                    type="data", symmetric=False,
                    array=[s.profit_high - s.expected_profit for s in rec.scores],
                    arrayminus=[s.expected_profit - s.profit_low for s in rec.scores],
                ),
                customdata=[s.prob_best for s in rec.scores],
                hovertemplate="%{x}: %{y:.3f} per send, P(best) %{customdata:.0%}<extra></extra>",
            ),
            row=1, col=i, secondary_y=True,
        )
        best = next(s for s in rec.scores if s.offer_value == rec.recommended_offer)
        fig.add_trace(
            go.Scatter(
                x=[f"{best.offer_value:g}%"], y=[best.expected_profit], mode="markers", name="recommended",
                marker=dict(symbol="star", size=16, color="#e03131" if rec.decided else "#adb5bd"), showlegend=i == 1,
            ),
            row=1, col=i, secondary_y=True,
        )
    fig.update_layout(title="Offer response by segment (grey star: not decided yet)", legend=dict(orientation="h", y=-0.2), height=360)
    # Units on every axis: the discount on x, the observed rate (bars) left, the profit per send (line) right.
    fig.update_xaxes(title_text="discount (% off)")
    fig.update_yaxes(title_text="conversion rate (% of sends)", ticksuffix="%", rangemode="tozero", secondary_y=False, col=1)
    fig.update_yaxes(title_text="expected profit per send ($)", tickprefix="$", secondary_y=True, col=max(len(segments), 1))
    return fig


def offer_response(curves: dict[str, recommend.OfferRecommendation]) -> SafeString:
    return embed(offer_response_figure(curves), div_id="offer-response")


def model_metrics(models) -> SafeString:
    """Holdout metric of every version, one small chart per model type (each metric on its own axis:
    ROC AUC and log loss do not share a scale); active versions ringed."""
    by_type = defaultdict(list)
    for m in models:
        if m.accuracy is not None:
            by_type[m.model_type].append(m)
    types = sorted(by_type)
    titles = [f"{t}: {by_type[t][-1].primary_metric or 'metric'}" for t in types] or ["no model trained yet"]
    cols = min(max(len(types), 1), 2)  # two panels a row: still readable on a phone
    rows = max(1, -(-len(types) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.18, vertical_spacing=0.5 / rows)
    for i, model_type in enumerate(types):
        row, col = i // cols + 1, i % cols + 1
        versions = by_type[model_type]
        fig.add_trace(
            go.Scatter(
                x=[v.version for v in versions],
                y=[v.accuracy for v in versions],
                mode="lines+markers",
                name=model_type,
                showlegend=False,
                marker=dict(size=[14 if v.is_active else 7 for v in versions], line=dict(width=[2 if v.is_active else 0 for v in versions], color="#111")),
                hovertemplate="v%{x}: %{y:.4f}<extra>" + model_type + "</extra>",
            ),
            row=row, col=col,
        )
        fig.update_xaxes(title_text="version", dtick=1, row=row, col=col)
        fig.update_yaxes(title_text=versions[-1].primary_metric or "metric", row=row, col=col)
    # The card's heading names the chart; each panel names its metric.
    fig.update_layout(margin=dict(t=48), height=max(320, 230 * rows))
    return embed(fig, div_id="model-metrics")
