"""Analytics API: thin views over ``analytics.selectors``, answering JSON or (``?format=csv``) CSV.

v1: ``/api/v1/analytics/campaigns/{campaign_id}/metrics|segments|trends`` and ``/api/v1/analytics/portfolio``;
the seed's paths (``/api/analytics/campaign/{campaign_id}/...``, ``/api/analytics/portfolio``) are
aliases of the same views (see urls.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from analytics import selectors
from analytics.selectors import Period, Totals
from marketing_ai.api import BadRequest
from marketing_ai.exports import csv_response

FORMATS = ("json", "csv")
# Answers are cached under the aggregates' version (a new aggregation run is seen at once); the TTL
# bounds how long a campaign's name or status change (which needs no run) may take to show.
CACHE_SECONDS = 60


class Answer:
    """A payload and its JSON, each computed (and cached) only when asked for."""

    def __init__(self, build: Callable[[], Any], cache_key: str | None) -> None:
        self._build, self._key = build, cache_key

    def _cached(self, suffix: str, make: Callable[[], Any]) -> Any:
        if self._key is None:
            return make()
        value = cache.get(self._key + suffix)
        if value is None:
            value = make()
            cache.set(self._key + suffix, value, CACHE_SECONDS)
        return value

    @property
    def data(self) -> Any:
        if not hasattr(self, "_data"):
            self._data = self._cached(":data", self._build)
        return self._data

    @property
    def json(self) -> bytes:
        # Rendered bytes cached apart from the data: a JSON hit unpickles bytes, not a dict of Decimals.
        return self._cached(":json", lambda: JSONRenderer().render(self.data))


def cached(kind: str, key: tuple, build: Callable[[], Any]) -> Answer:
    """``build()``'s result (and its JSON), cached per aggregate version, ``kind`` and ``key`` (resolved period etc.)."""
    version = selectors.data_version()
    if version is None:  # nothing aggregated yet: nothing worth caching
        return Answer(build, None)
    return Answer(build, "analytics:" + hashlib.sha1(repr((version, kind, *key)).encode()).hexdigest())


# --- Output shapes (one function per shape; JSON and CSV share it) ---

def totals_fields(t: Totals) -> dict[str, Any]:
    roi, ci = t.roi, t.conversion_rate_ci
    return {
        "sends": t.sends,
        "opens": t.opens,
        "views": t.views,
        "clicks": t.clicks,
        "conversions": t.conversions,
        "conversion_rate": round(t.conversion_rate, 6),
        "conversion_rate_ci": {"low": round(ci.low, 6), "high": round(ci.high, 6), "confidence": 0.95},
        "revenue": t.revenue,
        "cost": t.cost,
        "profit": t.profit,
        "roi": roi.percentage,
        "roi_percentage": roi.percentage,
        "roi_reason": roi.reason,
    }


def period_fields(period: Period) -> dict[str, Any]:
    return {"from": period.start, "to": period.end, "days": period.length}


def metrics_payload(campaign, period: Period) -> dict[str, Any]:
    return {
        "campaign_id": campaign.campaign_id,
        "name": campaign.name,
        "status": campaign.status,
        "period": period_fields(period),
        **totals_fields(selectors.totals(period, campaign)),
    }


NOT_PER_SEGMENT = ("sends", "opens", "clicks")  # the segment table does not keep them


def segment_payload(row: selectors.SegmentRow) -> dict[str, Any]:
    fields = {k: v for k, v in totals_fields(row.totals).items() if k not in NOT_PER_SEGMENT}
    return {"segment_name": row.segment_name, "users_count": row.users_count, **fields}


def trend_payload(point: selectors.TrendPoint) -> dict[str, Any]:
    t = point.totals
    return {
        "date": point.date,
        "views": t.views,
        "conversions": t.conversions,
        "revenue": t.revenue,
        "cost": t.cost,
        "sends": t.sends,
        "opens": t.opens,
        "clicks": t.clicks,
        "conversion_rate": round(t.conversion_rate, 6),
    }


