"""A/B tests in the admin. State changes (start, end, winner, applying it) go through ``abtests.services``
(the API and the page's buttons), so the admin never edits a test's status, winner or outcome; once a
test has started its variants, weights and hashing seed are fixed (assignments depend on them), and a
completed test is read-only except its notes. Assignments and results are facts: read-only.
"""

from django.contrib import admin

from abtests.models import ABTest, ABTestAssignment, ABTestResult, ABTestVariant
from marketing_ai.admin import FactAdmin

# Never typed in: set by the services (start/end/analyze) or at creation.
SERVICE_FIELDS = ("test_id", "status", "created_at", "started_at", "ended_at", "winner", "applied", "created_by")
# What assignment depends on: fixed once customers may have been assigned.
DESIGN_FIELDS = ("campaign", "primary_metric", "guardrail_metrics", "sample_size_target", "confidence_level",
                 "sequential", "hashing_seed")


class VariantInline(admin.TabularInline):
    model = ABTestVariant
    extra = 0
    fields = ("position", "name", "weight", "offer", "send_time")

    def _draft(self, obj) -> bool:
        return obj is None or obj.status == ABTest.Status.DRAFT

    def has_add_permission(self, request, obj=None) -> bool:
        return self._draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._draft(obj) and super().has_delete_permission(request, obj)


@admin.register(ABTest)
class ABTestAdmin(admin.ModelAdmin):
    list_display = ("test_id", "test_name", "campaign", "status", "primary_metric", "sample_size_target",
                    "confidence_level", "started_at", "ended_at", "winner")
    list_filter = ("status", "primary_metric", "sequential")
    search_fields = ("test_id", "test_name", "campaign__campaign_id", "campaign__name")
    list_select_related = ("campaign",)
    raw_id_fields = ("campaign", "created_by")
    inlines = [VariantInline]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        if obj is None or obj.status == ABTest.Status.DRAFT:
            return SERVICE_FIELDS
        if obj.status == ABTest.Status.RUNNING:
            return SERVICE_FIELDS + DESIGN_FIELDS
        return tuple(f.name for f in ABTest._meta.concrete_fields if f.name not in ("id", "notes"))

    def has_delete_permission(self, request, obj=None) -> bool:
        # A started test has assignments (facts); only a draft may go.
        return (obj is None or obj.status == ABTest.Status.DRAFT) and super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # bulk delete would not ask each test's status
        return actions


@admin.register(ABTestAssignment)
class ABTestAssignmentAdmin(FactAdmin):
    list_display = ("test", "customer", "variant", "assigned_at")
    list_filter = ("test__status",)
    search_fields = ("test__test_id", "customer__customer_id")
    raw_id_fields = ("test", "customer", "variant")
    list_select_related = ("test", "customer", "variant")
    show_full_result_count = False  # millions of rows: skip the COUNT(*)


@admin.register(ABTestResult)
class ABTestResultAdmin(FactAdmin):
    list_display = ("test", "calculated_at", "method", "users_total", "lift", "p_value", "significant",
                    "srm_detected", "decision", "winner")
    list_filter = ("decision", "method", "significant", "srm_detected")
    search_fields = ("test__test_id", "test__test_name")
    raw_id_fields = ("test",)
    list_select_related = ("test",)
    date_hierarchy = "calculated_at"
