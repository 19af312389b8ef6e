"""Admin pages for the four optimisation tables; apply/dismiss actions call the same services as the API."""

from __future__ import annotations

from django.contrib import admin, messages

from marketing_ai.api import is_marketer
from marketing_ai.errors import DomainError
from optimizer.models import CampaignOptimization, MLModel, UserMerchantAffinity, UserSendTime
from optimizer.services import recommendations as services


def _run(modeladmin, request, queryset, service, verb: str, done_text: str) -> None:
    if not is_marketer(request.user):
        modeladmin.message_user(request, f"Only marketers may {verb} recommendations.", messages.ERROR)
        return
    done, refused = 0, []
    for opt in queryset.select_related("campaign"):
        try:
            service(opt, request.user)
            done += 1
        except DomainError as exc:  # Conflict: superseded or dismissed
            refused.append(exc.message)
    if done:
        modeladmin.message_user(request, f"{done} recommendation(s) {done_text}.", messages.SUCCESS)
    for reason in refused:
        modeladmin.message_user(request, reason, messages.WARNING)


@admin.action(description="Apply selected recommendations to their campaigns")
def apply_selected(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, services.apply_optimization, "apply", "applied")


@admin.action(description="Undo selected applied recommendations (back to the value before)")
def undo_selected(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, services.undo_optimization, "undo", "undone")


@admin.action(description="Dismiss selected recommendations")
def dismiss_selected(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, services.dismiss_optimization, "dismiss", "dismissed")


@admin.register(CampaignOptimization)
class CampaignOptimizationAdmin(admin.ModelAdmin):
    list_display = (
        "id", "campaign", "recommendation_type", "target", "current_value", "recommended_value",
        "expected_impact", "confidence", "affected_users", "priority", "status", "applied_by", "applied_at", "created_at",
    )
    list_filter = ("recommendation_type", "status", "priority")
    search_fields = ("campaign__campaign_id", "campaign__name", "target", "recommended_value")
    list_select_related = ("campaign", "applied_by")
    readonly_fields = ("applied_by", "applied_at", "created_at", "live_value", "applied_change")
    actions = [apply_selected, undo_selected, dismiss_selected]
    date_hierarchy = "created_at"


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = ("model_type", "version", "algorithm", "primary_metric", "accuracy", "train_rows", "is_active", "last_trained")
    list_filter = ("model_type", "is_active")
    search_fields = ("algorithm", "promotion_note")
    readonly_fields = ("artifact_path", "artifact_sha256", "metrics", "features", "params")


@admin.register(UserMerchantAffinity)
class UserMerchantAffinityAdmin(admin.ModelAdmin):
    list_display = ("customer", "merchant", "rank", "affinity_score", "engagement_level", "avg_purchase_value", "confidence", "last_updated")
    list_filter = ("engagement_level",)
    search_fields = ("customer__customer_id", "merchant__merchant_id", "merchant__name")
    list_select_related = ("customer", "merchant")
    raw_id_fields = ("customer", "merchant")


@admin.register(UserSendTime)
class UserSendTimeAdmin(admin.ModelAdmin):
    list_display = ("customer", "local_send_time", "utc_send_time", "expected_improvement", "confidence", "events_used", "method", "last_updated")
    list_filter = ("method",)
    search_fields = ("customer__customer_id",)
    list_select_related = ("customer",)
    raw_id_fields = ("customer",)
