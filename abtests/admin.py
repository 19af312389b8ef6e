from django.contrib import admin

from abtests.models import ABTest, ABTestAssignment, ABTestResult, ABTestVariant


class VariantInline(admin.TabularInline):
    model = ABTestVariant
    extra = 0
    fields = ("position", "name", "weight", "offer", "send_time")


@admin.register(ABTest)
class ABTestAdmin(admin.ModelAdmin):
    list_display = ("test_id", "test_name", "campaign", "status", "primary_metric", "sample_size_target",
                    "confidence_level", "started_at", "ended_at", "winner")
    list_filter = ("status", "primary_metric", "sequential")
    search_fields = ("test_id", "test_name", "campaign__campaign_id", "campaign__name")
    list_select_related = ("campaign",)
    readonly_fields = ("test_id", "created_at", "started_at", "ended_at", "applied")
    raw_id_fields = ("campaign", "created_by")
    inlines = [VariantInline]
    date_hierarchy = "created_at"


@admin.register(ABTestAssignment)
class ABTestAssignmentAdmin(admin.ModelAdmin):
    list_display = ("test", "customer", "variant", "assigned_at")
    list_filter = ("test__status",)
    search_fields = ("test__test_id", "customer__customer_id")
    raw_id_fields = ("test", "customer", "variant")
    list_select_related = ("test", "customer", "variant")
    show_full_result_count = False  # millions of rows: skip the COUNT(*)


@admin.register(ABTestResult)
class ABTestResultAdmin(admin.ModelAdmin):
    list_display = ("test", "calculated_at", "method", "users_total", "lift", "p_value", "significant",
                    "srm_detected", "decision", "winner")
    list_filter = ("decision", "method", "significant", "srm_detected")
    search_fields = ("test__test_id", "test__test_name")
    raw_id_fields = ("test",)
    list_select_related = ("test",)
    date_hierarchy = "calculated_at"
