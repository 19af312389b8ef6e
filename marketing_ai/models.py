from __future__ import annotations

from django.db import models
from django.utils import timezone


class JobRun(models.Model):
    """One run of a registered job: who asked, for which period, how it ended."""

    class Status(models.TextChoices):
        QUEUED = "queued"  # sent to the workers, not started yet
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
    # The Celery task of the run: its retries and redeliveries keep the id, so their rows share it.
    task_id = models.CharField(max_length=64, blank=True, db_index=True)
    # PostgreSQL: the backend holding the job's advisory lock for this run (an orphan after a kill).
    db_pid = models.IntegerField(null=True, blank=True)
    # Where the run executes ("host:pid"), so an operator can find (or tell the death of) its process.
    worker = models.CharField(max_length=200, blank=True)

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


class JobSlot(models.Model):
    """One scheduled time of a job, claimed by the first task that runs it.

    Two beats (or a beat restarted inside a minute it already served) send the same scheduled run
    twice; the unique (job, slot) lets one of them do the work and the other record a skip.
    """

    job = models.CharField(max_length=64)
    slot = models.DateTimeField()
    task_id = models.CharField(max_length=64)
    claimed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "job_slots"
        constraints = [models.UniqueConstraint(fields=["job", "slot"], name="job_slots_one_claim_per_slot")]

    def __str__(self) -> str:
        return f"{self.job} at {self.slot:%Y-%m-%d %H:%M} ({self.task_id})"
