"""Jobs over the API: the registry, the run history, and "run this job now" for marketers.

``GET /api/v1/jobs/``, ``GET /api/v1/jobs/<name>/``, ``POST /api/v1/jobs/<name>/run``
(``{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}`` optional), ``GET /api/v1/job-runs/?job=&status=``.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from marketing_ai import job_queue, jobs, selectors
from marketing_ai.api import BadRequest, NotFound
from marketing_ai.filters import JobRunFilter, ListFilterBackend
from marketing_ai.models import JobRun
from marketing_ai.outages import ServiceUnavailable


class JobRunOutput(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = JobRun
        fields = (
            "id",
            "job",
            "arguments",
            "status",
            "started_at",
            "finished_at",
            "duration_seconds",
            "rows_written",
            "error",
            "task_id",
            "worker",
        )


class JobOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    schedule = serializers.CharField(source="schedule_text")
    after = serializers.ListField(child=serializers.CharField())
    window_days = serializers.IntegerField(allow_null=True)
    last_run = serializers.SerializerMethodField()

    def get_last_run(self, job: jobs.Job) -> dict | None:
        run = self.context["last_runs"].get(job.name)
        return JobRunOutput(run).data if run else None


# A run over a range holds the job's lock for its whole length (the nightly run is skipped meanwhile):
# a range covers at most this many days, and only days that can have data (docs/operations.md).
MAX_RUN_DAYS = 400


class QueuedOutput(serializers.Serializer):
    """A run sent to the workers: its job_runs row (``queued`` until a worker starts it) and Celery task."""

    job = serializers.CharField()
    task_id = serializers.CharField()
    queued = serializers.BooleanField()
    job_run = serializers.IntegerField()


class RunInput(serializers.Serializer):
    start = serializers.DateField(required=False, help_text=f"First UTC day (YYYY-MM-DD); not before the first event's day; at most {MAX_RUN_DAYS} days before end")
    end = serializers.DateField(required=False, help_text="Last UTC day (default: today); not after tomorrow")

    def validate(self, data: dict) -> dict:
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise serializers.ValidationError({"start": ["must not be after end"]})
        return data


def run_range_problems(start, end, *, window_days: int | None = None) -> dict[str, list[str]]:
    """Why a job may not run over ``start``..``end`` (either may be ``None``: the job's default
    window fills it in, as ``jobs.default_window`` does); ``{}`` when it may.

    The range lies within the data's real span (not before the first event's day, not after
    tomorrow, UTC) and covers at most ``MAX_RUN_DAYS`` days. One rule for the API's run endpoint
    and ``manage.py run_job``.
    """
    import datetime as dt

    from django.utils import timezone

    if not (start or end):
        return {}  # the job's default window: bounded by its window_days
    today = timezone.now().date()
    latest = today + dt.timedelta(days=1)
    errors: dict[str, list[str]] = {}
    if end and end > latest:
        errors["end"] = [f"must not be after {latest.isoformat()} (tomorrow, UTC)"]
    span = selectors.event_day_span()  # without events any range is quick (nothing to read): length only
    if start and span and start < span[0]:
        errors["start"] = [f"must not be before {span[0].isoformat()} (the first event's day)"]
    effective_end = end or today
    try:
        effective_start = start or effective_end - dt.timedelta(days=(window_days or 1) - 1)
    except OverflowError:
        errors.setdefault("end", []).append(f"is too early for the job's {window_days}-day window")
        return errors
    if start and not end and start > today:
        errors.setdefault("start", []).append(f"must not be after the end (today, {today.isoformat()}, when none is given)")
    if (effective_end - effective_start).days + 1 > MAX_RUN_DAYS:
        errors.setdefault("start", []).append(
            f"a run covers at most {MAX_RUN_DAYS} days (this one: {effective_start.isoformat()} to {effective_end.isoformat()})")
    return errors


class JobViewSet(viewsets.GenericViewSet):
    throttle_scope: str | None = None  # the run action sets "jobs" (marketing_ai/throttles.py)
    lookup_field = "name"
    lookup_value_regex = r"[\w.-]+"
    serializer_class = JobOutput

    def get_queryset(self) -> list[jobs.Job]:
        # Jobs are a registry, not a table; the browsable API asks for this to build its forms.
        return jobs.in_dependency_order()

    def _job(self, name: str) -> jobs.Job:
        try:
            return jobs.get(name)
        except KeyError as exc:
            raise NotFound(exc.args[0]) from None

    @extend_schema(responses=JobOutput(many=True))
    def list(self, request):
        registered = jobs.in_dependency_order()
        page = self.paginate_queryset(registered)
        context = {"last_runs": selectors.last_run_per_job(j.name for j in page)}
        return self.get_paginated_response(JobOutput(page, many=True, context=context).data)

    @extend_schema(responses=JobOutput)
    def retrieve(self, request, name=None):
        return Response(JobOutput(self._job(name), context={"last_runs": selectors.last_run_per_job([name])}).data)

    @extend_schema(request=RunInput, responses={200: JobRunOutput, 202: QueuedOutput})
    @action(detail=True, methods=["post"], throttle_scope="jobs")  # its own, tighter rate limit
    def run(self, request, name=None):
        job = self._job(name)
        data = _valid(RunInput, request.data)
        if (data.get("start") or data.get("end")) and not job.takes_dates:
            raise BadRequest({"start": [f"job {job.name} does not take dates"]})
        problems = run_range_problems(data.get("start"), data.get("end"), window_days=job.window_days)
        if problems:
            raise BadRequest(problems)
        if settings.CELERY_TASK_ALWAYS_EAGER:  # no broker (demo): run now and answer with the recorded run
            record = jobs.run(job.name, start=data.get("start"), end=data.get("end"), trigger="api", raise_errors=False)
            return Response(JobRunOutput(record).data)
        try:
            record = job_queue.enqueue(job.name, start=data.get("start"), end=data.get("end"), trigger="api")
        except job_queue.EnqueueFailed as exc:
            raise ServiceUnavailable(f"The job queue is unavailable; run #{exc.record.pk} is recorded failed. Try again shortly.") from None
        return Response(QueuedOutput({"job": job.name, "task_id": record.task_id, "queued": True, "job_run": record.pk}).data,
                        status=status.HTTP_202_ACCEPTED)


def _valid(serializer_class: type[serializers.Serializer], data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class JobRunViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = JobRunOutput
    filter_backends = [ListFilterBackend]
    filterset_class = JobRunFilter

    def get_queryset(self):
        return JobRun.objects.order_by("-started_at")
