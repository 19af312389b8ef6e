"""The analytics dashboard pages: the portfolio at /analytics/, one campaign at /analytics/campaign/<id>/."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from analytics import charts, selectors
from analytics.models import CampaignTrendData
from analytics.selectors import ALLOWED_DAYS, INTERVALS, Period
from analytics.services import DAILY_METRICS
from marketing_ai.api import is_marketer
from marketing_ai.errors import InvalidInput, NotFound
from marketing_ai.throttles import page_throttle_scope
from marketing_ai.validation import external_id_problem
from optimizer import hub


def _period_and_interval(request: HttpRequest) -> tuple[Period, str]:
    """The page's range and interval; bad values show a message and fall back to the defaults."""
    try:
        period = Period.from_query(request.GET)
    except InvalidInput as exc:
        messages.error(request, f"Invalid range ({_reason(exc)}); showing the last {selectors.DEFAULT_DAYS} days.")
        period = Period.from_query({})
    try:
        interval = selectors.parse_interval(request.GET.get("interval"), period)
    except InvalidInput as exc:
        messages.error(request, f"Invalid interval ({_reason(exc)}); showing daily.")
        interval = "daily"
    return period, interval


def _reason(exc: InvalidInput) -> str:
    return "; ".join(f"{field}: {' '.join(map(str, reasons))}" for field, reasons in exc.fields.items())


def _links(request: HttpRequest, period: Period, interval: str, api_base: str, csv_paths: dict[str, str]) -> dict:
    def with_params(**params) -> str:
        return "?" + urlencode({k: v for k, v in params.items() if v is not None})

    range_query = {"days": period.days} if period.days else {"from": period.start.isoformat(), "to": period.end.isoformat()}
    # Hourly points cover only the last ANALYTICS_HOURLY_DAYS days: the links never ask for more.
    hourly = CampaignTrendData.Interval.HOURLY
    hourly_range = range_query if selectors.hourly_covers(period) else {"days": min(ALLOWED_DAYS)}

    def interval_for(days: int) -> str:
        covered = selectors.hourly_covers(Period.from_query({"days": str(days)}))
        return "daily" if interval == hourly and not covered else interval

    return {
        "ranges": [(n, with_params(days=n, interval=interval_for(n)), period.days == n) for n in ALLOWED_DAYS],
        "intervals": [(i, with_params(**(hourly_range if i == hourly else range_query), interval=i), i == interval)
                      for i in INTERVALS],
        "csv": [(label, f"{api_base}{p}{with_params(**range_query, format='csv', **extra)}")
                for label, (p, extra) in csv_paths.items()],
        "refresh": request.get_full_path(),
    }


KPI_CHANGES = ("views", "conversions", "conversion_rate", "revenue", "cost", "roi")


def _common(request: HttpRequest, period: Period, interval: str, campaign=None, markers=()) -> dict:
    from optimizer.services.recommendations import users_by_segment

    totals = selectors.totals(period, campaign)
    segment_rows = selectors.segments(period, campaign)
    best = selectors.best_segment(segment_rows)
    comparison = selectors.comparison(period, campaign)
    previous = Period(period.start - dt.timedelta(days=period.length), period.start - dt.timedelta(days=1))
    has_data = any(getattr(totals, name) for name in DAILY_METRICS)
    return {
        "period": period,
        "interval": interval,
        "hourly_days": settings.ANALYTICS_HOURLY_DAYS,
        "totals": totals,
        "has_data": has_data,
        "roi": totals.roi,
        "pct": {  # the conversion rate and its Wilson interval, in percent (undefined without views)
            "rate": totals.conversion_rate * 100,
            "low": totals.conversion_rate_ci.low * 100,
            "high": totals.conversion_rate_ci.high * 100,
        } if totals.views else None,
        "comparison": comparison,
        "changes": {name: comparison.change(name) for name in KPI_CHANGES} if comparison else {},
        "segments": segment_rows,
        "segment_sizes": users_by_segment(),
        "segments_with_data": any(r.totals.views or r.totals.conversions or r.users_count for r in segment_rows),
        "best_segment": best,
        "trend_chart": charts.trend(selectors.trends(period, interval, campaign), interval, markers=markers, previous=(
            selectors.trends(previous, interval, campaign)
            if interval != CampaignTrendData.Interval.HOURLY or selectors.hourly_covers(previous) else None
        )) if has_data else "",
        "segment_chart": charts.segments(segment_rows, best.row.segment_name if best else None) if best else "",
        "funnel_chart": charts.funnel(totals) if has_data else "",
        "choices": selectors.campaign_choices(),
        "last_run": selectors.last_aggregation(),
        "can_refresh": is_marketer(request.user),
    }


@login_required
def portfolio_page(request: HttpRequest) -> HttpResponse:
    period, interval = _period_and_interval(request)
    context = _common(request, period, interval)
    context["portfolio"] = selectors.portfolio(period)
    context["links"] = _links(request, period, interval, "/api/analytics/", {"Portfolio CSV": ("portfolio", {})})
    return render(request, "analytics/portfolio.html", context)


