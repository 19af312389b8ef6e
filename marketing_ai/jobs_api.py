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
    start = serializers.DateField(required=False, help_text=f"First UTC day (YYYY-MM-DD); at most {MAX_RUN_DAYS} days before end")
    end = serializers.DateField(required=False, help_text="Last UTC day; not after tomorrow")

    def validate(self, data: dict) -> dict:
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise serializers.ValidationError({"start": ["must not be after end"]})
        if start or end:
            _check_range(start, end)
        return data


def _check_range(start, end) -> None:
    """From the first event's day to tomorrow (UTC), and at most ``MAX_RUN_DAYS`` long."""
    import datetime as dt

    from django.utils import timezone

    latest = timezone.now().date() + dt.timedelta(days=1)
    span = selectors.event_day_span()  # without events any range is quick (nothing to read): length only
    errors = {}
    if end and end > latest:
        errors["end"] = [f"must not be after {latest.isoformat()} (tomorrow, UTC)"]
    if start and span and start < span[0]:
        errors["start"] = [f"must not be before {span[0].isoformat()} (the first event's day)"]
    if start and end and (end - start).days + 1 > MAX_RUN_DAYS:
        errors.setdefault("start", []).append(f"a run covers at most {MAX_RUN_DAYS} days")
    if errors:
        raise serializers.ValidationError(errors)


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
