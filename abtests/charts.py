"""Plotly figures for the A/B testing page, built from selector output."""

from __future__ import annotations

import plotly.graph_objects as go
from django.utils.safestring import SafeString

from analytics.metrics import wilson_interval
from marketing_ai.charts import embed


def variant_rates(status: dict, *, div_id: str | None = None) -> SafeString:
    """Conversion rate per variant with its Wilson interval (at the test's confidence level) as error bars."""
    level = status["confidence_level"]
    names, rates, up, down = [], [], [], []
    for v in status["variants"]:
        interval = wilson_interval(v["conversions"], v["users"], level)
        rate = 100.0 * v["conversion_rate"]
        names.append(v["name"])
        rates.append(rate)
        up.append(100.0 * interval.high - rate)
        down.append(rate - 100.0 * interval.low)
    fig = go.Figure(go.Bar(
        x=names, y=rates, marker_color=["#868e96"] + ["#3b5bdb"] * (len(names) - 1),
        error_y=dict(type="data", array=up, arrayminus=down, visible=True, color="#1d2330"),
        hovertemplate="%{x}: %{y:.2f}%<extra></extra>",
    ))
    fig.update_layout(title=f"Conversion rate by variant ({status['confidence_percent']} interval)",
                      yaxis=dict(title="%", rangemode="tozero"), height=260, showlegend=False)
    return embed(fig, div_id=div_id)
