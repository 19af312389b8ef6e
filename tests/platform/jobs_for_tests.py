"""Jobs that only the Celery worker started by test_celery_worker.py imports (``celery worker -I``)."""

from __future__ import annotations

from marketing_ai.jobs import Progress, job


@job("platform_probe", schedule=None)
def probe(*, progress: Progress) -> int:
    """Writes nothing; reports 7 rows so the test can tell its job_runs row apart."""
    progress.total(7)
    progress.advance(7)
    return 7


@job("platform_probe_fails", schedule=None)
def probe_fails(*, progress: Progress) -> int:
    """Always fails with a non-transient error (so Celery does not retry it)."""
    raise ValueError("probe failure for the worker test")
