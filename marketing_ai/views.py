"""The overview page at ``/``: recent activity from real events and the latest job runs."""

from __future__ import annotations

import plotly.graph_objects as go
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from marketing_ai import charts, jobs, selectors

OVERVIEW_DAYS = 30


def events_chart(daily: selectors.DailyEventCounts) -> go.Figure:
    fig = go.Figure()
    for event_type, per_day in daily.counts.items():
        fig.add_trace(go.Scatter(x=daily.days, y=per_day, mode="lines", name=event_type.replace("_", " ")))
    if not daily.counts:  # keep the dated axis so an empty period reads as "zero", not as a broken chart
        fig.add_trace(go.Scatter(x=daily.days, y=[0] * len(daily.days), mode="lines", name="no events"))
        fig.update_yaxes(range=[0, 1])
    fig.update_layout(
        title=f"Events per day, last {len(daily.days)} days (UTC)",
        yaxis_title="events",
        legend=dict(orientation="h", y=-0.2),
        hovermode="x unified",
    )
    return fig


@login_required
@require_GET
def home(request):
    daily = selectors.events_per_day_by_type(days=OVERVIEW_DAYS)
    last_runs = selectors.last_run_per_job(jobs.REGISTRY)
    registered = [
        {"job": j, "last": last_runs.get(j.name)} for j in sorted(jobs.REGISTRY.values(), key=lambda j: j.name)
    ]
    return render(
        request,
        "home.html",
        {
            "daily": daily,
            "events_chart": charts.embed(events_chart(daily), div_id="events-per-day"),
            "recent_runs": selectors.latest_job_runs(limit=10),
            "registered": registered,
        },
    )
