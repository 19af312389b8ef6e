"""The overview page at ``/``: recent activity from real events and the latest job runs."""

from __future__ import annotations

import datetime as dt

import plotly.graph_objects as go
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from marketing_ai import charts, jobs, selectors
from marketing_ai.schedules import in_words

OVERVIEW_DAYS = 30
COLORS = ("#3b5bdb", "#7048e8", "#1098ad", "#f08c00", "#2f9e44", "#e03131")  # one per event type, in the funnel order


def events_chart(daily: selectors.DailyEventCounts) -> go.Figure:
    fig = go.Figure()
    x = [d.isoformat() for d in daily.days]
    today = [d == timezone.now().date() for d in daily.days]  # still under way: drawn dotted, shaded, labelled
    for i, (event_type, per_day) in enumerate(daily.counts.items()):
        charts.add_line_with_partial(fig, x=x, y=per_day, partial=today, name=event_type.replace("_", " "),
                                     color=COLORS[i % len(COLORS)], hovertemplate="%{y:,}")
    if any(today):
        last = dt.datetime.combine(daily.days[-1], dt.time(), tzinfo=dt.UTC)
        charts.shade_partial(fig, x0=(last - dt.timedelta(hours=12)).isoformat(),
                             x1=(last + dt.timedelta(hours=12)).isoformat(), label=charts.PARTIAL_LABELS["daily"])
    fig.update_layout(
        title=f"Events per day, last {len(daily.days)} days (UTC)",
        yaxis=dict(title="events per day", tickformat=",d", rangemode="tozero"),
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
        {"job": j, "schedule": in_words(j.schedule), "last": last_runs.get(j.name)}
        for j in sorted(jobs.REGISTRY.values(), key=lambda j: j.name)
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