@login_required
def campaign_page(request: HttpRequest, campaign_id: str) -> HttpResponse:
    try:
        campaign = selectors.campaign_by_external_id(campaign_id)
    except NotFound:
        messages.error(request, f"No campaign with campaign_id {campaign_id!r}.")
        return redirect("analytics-page")
    period, interval = _period_and_interval(request)
    hub_context = hub.hub_context(request, campaign)  # configuration, A/B tests, proposals, change log
    markers = hub.trend_markers(hub_context["hub_changes"], period.start, period.end)
    context = _common(request, period, interval, campaign, markers)
    context.update(hub_context)
    context["campaign"] = campaign
    from optimizer import selectors as optimizer_selectors
    from optimizer.services.recommendations import LOOKBACK_DAYS

    context["optimizer_segments"] = optimizer_selectors.segment_answer(campaign)  # what /api/optimize/segments/<id> answers
    context["optimizer_lookback_days"] = LOOKBACK_DAYS
    base = f"/api/analytics/campaign/{campaign.campaign_id}/"
    # An id stored before the id alphabet existed has no API address: no export links until
    # `manage.py fix_external_ids` replaces it (the page itself is addressed by the `extid` converter).
    context["api_addressable"] = external_id_problem(campaign.campaign_id) is None
    if not context["api_addressable"]:
        messages.warning(request, f"The id {campaign.campaign_id!r} is outside the id alphabet: the API and the CSV "
                                  "exports cannot address it until an operator runs manage.py fix_external_ids.")
    context["links"] = _links(request, period, interval, base, {
        "Metrics CSV": ("metrics", {}),
        "Segments CSV": ("segments", {}),
        "Trend CSV": ("trends", {"interval": interval}),
    } if context["api_addressable"] else {})
    return render(request, "analytics/campaign.html", context)


@login_required
def pick_campaign(request: HttpRequest) -> HttpResponse:
    """The campaign picker's GET form lands here: go to that campaign's page, keeping the range."""
    campaign_id = request.GET.get("campaign_id", "").strip()
    if not campaign_id:
        return redirect("analytics-page")
    keep = {k: request.GET[k] for k in ("days", "from", "to", "interval") if request.GET.get(k)}
    url = reverse("analytics-campaign-page", args=[campaign_id])
    return redirect(url + ("?" + urlencode(keep) if keep else ""))


@page_throttle_scope("jobs")  # runs a job: the API's job-run rate limit
@login_required
@require_POST
def refresh(request: HttpRequest) -> HttpResponse:
    """Marketers may re-run the aggregation of the recent days now (the job's default window: about a
    second per day at 10M events, so it runs in the request, recorded in job_runs like any run)."""
    if not is_marketer(request.user):
        raise PermissionDenied("Re-aggregating needs the 'marketer' role.")
    from marketing_ai import jobs

    record = jobs.run("daily_analytics", trigger=f"dashboard:{request.user.get_username()}", raise_errors=False)
    if record.status == record.Status.SUCCEEDED:
        messages.success(request, f"Analytics re-aggregated ({record.arguments['start']} to {record.arguments['end']}): "
                                  f"{record.rows_written} rows.")
    elif record.status == record.Status.SKIPPED:
        messages.warning(request, "An aggregation is already running; reload in a moment.")
    else:
        messages.error(request, "Re-aggregation failed; the error is recorded in the job runs.")
    target = request.POST.get("next", "")
    if not target.startswith("/") or not url_has_allowed_host_and_scheme(  # "/": redirect() takes other text for a view name
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        target = reverse("analytics-page")
    return redirect(target)


@login_required
def alerts_page(request: HttpRequest) -> HttpResponse:
    """Subscribe to e-mail alerts: one set of kinds for every campaign, or for one campaign."""
    from django.core.exceptions import ValidationError as FieldError
    from django.core.validators import validate_email

    from analytics import alerts
    from analytics.models import AlertSent, AlertSubscription

    user = request.user
    if request.method == "POST":
        email = request.POST.get("email", "").strip()
        campaign_id = request.POST.get("campaign_id", "").strip()
        try:
            validate_email(email)
            campaign = selectors.campaign_by_external_id(campaign_id) if campaign_id else None
            kinds = set(request.POST.getlist("kinds"))
            chosen = alerts.subscriptions_set(user=user, kinds=kinds, campaign=campaign)
        except FieldError:
            messages.error(request, f"{email!r} is not an e-mail address: alerts need one.")
        except (NotFound, ValueError) as exc:
            messages.error(request, str(exc))
        else:
            if user.email != email:
                user.email = email
                user.save(update_fields=["email"])
            scope = campaign.name if campaign else "every campaign"
            what = ", ".join(str(AlertSubscription.Kind(s.kind).label) for s in chosen) or "nothing"
            messages.success(request, f"Alerts for {scope} to {email}: {what}.")
        return redirect("analytics-alerts")
    subscriptions = AlertSubscription.objects.filter(user=user).select_related("campaign").order_by("campaign__name", "kind")
    return render(request, "analytics/alerts.html", {
        "kinds": AlertSubscription.Kind.choices,
        "every_campaign": {s.kind for s in subscriptions if s.campaign_id is None},
        "subscriptions": subscriptions,
        "choices": selectors.campaign_choices(),
        "sent": AlertSent.objects.filter(subscription__user=user).select_related("subscription")[:20],
        "usual_days": alerts.USUAL_DAYS,
        "min_days": alerts.MIN_HISTORY_DAYS,
    })
