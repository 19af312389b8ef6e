"""Admin pages for the shared domain.

Events run into the millions: their page uses raw id widgets for foreign keys, skips the full
count, filters on indexed columns, and drills down by date. Events are read-only facts; campaign
changes go through ``campaigns.services`` like the API's.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from campaigns import configuration
from campaigns.models import Campaign, CampaignChange, CampaignSegmentOffer, Customer, Event, Merchant, Offer, Segment
from marketing_ai.admin import FactAdmin
from marketing_ai.admin_delete import CountProtectedOnDelete


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


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class SegmentOfferInline(ReadOnlyInline):
    """Shown, not edited here: per-segment offers change through the API or an applied recommendation (logged)."""

    model = CampaignSegmentOffer
    fields = ["segment", "offer", "updated_at"]
    verbose_name_plural = "offers per segment (the default is the current offer; change through the API or a recommendation)"


class ChangeInline(ReadOnlyInline):
    model = CampaignChange
    fk_name = "campaign"
    fields = ["changed_at", "changed_by", "field", "segment", "old_value", "new_value", "source", "note"]
    ordering = ["-changed_at", "-id"]
    max_num = 0
    verbose_name_plural = "change log (newest first)"


@admin.register(Campaign)
class CampaignAdmin(CountProtectedOnDelete, admin.ModelAdmin):
    """Edits of the settings (offer, send time and its policy, segments, promoted merchants, status) are logged as source "admin"."""

    protected_hint = "Events and A/B tests are kept as facts: end the campaign (status completed) instead of deleting it."
    list_display = [
        "campaign_id", "name", "merchant", "status", "channel", "start_date", "end_date", "budget",
        "current_offer", "send_time", "send_time_policy",
    ]
    list_filter = ["status", "channel", "target_segments", "start_date"]
    list_select_related = ["merchant", "current_offer"]
    search_fields = ["campaign_id", "name", "merchant__merchant_id", "merchant__name"]
    autocomplete_fields = ["merchant", "current_offer", "promoted_merchants"]
    filter_horizontal = ["target_segments"]
    date_hierarchy = "start_date"
    inlines = [SegmentOfferInline, ChangeInline]

    SETTINGS = ("current_offer", "send_time", "send_time_policy", "status", "target_segments", "promoted_merchants")

    def save_model(self, request, obj, form, change):
        if change:
            # The settings are written (and logged) by save_related through the one service; the row
            # saved here keeps their stored values.
            stored = Campaign.objects.get(pk=obj.pk)
            for name in ("current_offer_id", "send_time", "send_time_policy", "status"):
                setattr(obj, name, getattr(stored, name))
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if not change:
            return super().save_related(request, form, formsets, change)
        wanted = {name: form.cleaned_data.pop(name) for name in self.SETTINGS if name in form.cleaned_data}
        super().save_related(request, form, formsets, change)
        changed = {name: value for name, value in wanted.items() if name in form.changed_data}
        configuration.change_settings(
            form.instance, configuration.setting_changes_from(form.instance, changed), user=request.user,
            source=CampaignChange.Source.ADMIN,
        )


@admin.register(CampaignChange)
class CampaignChangeAdmin(admin.ModelAdmin):
    """The change log is a record: read-only here (rows are written by campaigns.configuration)."""

    list_display = ["changed_at", "campaign", "field", "segment", "old_value", "new_value", "source", "changed_by", "note"]
    list_filter = ["source", "field", "changed_at"]
    list_select_related = ["campaign", "changed_by"]
    search_fields = ["=campaign__campaign_id", "segment", "note"]
    date_hierarchy = "changed_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(FactAdmin):
    """Events are append-only facts: read-only here (they arrive through ingestion only)."""

    list_display = ["event_id", "type", "occurred_at", "campaign", "customer", "merchant", "variant", "amount"]
    list_filter = ["type", "occurred_at"]
    list_select_related = ["campaign", "customer", "merchant"]
    search_fields = ["=event_id", "=campaign__campaign_id", "=customer__customer_id"]
    raw_id_fields = ["customer", "campaign", "merchant", "offer"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    list_per_page = 50