def portfolio_payload(p: selectors.Portfolio, period: Period) -> dict[str, Any]:
    overall = totals_fields(p.totals)
    return {
        "period": period_fields(period),
        "total_campaigns": p.total_campaigns,
        "active_campaigns": p.active_campaigns,
        "total_views": p.totals.views,
        "total_conversions": p.totals.conversions,
        "total_revenue": p.totals.revenue,
        "total_cost": p.totals.cost,
        "overall_conversion_rate": overall["conversion_rate"],
        "overall_conversion_rate_ci": overall["conversion_rate_ci"],
        "overall_roi": overall["roi"],
        "overall_roi_reason": overall["roi_reason"],
        "campaigns": [
            {"campaign_id": c.campaign_id, "name": c.name, "status": c.status, **totals_fields(c.totals)} for c in p.campaigns
        ],
    }


# --- JSON or CSV ---

def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become ``parent_child`` columns (``conversion_rate_ci_low``)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}_"))
        elif not isinstance(value, list):
            out[f"{prefix}{key}"] = value
    return out


def response_format(request: Request) -> str:
    fmt = (request.query_params.get("format") or "json").lower()
    if fmt not in FORMATS:
        raise BadRequest({"format": [f"must be one of {', '.join(FORMATS)} (got {fmt!r})"]})
    return fmt


def answer(request: Request, hit: Answer, *, csv_list: str | None = None, filename: str) -> Any:
    """JSON by default (an HttpResponse of the cached bytes); ``?format=csv``: the same rows as a CSV attachment."""
    if response_format(request) == "json":
        return HttpResponse(hit.json, content_type="application/json")
    data = hit.data
    # CSV rows: the payload's list ``csv_list`` if named (the portfolio's campaigns), else the payload itself.
    rows = [flatten(r) for r in (data[csv_list] if csv_list else (data if isinstance(data, list) else [data]))]
    return csv_response(rows, list(rows[0]) if rows else [], filename=filename)


def _filename(kind: str, period: Period, campaign_id: str | None = None) -> str:
    who = f"{campaign_id}_" if campaign_id else ""
    return f"analytics_{kind}_{who}{period.start.isoformat()}_{period.end.isoformat()}"


# --- Schema (documentation of the shapes above) ---

class CIOut(serializers.Serializer):
    low = serializers.FloatField()
    high = serializers.FloatField()
    confidence = serializers.FloatField()


class PeriodOut(serializers.Serializer):
    days = serializers.IntegerField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField()
        fields["to"] = serializers.DateField()
        return fields


class TotalsOut(serializers.Serializer):
    sends = serializers.IntegerField()
    opens = serializers.IntegerField()
    views = serializers.IntegerField()
    clicks = serializers.IntegerField()
    conversions = serializers.IntegerField()
    conversion_rate = serializers.FloatField(help_text="conversions / views; 0 when there are no views")
    conversion_rate_ci = CIOut(help_text="95 % Wilson interval of the conversion rate")
    revenue = serializers.DecimalField(max_digits=16, decimal_places=2, coerce_to_string=False)
    cost = serializers.DecimalField(max_digits=16, decimal_places=2, coerce_to_string=False)
    profit = serializers.DecimalField(max_digits=16, decimal_places=2, coerce_to_string=False)
    roi = serializers.FloatField(allow_null=True, help_text="(revenue - cost) / cost x 100; null when cost is 0")
    roi_percentage = serializers.FloatField(allow_null=True, help_text="same as roi (the seed's name)")
    roi_reason = serializers.CharField(allow_null=True, help_text="why roi is null")


class MetricsOut(TotalsOut):
    campaign_id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    period = PeriodOut()


class SegmentOut(TotalsOut):
    segment_name = serializers.CharField()
    users_count = serializers.IntegerField(help_text="distinct customers active each day, summed over the days")
    sends = opens = clicks = None  # not kept per segment


class TrendOut(serializers.Serializer):
    date = serializers.DateField(help_text="first day of the period (weeks start on Monday)")
    views = serializers.IntegerField()
    conversions = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=16, decimal_places=2, coerce_to_string=False)
    cost = serializers.DecimalField(max_digits=16, decimal_places=2, coerce_to_string=False)
    sends = serializers.IntegerField()
    opens = serializers.IntegerField()
    clicks = serializers.IntegerField()
    conversion_rate = serializers.FloatField()


