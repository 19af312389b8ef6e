from django.contrib import admin

from analytics.models import CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData


class ReadOnlyAggregate(admin.ModelAdmin):
    """Aggregates are written by the daily_analytics job only: the admin shows them, never edits them."""

    date_hierarchy = "date"
    list_select_related = ("campaign",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CampaignAnalyticsDaily)
class CampaignAnalyticsDailyAdmin(ReadOnlyAggregate):
    list_display = ("campaign", "date", "sends", "opens", "views", "clicks", "conversions", "revenue", "cost", "computed_at")
    list_filter = ("campaign__status",)
    search_fields = ("campaign__campaign_id", "campaign__name")


@admin.register(CampaignSegmentAnalytics)
class CampaignSegmentAnalyticsAdmin(ReadOnlyAggregate):
    list_display = ("campaign", "segment", "date", "users", "views", "conversions", "revenue", "cost")
    list_filter = ("segment",)
    list_select_related = ("campaign", "segment")
    search_fields = ("campaign__campaign_id", "campaign__name")


@admin.register(CampaignTrendData)
class CampaignTrendDataAdmin(ReadOnlyAggregate):
    date_hierarchy = "period_start"
    list_display = ("campaign", "interval", "period_start", "metric_type", "value")
    list_filter = ("interval", "metric_type")
    search_fields = ("campaign__campaign_id", "campaign__name")
