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


PALETTE = ["#868e96", "#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#1098ad", "#f08c00", "#c2255c", "#5c940d", "#495057"]


def lift_over_time(over_time: dict, *, div_id: str | None = None, title: str = "Cumulative lift by day") -> SafeString:
    """Each treatment's cumulative lift by day with its interval as a band; days with a sample-ratio
    mismatch are marked, since their lift cannot be trusted."""
    days = over_time["days"]
    dates = [d["date"] for d in days]
    fig = go.Figure()
    names = over_time["variants"][1:]
    for k, name in enumerate(names):
        colour = PALETTE[(k + 1) % len(PALETTE)]
        lift = [d["treatments"][k]["lift"] if len(d["treatments"]) > k else None for d in days]
        low = [d["treatments"][k]["ci_low"] if len(d["treatments"]) > k else None for d in days]
        high = [d["treatments"][k]["ci_high"] if len(d["treatments"]) > k else None for d in days]
        fig.add_trace(go.Scatter(x=dates, y=high, mode="lines", line=dict(width=0), showlegend=False,
                                 hoverinfo="skip", legendgroup=name))
        fig.add_trace(go.Scatter(x=dates, y=low, mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor=_translucent(colour), showlegend=False, hoverinfo="skip", legendgroup=name))
        fig.add_trace(go.Scatter(x=dates, y=lift, mode="lines+markers", name=f"{name} vs {over_time['variants'][0]}",
                                 line=dict(color=colour), legendgroup=name,
                                 customdata=list(zip(low, high, strict=True)),
                                 hovertemplate="%{x}: %{y:+.1f}% [%{customdata[0]:+.1f}, %{customdata[1]:+.1f}]<extra></extra>"))
    srm_days = [d["date"] for d in days if d.get("srm_detected")]
    if srm_days:
        fig.add_trace(go.Scatter(x=srm_days, y=[0] * len(srm_days), mode="markers", name="sample ratio mismatch",
                                 marker=dict(symbol="x", size=10, color="#c92a2a")))
    fig.add_hline(y=0, line=dict(color="#1d2330", width=1, dash="dot"))
    level = f"{over_time['confidence_level']:.1%}".replace(".0%", "%")
    fig.update_layout(title=f"{title} ({level} interval)", yaxis=dict(title="lift, %"), height=300,
                      legend=dict(orientation="h", y=-0.2))
    return embed(fig, div_id=div_id)


def metric_lift_over_time(over_time: dict, metric: dict, *, div_id: str | None = None) -> SafeString:
    """One secondary metric or guardrail's cumulative lift by day (the same chart as the goal's)."""
    series = {"variants": over_time["variants"], "confidence_level": over_time["confidence_level"],
              "days": metric["days"]}
    return lift_over_time(series, div_id=div_id, title=f"{metric['label'].capitalize()} ({metric['role']}): lift by day")


def users_over_time(over_time: dict, *, div_id: str | None = None) -> SafeString:
    """Cumulative users per variant by day, with each day's sample-ratio p-value in the hover."""
    days = over_time["days"]
    dates = [d["date"] for d in days]
    srm = [d["srm_p_value"] for d in days]
    fig = go.Figure()
    for i, name in enumerate(over_time["variants"]):
        fig.add_trace(go.Scatter(x=dates, y=[d["users"][i] for d in days], mode="lines", name=name,
                                 line=dict(color=PALETTE[i % len(PALETTE)]), customdata=srm,
                                 hovertemplate="%{x}: %{y:,} users (SRM p = %{customdata:.2g})<extra></extra>"))
    fig.update_layout(title="Users per variant by day (cumulative)", yaxis=dict(title="users", rangemode="tozero"),
                      height=260, legend=dict(orientation="h", y=-0.25))
    return embed(fig, div_id=div_id)


def _translucent(hex_colour: str, alpha: float = 0.18) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
