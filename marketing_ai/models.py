from __future__ import annotations

from django.db import models
from django.utils import timezone


class JobRun(models.Model):
    """One run of a registered job: who asked, for which period, how it ended."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"

    job = models.CharField(max_length=64, db_index=True)
    arguments = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    rows_written = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "job_runs"
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["job", "-started_at"], name="job_runs_job_started")]

    def __str__(self) -> str:
        return f"{self.job} {self.status} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def finish(self, status: str, *, rows: int = 0, error: str = "") -> None:
        self.status = status
        self.rows_written = rows
        self.error = error
        self.finished_at = timezone.now()
        self.save(update_fields=["status", "rows_written", "error", "finished_at"])
