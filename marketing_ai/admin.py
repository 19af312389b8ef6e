"""Admin for job runs (read-only history), and the read-only base of every admin page over facts.

django-celery-beat registers its own periodic-task admin.
"""

from __future__ import annotations

from django.contrib import admin

from marketing_ai.models import JobRun


class FactAdmin(admin.ModelAdmin):
    """Rows that record what happened (events, assignments, analyses): shown, never added, edited or
    deleted in the admin. They change only through their services (ingestion, assignment, analysis)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("job", "status", "started_at", "duration", "rows_written", "trigger", "period")
    list_filter = ("status", "job", ("started_at", admin.DateFieldListFilter))
    search_fields = ("job", "error")
    date_hierarchy = "started_at"
    ordering = ("-started_at",)
    readonly_fields = ("job", "arguments", "started_at", "finished_at", "status", "rows_written", "error",
                       "task_id", "worker", "db_pid")

    @admin.display(description="duration (s)")
    def duration(self, run: JobRun) -> str:
        seconds = run.duration_seconds
        return "-" if seconds is None else f"{seconds:.1f}"

    @admin.display(description="trigger")
    def trigger(self, run: JobRun) -> str:
        return run.arguments.get("trigger", "")

    @admin.display(description="period")
    def period(self, run: JobRun) -> str:
        if "start" not in run.arguments:
            return "-"
        return f"{run.arguments['start']} .. {run.arguments['end']}"

    def has_add_permission(self, request) -> bool:  # runs are recorded by jobs.run, never typed in
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
