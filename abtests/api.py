"""The A/B testing API: a v1 viewset, and the seed's paths as aliases of the same actions (see urls.py).

Thin: serializers parse input and shape output; ``services`` writes, ``selectors`` reads.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from abtests import answers, metrics, selectors, services, stats
from abtests.filters import ABTestFilter
from abtests.models import ABTest, ABTestResult
from marketing_ai.api import ClockTimeField
from marketing_ai.filters import ListFilterBackend
from marketing_ai.validation import INT32_MAX

# ---------------------------------------------------------------- input


class VariantInput(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    weight = serializers.FloatField(min_value=0.0, max_value=1.0)
    offer_id = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    send_time = ClockTimeField(required=False, allow_null=True, help_text="HH:MM, UTC")


class CreateInput(serializers.Serializer):
    """The seed's columns (campaign_id, test_name, variant_a_name, variant_b_name, sample_size_target,
    confidence_level) or a ``variants`` list with weights for 2+ arms (the first is the control)."""

    campaign_id = serializers.CharField(max_length=64)
    test_name = serializers.CharField(max_length=200, required=False)
    name = serializers.CharField(max_length=200, required=False, help_text="Alias of test_name")
    hypothesis = serializers.CharField(required=False, allow_blank=True, default="")
    variant_a_name = serializers.CharField(max_length=64, required=False, allow_null=True)
    variant_b_name = serializers.CharField(max_length=64, required=False, allow_null=True)
    variants = VariantInput(many=True, required=False)
    sample_size_target = serializers.IntegerField(max_value=INT32_MAX, help_text="Planned users across all variants")
    confidence_level = serializers.FloatField(default=0.95)
    primary_metric = serializers.ChoiceField(choices=ABTest.Metric.choices, default=ABTest.Metric.CONVERSION_RATE)
    guardrail_metrics = serializers.ListField(child=serializers.ChoiceField(choices=metrics.METRIC_NAMES),
                                              required=False, default=list, max_length=len(metrics.METRICS),
                                              help_text="Metrics that must not get worse; a failing one blocks shipping")
    secondary_metrics = serializers.ListField(child=serializers.ChoiceField(choices=metrics.METRIC_NAMES),
                                              required=False, default=list, max_length=len(metrics.METRICS),
                                              help_text="Reported with intervals, p-values adjusted across them")
    multiple_testing = serializers.ChoiceField(choices=ABTest.Correction.choices, default=ABTest.Correction.HOLM,
                                               help_text="Correction across the secondary metrics")
    cuped = serializers.BooleanField(default=True, help_text="Adjust by each customer's pre-test behaviour (CUPED)")
    sequential = serializers.BooleanField(default=False)
    hashing_seed = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    namespace = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default="",
        help_text="Tests of one namespace never share a customer: each holds a disjoint traffic range")
    namespace_start = serializers.FloatField(default=0.0, help_text="Start of this test's range in the namespace, 0-1")
    namespace_end = serializers.FloatField(default=1.0, help_text="End (exclusive) of the range, 0-1")

    def validate(self, data: dict) -> dict:
        if not data.get("test_name") and not data.get("name"):
            raise serializers.ValidationError({"test_name": ["required"]})
        if data.get("variants") and (data.get("variant_a_name") or data.get("variant_b_name")):
            raise serializers.ValidationError({"variants": ["give either variants or variant_a_name/variant_b_name"]})
        if not data.get("variants"):
            data["variants"] = [
                {"name": data.get("variant_a_name") or "A", "weight": 0.5},
                {"name": data.get("variant_b_name") or "B", "weight": 0.5},
            ]
        return data

    def create_kwargs(self) -> dict:
        d = self.validated_data
        return dict(
            campaign_id=d["campaign_id"],
            test_name=d.get("test_name") or d.get("name"),
            hypothesis=d["hypothesis"],
            variants=[services.VariantSpec(name=v["name"], weight=v["weight"], offer_id=v.get("offer_id") or None,
                                           send_time=v.get("send_time")) for v in d["variants"]],
            sample_size_target=d["sample_size_target"],
            confidence_level=d["confidence_level"],
            primary_metric=d["primary_metric"],
            guardrail_metrics=d["guardrail_metrics"],
            secondary_metrics=d["secondary_metrics"],
            multiple_testing=d["multiple_testing"],
            cuped=d["cuped"],
            sequential=d["sequential"],
            hashing_seed=d["hashing_seed"],
            namespace=d["namespace"],
            namespace_start=d["namespace_start"],
            namespace_end=d["namespace_end"],
        )


class AssignInput(serializers.Serializer):
    customer_id = serializers.CharField(max_length=64, required=False)
    customer_ids = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                         max_length=10_000)

    def validate(self, data: dict) -> dict:
        if not data.get("customer_id") and not data.get("customer_ids"):
            raise serializers.ValidationError({"customer_ids": ["give customer_id or a list customer_ids"]})
        return data


STATUS_INCLUDES = ("over_time", "breakdowns")


class StatusInput(serializers.Serializer):
    include = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=64,
        help_text=f"Comma-separated extras to embed: {', '.join(STATUS_INCLUDES)} (what the test page shows "
                  "beside the card; each also has its own endpoint)")

    def validate_include(self, value: str) -> list[str]:
        wanted = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [part for part in wanted if part not in STATUS_INCLUDES]
        if unknown:
            raise serializers.ValidationError(f"unknown {unknown[0][:40]!r}: give a comma-separated subset of "
                                              f"{', '.join(STATUS_INCLUDES)}")
        return list(dict.fromkeys(wanted))


class EndInput(serializers.Serializer):
    apply_winner = serializers.BooleanField(default=False)


class SampleSizeInput(serializers.Serializer):
    baseline_rate = serializers.FloatField(help_text="Control conversion rate, e.g. 0.05")
    mde = serializers.FloatField(help_text="Relative minimum detectable effect, e.g. 0.1 for +10%")
    confidence_level = serializers.FloatField(default=0.95)
    power = serializers.FloatField(default=0.8)
    arms = serializers.IntegerField(default=2, min_value=2, max_value=services.MAX_VARIANTS)
    daily_traffic = serializers.FloatField(required=False, min_value=0.0, help_text="Users per day entering the test")


# ---------------------------------------------------------------- output


def variant_payload(test: ABTest) -> list[dict]:
    return [
        {"name": v.name, "weight": v.weight, "control": v.position == 0,
         "offer_id": v.offer.offer_id if v.offer_id else None,
         "send_time": v.send_time.strftime("%H:%M") if v.send_time else None}
        for v in test.ordered_variants
    ]


class MetricOutput(serializers.Serializer):
    metric = serializers.ChoiceField(choices=metrics.METRIC_NAMES)
    label = serializers.CharField()
    role = serializers.ChoiceField(choices=[metrics.GOAL, metrics.SECONDARY, metrics.GUARDRAIL])
    variant = serializers.CharField(help_text="The treatment compared with the control")
    value = serializers.FloatField(help_text="The treatment's mean per user (a rate for binary metrics)")
    control_value = serializers.FloatField()
    lift = serializers.FloatField(allow_null=True, help_text="Relative difference vs control, percent")
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    p_value_adjusted = serializers.FloatField(
        allow_null=True, help_text="Secondary: adjusted across the secondary metrics (Holm or BH); goal: as the verdict used it")
    significant = serializers.BooleanField()
    direction = serializers.ChoiceField(choices=["better", "worse", "flat"])
    guardrail_failed = serializers.BooleanField(allow_null=True, help_text="Guardrails: worse with p < alpha")
    note = serializers.CharField(allow_blank=True)
    cuped_variance_reduction = serializers.FloatField(
        allow_null=True, required=False, help_text="Share of this metric's variance CUPED removed; null if not applied")


class CupedOutput(serializers.Serializer):
    applied = serializers.BooleanField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, help_text="Why CUPED was not applied, if it was not")
    theta = serializers.FloatField(required=False)
    variance_reduction = serializers.FloatField(required=False, help_text="Share of the goal's variance removed")
    correlation = serializers.FloatField(required=False, help_text="Pooled corr(pre-period, in-test) per customer")
    pre_period_days = serializers.IntegerField(required=False)


class ResultOutput(serializers.ModelSerializer):
    test_id = serializers.CharField(source="test.test_id")
    winner = serializers.SerializerMethodField()
    confidence_interval = serializers.SerializerMethodField(help_text="Interval of the relative lift, percent")
    confidence_level = serializers.FloatField(source="test.confidence_level")
    srm = serializers.SerializerMethodField()
    metrics = MetricOutput(many=True, help_text="Goal, secondary and guardrail metrics per treatment")
    cuped = CupedOutput(help_text="The goal metric's CUPED adjustment (empty for analyses stored before CUPED)",
                        required=False)

    class Meta:
        model = ABTestResult
        fields = ["test_id", "calculated_at", "method", "metric", "decision", "winner", "lift", "confidence_interval",
                  "lift_ci_low", "lift_ci_high", "statistical_significance", "p_value", "significant",
                  "confidence_level", "chi2", "srm", "srm_p_value", "srm_detected", "chance_to_beat_control",
                  "users_total", "variant_a_conversions", "variant_b_conversions", "variants", "reason",
                  "users_still_needed", "recommended_action", "metrics", "cuped"]

    def get_winner(self, result: ABTestResult) -> str | None:
        return result.winner or None

    def get_confidence_interval(self, result: ABTestResult) -> list[float | None]:
        return [result.lift_ci_low, result.lift_ci_high]

    def get_srm(self, result: ABTestResult) -> dict:
        return {"p_value": result.srm_p_value, "detected": result.srm_detected, "threshold": stats.SRM_THRESHOLD}


class TestOutput(serializers.ModelSerializer):
    campaign_id = serializers.CharField(source="campaign.campaign_id")
    variants = serializers.SerializerMethodField()
    variant_a_name = serializers.CharField(read_only=True)
    variant_b_name = serializers.CharField(read_only=True)
    winner = serializers.SerializerMethodField()
    users_assigned = serializers.SerializerMethodField()

    class Meta:
        model = ABTest
        fields = ["test_id", "campaign_id", "test_name", "hypothesis", "status", "primary_metric", "guardrail_metrics",
                  "secondary_metrics", "multiple_testing", "cuped",
                  "variant_a_name", "variant_b_name", "variants", "sample_size_target", "confidence_level",
                  "sequential", "hashing_seed", "namespace", "namespace_start", "namespace_end", "users_assigned", "created_at", "started_at", "ended_at", "winner",
                  "applied"]

    def get_variants(self, test: ABTest) -> list[dict]:
        return variant_payload(test)

    def get_winner(self, test: ABTest) -> str | None:
        return test.winner or None

    def get_users_assigned(self, test: ABTest) -> int:
        annotated = getattr(test, "users_assigned", None)
        return annotated if annotated is not None else selectors.users_assigned(test=test)


class HistoryOutput(TestOutput):
    outcome = serializers.SerializerMethodField()

    class Meta(TestOutput.Meta):
        fields = TestOutput.Meta.fields + ["outcome"]

    def get_outcome(self, test: ABTest) -> dict | None:
        loaded = self.context.get("latest_results")  # the page's results in one query (history view)
        result = loaded.get(test.pk) if loaded is not None else selectors.latest_result(test=test)
        if result is None:
            return None
        return {"decision": result.decision, "lift": result.lift, "p_value": result.p_value,
                "statistical_significance": result.statistical_significance, "reason": result.reason,
                "recommended_action": result.recommended_action}


class TreatmentOnDayOutput(serializers.Serializer):
    name = serializers.CharField()
    lift = serializers.FloatField(allow_null=True, help_text="Relative lift of the primary metric vs control, percent")
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True, help_text="Adjusted p-value as the analysis of that day gives it")
    chance_to_beat_control = serializers.FloatField(allow_null=True)


class DayOutput(serializers.Serializer):
    date = serializers.DateField()
    users = serializers.ListField(child=serializers.IntegerField(), help_text="Cumulative users per variant")
    new_users = serializers.ListField(child=serializers.IntegerField(), help_text="Users assigned on the day")
    conversions = serializers.ListField(child=serializers.IntegerField(), help_text="Cumulative converters")
    revenue_per_user = serializers.ListField(child=serializers.FloatField())
    srm_p_value = serializers.FloatField(allow_null=True, help_text="Sample-ratio check on the cumulative users")
    srm_detected = serializers.BooleanField()
    srm_p_value_day = serializers.FloatField(allow_null=True, help_text="Sample-ratio check on the day's new users")
    treatments = TreatmentOnDayOutput(many=True)


class MetricDayOutput(serializers.Serializer):
    date = serializers.DateField()
    treatments = TreatmentOnDayOutput(many=True)


class MetricOverTimeOutput(serializers.Serializer):
    metric = serializers.CharField()
    label = serializers.CharField()
    role = serializers.CharField(help_text="secondary or guardrail")
    days = MetricDayOutput(many=True)


class OverTimeOutput(serializers.Serializer):
    test_id = serializers.CharField()
    metric = serializers.CharField()
    confidence_level = serializers.FloatField()
    sequential = serializers.BooleanField()
    variants = serializers.ListField(child=serializers.CharField(), help_text="Variant names, control first")
    note = serializers.CharField(help_text="How to read a daily interval for this kind of test")
    days = DayOutput(many=True)
    metrics = MetricOverTimeOutput(many=True, help_text="Each secondary metric and guardrail by day (unadjusted)")


STATUS_BREAKDOWNS = ("segment", "channel")  # the ones the test page shows


class SliceOutput(serializers.Serializer):
    slice = serializers.CharField(help_text="Segment name, time zone or channel ((no segment), (no channel)), or "
                                            "(other) for the smallest slices together")
    variant = serializers.CharField()
    users = serializers.IntegerField()
    control_users = serializers.IntegerField()
    value = serializers.FloatField()
    control_value = serializers.FloatField()
    lift = serializers.FloatField(allow_null=True, help_text="Percent")
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    p_value_adjusted = serializers.FloatField(allow_null=True, help_text="Adjusted across every slice comparison")
    significant = serializers.BooleanField()
    note = serializers.CharField(allow_blank=True)


class BreakdownOutput(serializers.Serializer):
    test_id = serializers.CharField()
    by = serializers.ChoiceField(choices=selectors.BREAKDOWN_BY)
    metric = serializers.CharField()
    multiple_testing = serializers.CharField()
    confidence_level = serializers.FloatField()
    note = serializers.CharField()
    slices = SliceOutput(many=True)


class AssignmentOutput(serializers.Serializer):
    customer_id = serializers.CharField()
    variant = serializers.CharField()
    assigned_at = serializers.DateTimeField()
    new = serializers.BooleanField(help_text="True when assigned by this call, false when it already was")


class AssignOneOutput(AssignmentOutput):
    test_id = serializers.CharField()


class AssignManyOutput(serializers.Serializer):
    test_id = serializers.CharField()
    assignments = AssignmentOutput(many=True)
    new = serializers.IntegerField(help_text="How many were assigned by this call")


class StatusVariantOutput(serializers.Serializer):
    name = serializers.CharField()
    weight = serializers.FloatField()
    control = serializers.BooleanField()
    users = serializers.IntegerField()
    conversions = serializers.IntegerField()
    conversion_rate = serializers.FloatField()
    conversion_rate_pct = serializers.FloatField()
    revenue_per_user = serializers.FloatField(allow_null=True)
    lift = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True, help_text="Adjusted p-value, as the verdict used it")
    chance_to_beat_control = serializers.FloatField(allow_null=True)
    expected_loss = serializers.FloatField(
        allow_null=True, help_text="Risk of shipping this variant: conversion-rate points (as a fraction) given up "
                                   "on average if it is in fact worse than the control (Bayesian, Beta(1, 1) priors)")
    control_expected_loss = serializers.FloatField(
        allow_null=True, help_text="Risk of keeping the control: what it gives up if this variant is in fact better")
    expected_loss_pp = serializers.FloatField(allow_null=True, help_text="expected_loss in percentage points")
    control_expected_loss_pp = serializers.FloatField(allow_null=True, help_text="control_expected_loss in points")


class StatusOutput(serializers.Serializer):
    """``GET .../status``: progress and the current read of the test (documentation of ``selectors.abtest_status``)."""

    test_id = serializers.CharField()
    status = serializers.ChoiceField(choices=ABTest.Status.choices)
    users_assigned = serializers.IntegerField()
    sample_size_target = serializers.IntegerField()
    progress = serializers.FloatField(allow_null=True)
    progress_percent = serializers.FloatField(allow_null=True)
    variant_a_conversions = serializers.IntegerField()
    variant_b_conversions = serializers.IntegerField()
    variants = StatusVariantOutput(many=True)
    statistical_significance = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    lift = serializers.FloatField(allow_null=True)
    confidence_level = serializers.FloatField()
    confidence_percent = serializers.CharField()
    srm_detected = serializers.BooleanField()
    srm_p_value = serializers.FloatField(allow_null=True)
    decision = serializers.CharField(allow_null=True)
    safe_to_stop = serializers.BooleanField()
    reason = serializers.CharField()
    users_still_needed = serializers.IntegerField(allow_null=True)
    recommended_action = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    multiple_testing = serializers.ChoiceField(choices=ABTest.Correction.choices,
                                               help_text="Correction across the secondary metrics")
    metrics = MetricOutput(many=True, help_text="Goal, secondary and guardrail metrics per treatment, each with "
                                                "its interval; secondary p-values adjusted (Holm or BH)")
    cuped = CupedOutput(help_text="The goal's CUPED adjustment: applied or why not, and the variance it removed "
                                  "(empty for a draft)")
    over_time = OverTimeOutput(required=False, help_text="With include=over_time: as GET .../over-time")
    breakdowns = BreakdownOutput(many=True, required=False,
                                 help_text="With include=breakdowns: the goal by segment and by channel, as GET "
                                           ".../breakdown?by=segment and ?by=channel")


class EndOutput(serializers.Serializer):
    test_id = serializers.CharField()
    status = serializers.ChoiceField(choices=ABTest.Status.choices)
    winner = serializers.CharField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    applied = serializers.DictField(help_text="What applying the winner changed on the campaign ({} if nothing)")
    result = ResultOutput(allow_null=True)


class SampleSizeOutput(serializers.Serializer):
    baseline_rate = serializers.FloatField()
    mde = serializers.FloatField()
    confidence_level = serializers.FloatField()
    power = serializers.FloatField()
    arms = serializers.IntegerField()
    users_per_arm = serializers.IntegerField()
    total_users = serializers.IntegerField()
    daily_traffic = serializers.FloatField(allow_null=True)
    days_needed = serializers.IntegerField(allow_null=True)


# ---------------------------------------------------------------- views


class ABTestViewSet(viewsets.GenericViewSet):
    """A/B tests: list, detail, create, start, assign, status, analyze, end, history, results, sample-size."""

    lookup_field = "test_id"
    lookup_value_regex = r"[^/]+"
    serializer_class = TestOutput
    filter_backends = [ListFilterBackend]
    filterset_class = ABTestFilter

    def get_queryset(self):
        return selectors.abtest_list()

    def get_object(self) -> ABTest:
        return selectors.abtest_get(test_id=self.kwargs["test_id"])

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(TestOutput(page, many=True).data)

    def retrieve(self, request: Request, test_id: str) -> Response:
        return Response(TestOutput(self.get_object()).data)

    @extend_schema(request=CreateInput, responses={201: TestOutput})
    def create(self, request: Request) -> Response:
        data = CreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        test = services.abtest_create(**data.create_kwargs(), user=request.user)
        return Response(TestOutput(test).data, status=201)

    @extend_schema(request=None, responses=TestOutput)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, test_id: str) -> Response:
        return Response(TestOutput(services.abtest_start(test=self.get_object())).data)

    @extend_schema(request=AssignInput, responses=PolymorphicProxySerializer(
        component_name="AssignOutput", serializers=[AssignOneOutput, AssignManyOutput], resource_type_field_name=None,
    ))
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, test_id: str) -> Response:
        data = AssignInput(data=request.data)
        data.is_valid(raise_exception=True)
        single = data.validated_data.get("customer_id")
        ids = [single] if single else data.validated_data["customer_ids"]
        assigned = services.abtest_assign(test=self.get_object(), customer_ids=ids)
        rows = [{"customer_id": a.customer_id, "variant": a.variant, "assigned_at": a.assigned_at, "new": a.new}
                for a in assigned]
        if single:
            return Response(AssignOneOutput({"test_id": test_id, **rows[0]}).data)
        return Response(AssignManyOutput({"test_id": test_id, "assignments": rows, "new": sum(r["new"] for r in rows)}).data)

    @extend_schema(parameters=[StatusInput], responses=StatusOutput)
    @action(detail=True, methods=["get"])
    def status(self, request: Request, test_id: str) -> Response:
        """Progress and the current read of the test: what its card shows (verdict, metrics, CUPED, risk);
        with ``include``, the results over time and the breakdowns of its page too."""
        data = StatusInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        include = data.validated_data["include"]
        if "breakdowns" in include:  # they read the customers' segments, which no A/B version follows
            test = self.get_object()
            status = selectors.abtest_status(test=test)
            if "over_time" in include:
                status["over_time"] = selectors.results_over_time(test=test)
            status["breakdowns"] = [selectors.breakdown(test=test, by=by) for by in STATUS_BREAKDOWNS]
            return Response(StatusOutput(status).data)
        day = answers.today()

        def build() -> dict:
            test = self.get_object()
            status = selectors.abtest_status(test=test)
            if "over_time" in include:
                status["over_time"] = selectors.results_over_time(test=test, today=day)
            return StatusOutput(status).data

        params = (tuple(include), day if "over_time" in include else None)
        return Response(answers.cached("status", answers.test_version(test_id=test_id), params, build))

    @extend_schema(request=None, responses=ResultOutput)
    @action(detail=True, methods=["post"])
    def analyze(self, request: Request, test_id: str) -> Response:
        return Response(ResultOutput(services.abtest_analyze(test=self.get_object())).data)

    @extend_schema(request=EndInput, responses=EndOutput)
    @action(detail=True, methods=["post"])
    def end(self, request: Request, test_id: str) -> Response:
        data = EndInput(data=request.data)
        data.is_valid(raise_exception=True)
        ended = services.abtest_end(test=self.get_object(), apply_winner=data.validated_data["apply_winner"], user=request.user)
        return Response(EndOutput({
            "test_id": ended.test.test_id,
            "status": ended.test.status,
            "winner": ended.test.winner or None,
            "ended_at": ended.test.ended_at,
            "applied": ended.applied,
            "result": ended.result,
        }).data)

    @extend_schema(responses=ResultOutput(many=True), filters=False)  # the list's filters are not this one's
    @action(detail=True, methods=["get"])
    def results(self, request: Request, test_id: str) -> Response:
        """Every stored analysis of the test, newest first."""
        def build() -> dict:
            page = self.paginate_queryset(selectors.results_of(test=self.get_object()))
            return self.get_paginated_response(ResultOutput(page, many=True).data).data

        params = tuple(sorted(request.query_params.lists()))  # the page (and its links' host)
        # Stored analyses only: an assignment or a new event leaves this answer (and its version) alone.
        return Response(answers.cached("results", answers.test_version(test_id=test_id, rollup=False),
                                       (params, request.build_absolute_uri("/")), build))

    @extend_schema(responses=OverTimeOutput)
    @action(detail=True, methods=["get"], url_path="over-time")
    def over_time(self, request: Request, test_id: str) -> Response:
        """Results over time: by UTC day, cumulative users and conversions per variant, each treatment's lift
        with its interval, and the sample-ratio check."""
        day = answers.today()
        return Response(answers.cached(
            "over_time", answers.test_version(test_id=test_id), (day,),
            lambda: OverTimeOutput(selectors.results_over_time(test=self.get_object(), today=day)).data))

    @extend_schema(parameters=[OpenApiParameter("by", str, enum=[*selectors.BREAKDOWN_BY])],
                   responses=BreakdownOutput)
    @action(detail=True, methods=["get"])
    def breakdown(self, request: Request, test_id: str) -> Response:
        """The goal metric by customer segment or time zone, or by the channel its events came through,
        adjusted for looking at many slices."""
        by = request.query_params.get("by", "segment")
        return Response(BreakdownOutput(selectors.breakdown(test=self.get_object(), by=by)).data)

    @extend_schema(responses=HistoryOutput(many=True), filters=False)
    @action(detail=False, methods=["get"])
    def history(self, request: Request) -> Response:
        """Completed tests with their final outcome, most recently ended first."""
        def build() -> dict:
            page = self.paginate_queryset(selectors.abtest_history())
            context = {"latest_results": selectors.latest_results(page)}
            return self.get_paginated_response(HistoryOutput(page, many=True, context=context).data).data

        params = tuple(sorted(request.query_params.lists()))
        return Response(answers.cached("history", answers.history_version(), (params, request.build_absolute_uri("/")), build))

    @extend_schema(parameters=[SampleSizeInput], responses=SampleSizeOutput)
    @action(detail=False, methods=["get"], url_path="sample-size")
    def sample_size(self, request: Request) -> Response:
        """Users per arm (and days, given daily traffic) to detect a relative lift: the planning calculator."""
        data = SampleSizeInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        return Response(SampleSizeOutput(selectors.sample_size_plan(**d)).data)
