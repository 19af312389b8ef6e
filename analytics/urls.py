"""URL lists included by marketing_ai/urls.py (see its docstring)."""

from django.urls import path

from analytics import api, views
from marketing_ai.routing import Router, api_path

router = Router()
router.register("analytics/campaigns", api.CampaignAnalyticsViewSet, basename="analytics-campaign")

campaign_metrics = api.CampaignAnalyticsViewSet.as_view({"get": "metrics"})
campaign_segments = api.CampaignAnalyticsViewSet.as_view({"get": "segments"})
campaign_trends = api.CampaignAnalyticsViewSet.as_view({"get": "trends"})
portfolio = api.PortfolioView.as_view()

api_v1_patterns: list = [
    *router.urls,
    api_path("analytics/portfolio", portfolio, name="analytics-portfolio"),
]
seed_patterns: list = [
    api_path("analytics/campaign/<campaign_id>/metrics", campaign_metrics, name="seed-analytics-metrics"),
    api_path("analytics/campaign/<campaign_id>/segments", campaign_segments, name="seed-analytics-segments"),
    api_path("analytics/campaign/<campaign_id>/trends", campaign_trends, name="seed-analytics-trends"),
    api_path("analytics/portfolio", portfolio, name="seed-analytics-portfolio"),
]
page_patterns: list = [
    path("analytics/", views.portfolio_page, name="analytics-page"),
    path("analytics/campaign/", views.pick_campaign, name="analytics-pick-campaign"),
    path("analytics/campaign/<extid:campaign_id>/", views.campaign_page, name="analytics-campaign-page"),
    path("analytics/refresh", views.refresh, name="analytics-refresh"),
    path("analytics/alerts/", views.alerts_page, name="analytics-alerts"),
]
