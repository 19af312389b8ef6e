"""Admin pages for the shared domain.

Events run into the millions: their page uses raw id widgets for foreign keys, skips the full
count, filters on indexed columns, and drills down by date.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from campaigns.models import Campaign, Customer, Event, Merchant, Offer, Segment


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "customer_count"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_customers=Count("customers"))

    @admin.display(description="customers", ordering="_customers")
    def customer_count(self, obj: Segment) -> int:
        return obj._customers


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ["merchant_id", "name", "category", "created_at"]
    list_filter = ["category"]
    search_fields = ["merchant_id", "name"]
    ordering = ["merchant_id"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["customer_id", "segment", "timezone", "signup_date", "created_at"]
    list_filter = ["segment", "signup_date"]
    list_select_related = ["segment"]
    search_fields = ["=customer_id"]  # exact match uses the unique index on millions of rows
    show_full_result_count = False


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    list_display = ["offer_id", "kind", "value", "description"]
    list_filter = ["kind"]
    search_fields = ["offer_id", "description"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = [
        "campaign_id", "name", "merchant", "status", "channel", "start_date", "end_date", "budget",
        "current_offer", "send_time", "send_time_policy",
    ]
    list_filter = ["status", "channel", "target_segments", "start_date"]
    list_select_related = ["merchant", "current_offer"]
    search_fields = ["campaign_id", "name", "merchant__merchant_id", "merchant__name"]
    autocomplete_fields = ["merchant", "current_offer"]
    filter_horizontal = ["target_segments"]
    date_hierarchy = "start_date"


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "type", "occurred_at", "campaign", "customer", "merchant", "variant", "amount"]
    list_filter = ["type", "occurred_at"]
    list_select_related = ["campaign", "customer", "merchant"]
    search_fields = ["=event_id", "=campaign__campaign_id", "=customer__customer_id"]
    raw_id_fields = ["customer", "campaign", "merchant", "offer"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    readonly_fields = ["received_at"]
    list_per_page = 50