class PortfolioCampaignOut(TotalsOut):
    campaign_id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()


class PortfolioOut(serializers.Serializer):
    period = PeriodOut()
    total_campaigns = serializers.IntegerField()
    active_campaigns = serializers.IntegerField()
    total_views = serializers.IntegerField()
    total_conversions = serializers.IntegerField()
    total_revenue = serializers.DecimalField(max_digits=16, decimal_places=2, coerce_to_string=False)
    total_cost = serializers.DecimalField(max_digits=16, decimal_places=2, coerce_to_string=False)
    overall_conversion_rate = serializers.FloatField()
    overall_conversion_rate_ci = CIOut()
    overall_roi = serializers.FloatField(allow_null=True)
    overall_roi_reason = serializers.CharField(allow_null=True)
    campaigns = PortfolioCampaignOut(many=True)


RANGE_PARAMS = [
    OpenApiParameter("days", OpenApiTypes.INT, enum=list(selectors.ALLOWED_DAYS),
                     description="last N days ending today (UTC); default 30"),
    # YYYY-MM-DD, or empty (= not given: the dashboard's range form sends empty fields).
    OpenApiParameter("from", {"type": "string", "pattern": r"^(\d{4}-\d{2}-\d{2})?$"},
                     description="first day (inclusive, YYYY-MM-DD), instead of days"),
    OpenApiParameter("to", {"type": "string", "pattern": r"^(\d{4}-\d{2}-\d{2})?$"},
                     description="last day (inclusive, YYYY-MM-DD); default today"),
    OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), description="csv for a CSV attachment"),
]


# --- Views ---

class ValidatesFormat:
    """Reject a bad ``?format=`` before any lookup, like the range parameters."""

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        response_format(request)


class CampaignAnalyticsViewSet(ValidatesFormat, viewsets.ViewSet):
    """One campaign's analytics over a time range, read from the aggregate tables."""

    lookup_field = "campaign_id"
    lookup_value_regex = "[^/]+"

    @extend_schema(parameters=RANGE_PARAMS, responses=MetricsOut)
    @action(detail=True, methods=["get"])
    def metrics(self, request: Request, campaign_id: str) -> Any:
        period = Period.from_query(request.query_params)
        data = cached("metrics", (campaign_id, period), lambda: metrics_payload(
            selectors.campaign_by_external_id(campaign_id), period))
        return answer(request, data, filename=_filename("metrics", period, campaign_id))

    @extend_schema(parameters=RANGE_PARAMS, responses=SegmentOut(many=True))
    @action(detail=True, methods=["get"])
    def segments(self, request: Request, campaign_id: str) -> Any:
        period = Period.from_query(request.query_params)
        rows = cached("segments", (campaign_id, period), lambda: [
            segment_payload(r) for r in selectors.segments(period, selectors.campaign_by_external_id(campaign_id))])
        return answer(request, rows, filename=_filename("segments", period, campaign_id))

    @extend_schema(
        parameters=[*RANGE_PARAMS, OpenApiParameter("interval", OpenApiTypes.STR, enum=list(selectors.INTERVALS))],
        responses=TrendOut(many=True),
    )
    @action(detail=True, methods=["get"])
    def trends(self, request: Request, campaign_id: str) -> Any:
        period = Period.from_query(request.query_params)
        interval = selectors.parse_interval(request.query_params.get("interval"), period)
        rows = cached("trends", (campaign_id, period, interval), lambda: [
            trend_payload(p) for p in selectors.trends(period, interval, selectors.campaign_by_external_id(campaign_id))])
        return answer(request, rows, filename=_filename(f"trends_{interval}", period, campaign_id))


class PortfolioView(ValidatesFormat, APIView):
    """Every campaign with its status and the portfolio's totals over a time range."""

    @extend_schema(parameters=RANGE_PARAMS, responses=PortfolioOut)
    def get(self, request: Request) -> Any:
        period = Period.from_query(request.query_params)
        data = cached("portfolio", (period,), lambda: portfolio_payload(selectors.portfolio(period), period))
        return answer(request, data, csv_list="campaigns", filename=_filename("portfolio", period))
