"""Reads for the A/B tests: lookups, lists, and the per-variant totals that every analysis starts from.

Attribution rule: a conversion counts for a test when (1) its customer is assigned in the test,
(2) it happened at or after that customer's ``assigned_at`` (and, once the test ended, not after
``ended_at``), and (3) it belongs to the test's campaign. A customer "converts" if at least one
conversion counts; their revenue is the sum of the counted conversions' amounts. Conversion rate
is converters / assigned users; revenue per user averages over all assigned users (zeros included).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncDate

from abtests import analysis, metrics, multiple_testing, rollup, stats, timeline
from abtests import breakdown as breakdown_math
from abtests import cuped as cuped_math
from abtests.models import (
    CONFIDENCE_MAX,
    CONFIDENCE_MIN,
    ABTest,
    ABTestArmSums,
    ABTestAssignment,
    ABTestCustomerOutcome,
    ABTestResult,
    ABTestVariant,
)
from campaigns.models import Customer, Event, Segment
from marketing_ai import db
from marketing_ai.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class ArmTotals:
    """One variant's totals as the database counted them."""

    position: int
    name: str
    weight: float
    users: int
    conversions: int  # customers with at least one counted conversion
    revenue: float  # sum over users of counted revenue
    revenue_sq: float  # sum over users of (their revenue)^2, for the variance

    @property
    def rate(self) -> float:
        return self.conversions / self.users if self.users else 0.0

    @property
    def revenue_mean(self) -> float:
        return self.revenue / self.users if self.users else 0.0

    @property
    def revenue_variance(self) -> float:
        """Sample variance of revenue per user (n - 1 in the denominator)."""
        if self.users < 2:
            return 0.0
        return max(0.0, (self.revenue_sq - self.revenue * self.revenue / self.users) / (self.users - 1))


def _tests() -> QuerySet[ABTest]:
    return ABTest.objects.select_related("campaign").prefetch_related(
        Prefetch("variants", queryset=ABTestVariant.objects.select_related("offer").order_by("position"))
    )


def abtest_get(*, test_id: str) -> ABTest:
    test = _tests().filter(test_id=test_id).first()
    if test is None:
        raise NotFound(f"no A/B test with test_id {test_id!r}")
    return test


def abtest_list(*, status: str | None = None, campaign_id: str | None = None) -> QuerySet[ABTest]:
    """Tests newest first; the API's list filters are abtests/filters.py."""
    # Meta.ordering does not apply to a GROUP BY query: order explicitly so pages are stable.
    qs = _tests().annotate(users_assigned=Count("assignments", distinct=True)).order_by("-created_at", "-id")
    if status:
        qs = qs.filter(status=status)
    if campaign_id:
        qs = qs.filter(campaign__campaign_id=campaign_id)
    return qs


def abtest_history() -> QuerySet[ABTest]:
    """Completed tests, most recently ended first, each with ``users_assigned`` and ``latest_result_id``
    (one correlated subquery each, over the test's own index range), so a page of the history costs the
    same few queries however many tests it shows (``latest_results`` loads their results in one more)."""
    assigned = (ABTestAssignment.objects.filter(test=OuterRef("pk")).order_by().values("test")
                .annotate(n=Count("pk")).values("n"))
    latest = ABTestResult.objects.filter(test=OuterRef("pk")).order_by("-calculated_at", "-id").values("id")[:1]
    return (_tests().filter(status=ABTest.Status.COMPLETED)
            .annotate(users_assigned=Coalesce(Subquery(assigned), 0), latest_result_id=Subquery(latest))
            .order_by("-ended_at", "-id"))


def latest_results(tests: Iterable[ABTest]) -> dict[int, ABTestResult]:
    """The latest stored analysis of each test of ``abtest_history()`` (by test pk; absent: none), one query."""
    ids = [t.latest_result_id for t in tests if getattr(t, "latest_result_id", None) is not None]
    return {r.test_id: r for r in ABTestResult.objects.filter(pk__in=ids)} if ids else {}


def latest_result(*, test: ABTest) -> ABTestResult | None:
    return test.results.order_by("-calculated_at", "-id").first()


def results_of(*, test: ABTest) -> QuerySet[ABTestResult]:
    return test.results.order_by("-calculated_at", "-id")


def users_assigned(*, test: ABTest) -> int:
    return ABTestAssignment.objects.filter(test=test).count()


_FAR_FUTURE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)

PRE_PERIOD_DAYS = rollup.PRE_PERIOD_DAYS  # CUPED's covariate: each customer's behaviour in the 4 weeks before the test started

# One grouped pass for the whole analysis: the campaign's events of the types the test's metrics use are
# grouped per assigned customer (in-test value y and pre-period covariate x per type, by CASE so the same
# SQL runs on PostgreSQL and SQLite), then per variant into sufficient statistics: customers with the
# event, sum y, sum y^2, customers with pre-period events, sum x, sum x^2, customers with both, sum x*y.
# Customers without any such event add 0 to every sum, so only the event side is grouped; users per
# variant come from the (test, variant) index. In-test: at or after the customer's assignment and not
# after the end. Pre-period: in the PRE_PERIOD_DAYS before the start and before the customer's assignment,
# so no in-test event is ever part of x.
_PER_TYPE_SQL = """
        MAX(CASE WHEN e.type = %s AND e.occurred_at >= a.assigned_at THEN 1 ELSE 0 END) AS y{i}_any,
        SUM(CASE WHEN e.type = %s AND e.occurred_at >= a.assigned_at THEN COALESCE(e.amount, 0) ELSE 0 END) AS y{i},
        MAX(CASE WHEN e.type = %s AND e.occurred_at >= %s AND e.occurred_at < %s AND e.occurred_at < a.assigned_at
                 THEN 1 ELSE 0 END) AS x{i}_any,
        SUM(CASE WHEN e.type = %s AND e.occurred_at >= %s AND e.occurred_at < %s AND e.occurred_at < a.assigned_at
                 THEN COALESCE(e.amount, 0) ELSE 0 END) AS x{i}"""
_PER_VARIANT_SQL = """
        SUM(y{i}_any), SUM(y{i}), SUM(y{i} * y{i}), SUM(x{i}_any), SUM(x{i}), SUM(x{i} * x{i}),
        SUM(x{i}_any * y{i}_any), SUM(x{i} * y{i})"""
_SUMS_SQL = """
WITH users AS (
    SELECT variant_id, COUNT(*) AS n FROM {assignments} WHERE test_id = %s GROUP BY variant_id
), per_customer AS (
    SELECT a.variant_id, {per_type}
    FROM {events} e
    JOIN {assignments} a ON a.test_id = %s AND a.customer_id = e.customer_id
    WHERE e.campaign_id = %s AND e.type IN ({types}) AND e.occurred_at <= %s
    GROUP BY a.variant_id, a.customer_id
), per_variant AS (
    SELECT variant_id, {per_variant}
    FROM per_customer
    GROUP BY variant_id
)
SELECT u.variant_id, u.n, p.*
FROM users u LEFT JOIN per_variant p ON p.variant_id = u.variant_id
"""


@dataclass(frozen=True)
class TypeSums:
    """One arm's sufficient statistics for one event type (y: in the test, x: the pre-period)."""

    customers: int = 0  # customers with at least one counted event
    y: float = 0.0  # sum over customers of their counted amounts
    y_sq: float = 0.0
    x_customers: int = 0  # customers with pre-period events
    x: float = 0.0
    x_sq: float = 0.0
    xy_customers: int = 0  # customers with both
    xy: float = 0.0  # sum over customers of x * y


@dataclass(frozen=True)
class ArmSums:
    variant_pk: int
    users: int
    by_type: dict[str, TypeSums]


def arm_sums(*, test: ABTest, event_types) -> list[ArmSums]:
    """Per variant (control first): users and, for each event type, the sums above: from the test's rollup
    (a few rows kept up to date by ``abtests.rollup``) when it is kept, else from the raw events."""
    types = list(dict.fromkeys([Event.Type.CONVERSION, *event_types]))
    if set(types) <= set(rollup.tracked_types()):
        kept = _arm_sums_kept(test, types)
        if kept is not None:
            return kept
    return arm_sums_from_events(test=test, event_types=event_types)


def _arm_sums_kept(test: ABTest, types: list[str]) -> list[ArmSums] | None:
    rows = {(variant_pk, event_type): vals for variant_pk, event_type, *vals in
            ABTestArmSums.objects.filter(test=test).values_list("variant_id", "event_type", "users", *rollup.SUM_FIELDS)}
    if not rows:
        return None
    out = []
    for v in test.ordered_variants:
        users = int(rows[(v.pk, rollup.USERS)][0]) if (v.pk, rollup.USERS) in rows else 0
        sums = {}
        for t in types:
            _, c, y, ysq, xc, x, xsq, xyc, xy = rows.get((v.pk, t)) or (0,) * 9
            sums[t] = TypeSums(int(c), float(y), float(ysq), int(xc), float(x), float(xsq), int(xyc), float(xy))
        out.append(ArmSums(variant_pk=v.pk, users=users, by_type=sums))
    return out


def arm_sums_from_events(*, test: ABTest, event_types) -> list[ArmSums]:
    """``arm_sums`` computed from the raw events in one grouped query (the reference the rollup must equal)."""
    types = list(dict.fromkeys([Event.Type.CONVERSION, *event_types]))
    adapt = connection.ops.adapt_datetimefield_value
    ended = adapt(test.ended_at or _FAR_FUTURE)
    if test.started_at is not None:
        window = [adapt(test.started_at - dt.timedelta(days=PRE_PERIOD_DAYS)), adapt(test.started_at)]
    else:
        window = [ended, ended]  # not started: an empty pre-period
    sql = _SUMS_SQL.format(
        assignments=ABTestAssignment._meta.db_table, events=Event._meta.db_table,
        per_type=",".join(_PER_TYPE_SQL.format(i=i) for i in range(len(types))),
        per_variant=",".join(_PER_VARIANT_SQL.format(i=i) for i in range(len(types))),
        types=", ".join(["%s"] * len(types)),
    )
    params: list = [test.pk]
    for t in types:
        params += [t, t, t, *window, t, *window]
    params += [test.pk, test.campaign_id, *types, ended]
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            # A short analytic query: JIT compilation costs more than it saves, and the per-customer
            # grouping should stay in memory.
            cur.execute("SET LOCAL jit = off")
            cur.execute("SET LOCAL work_mem = '64MB'")
        cur.execute(sql, params)
        by_variant = {row[0]: row for row in cur.fetchall()}
    out = []
    for v in test.ordered_variants:
        row = by_variant.get(v.pk)
        users = int(row[1]) if row else 0
        sums = {}
        for i, t in enumerate(types):
            vals = row[3 + 8 * i: 11 + 8 * i] if row else ()
            if not vals or vals[0] is None:
                sums[t] = TypeSums()
                continue
            c, y, ysq, xc, x, xsq, xyc, xy = vals
            sums[t] = TypeSums(int(c), float(y), float(ysq), int(xc), float(x), float(xsq), int(xyc), float(xy))
        out.append(ArmSums(variant_pk=v.pk, users=users, by_type=sums))
    return out


def _arm_totals_of(test: ABTest, sums: list[ArmSums]) -> list[ArmTotals]:
    arms = []
    for v, s in zip(test.ordered_variants, sums, strict=True):
        conv = s.by_type[Event.Type.CONVERSION]
        arms.append(ArmTotals(position=v.position, name=v.name, weight=v.weight, users=s.users,
                              conversions=conv.customers, revenue=conv.y, revenue_sq=conv.y_sq))
    return arms


def arm_totals(*, test: ABTest) -> list[ArmTotals]:
    """Users, converters and revenue sums per variant (control first), in one grouped query."""
    return _arm_totals_of(test, arm_sums(test=test, event_types=()))


def metric_arms(*, test: ABTest, names, sums: list[ArmSums] | None = None) -> dict[str, list[metrics.MetricArm]]:
    """Per metric, each arm's sums with its CUPED covariate (control first), all from one ``arm_sums`` pass.
    Binary metrics: y and x are 0/1 per customer (had the event / had a pre-period event); revenue: amounts."""
    if sums is None:
        sums = arm_sums(test=test, event_types=[metrics.METRICS[n].event_type for n in names])
    out: dict[str, list[metrics.MetricArm]] = {}
    for name in names:
        metric = metrics.METRICS[name]
        row = []
        for s in sums:
            t = s.by_type[metric.event_type]
            if metric.kind == metrics.BINARY:
                row.append(metrics.MetricArm(s.users, t.customers, t.customers, x_total=t.x_customers,
                                             x_sq=t.x_customers, xy=t.xy_customers))
            else:
                row.append(metrics.MetricArm(s.users, t.y, t.y_sq, x_total=t.x, x_sq=t.x_sq, xy=t.xy))
        out[name] = row
    return out


def _cuped_goal(test: ABTest, by_metric, config: analysis.Config) -> tuple[dict, tuple | None]:
    """The goal's CUPED summary and, if it applies, the adjusted comparisons the verdict should use."""
    if not test.cuped:
        return {"applied": False, "reason": "switched off for this test"}, None
    if config.sequential and config.metric == analysis.CONVERSION_RATE:
        return {"applied": False, "reason": "a sequential test keeps its always-valid statistics on the raw counts"}, None
    arms = by_metric[test.primary_metric]
    if not cuped_math.applicable(metrics.cuped_arms(arms)):
        return {"applied": False, "reason": f"no pre-period data: no customer has {metrics.METRICS[test.primary_metric].label} "
                                            f"events in the {PRE_PERIOD_DAYS} days before the test started"}, None
    comparisons = metrics.compare(metrics.METRICS[test.primary_metric], arms, test.confidence_level, use_cuped=True)
    p = [c.p_value for c in comparisons]
    p_adj = list(multiple_testing.holm(p)) if len(p) > 1 else p
    result = comparisons[0].cuped
    summary = {"applied": True, "reason": "", "theta": result.theta, "variance_reduction": result.variance_reduction,
               "correlation": result.correlation, "pre_period_days": PRE_PERIOD_DAYS}
    return summary, tuple((c.lift, c.ci_low, c.ci_high, c.p_value, float(pa)) for c, pa in zip(comparisons, p_adj, strict=True))


@dataclass(frozen=True)
class Evaluation:
    arms: list[ArmTotals]
    outcome: analysis.Outcome | None  # None while nobody is assigned
    metrics: list[metrics.MetricResult]
    cuped: dict = dataclasses.field(default_factory=dict)


# How long a process keeps an evaluation. The key is every input of it (below), so an entry is never stale;
# the time only bounds how long an unused one holds memory.
EVALUATION_CACHE_SECONDS = 300


def _evaluation_key(test: ABTest, sums: list[ArmSums], config: analysis.Config) -> str:
    """Everything ``evaluate`` reads: the test's and its variants' columns, the arms' sums (rollup or raw
    events alike) and the analysis config (for a sequential test, the previous look's p-values)."""
    row = tuple(getattr(test, f.attname) for f in ABTest._meta.concrete_fields)
    variants = tuple(tuple(getattr(v, f.attname) for f in ABTestVariant._meta.concrete_fields)
                     for v in test.ordered_variants)
    return "abtests:evaluation:" + hashlib.sha256(repr((row, variants, sums, config)).encode()).hexdigest()


def evaluate(*, test: ABTest) -> Evaluation:
    """The analysis of a test as it stands now: the verdict on the goal metric (``analysis``), blocked by any
    failing guardrail, and every metric's row (``metrics``). One place for the analyze action and the status.

    The statistics (CUPED, always-valid p-values, Bayesian quadrature) cost milliseconds of CPU per call, and
    the status page and API ask for them on every view while the inputs change only when data arrives: the
    result is kept in the process's cache under a digest of all its inputs, read again on every call (one
    query for the sums, one for a sequential test's previous look), so a changed input is a new key at once.
    """
    wanted = list(dict.fromkeys([test.primary_metric, *test.secondary_metrics, *test.guardrail_metrics]))
    sums = arm_sums(test=test, event_types=[metrics.METRICS[n].event_type for n in wanted])
    arms = _arm_totals_of(test, sums)
    if sum(a.users for a in arms) == 0:
        return Evaluation(arms=arms, outcome=None, metrics=[])
    config = analysis_config(test)
    key = _evaluation_key(test, sums, config)
    kept = cache.get(key)
    if kept is None:
        kept = _evaluate(test, sums, arms, wanted, config)
        cache.set(key, kept, EVALUATION_CACHE_SECONDS)
    return kept


def _evaluate(test: ABTest, sums: list[ArmSums], arms: list[ArmTotals], wanted: list[str],
              config: analysis.Config) -> Evaluation:
    names = [a.name for a in arms]
    by_metric = metric_arms(test=test, names=wanted, sums=sums)
    side_rows = metrics.evaluate(names=names, goal=test.primary_metric, secondary=test.secondary_metrics,
                                 guardrails=test.guardrail_metrics, arms_by_metric=by_metric,
                                 confidence_level=test.confidence_level, correction=test.multiple_testing,
                                 goal_rows=[], use_cuped=test.cuped)
    failed = tuple((variant, label) for variant, labels in metrics.failed_guardrails(side_rows).items()
                   for label in labels)
    config = dataclasses.replace(config, failed_guardrails=failed)
    cuped_summary, adjusted = _cuped_goal(test, by_metric, config)
    config = dataclasses.replace(config, adjusted=adjusted)
    outcome = analysis.analyze(arms=[analysis.Arm(name=a.name, weight=a.weight, users=a.users,
                                                  conversions=a.conversions, revenue_mean=a.revenue_mean,
                                                  revenue_variance=a.revenue_variance) for a in arms],
                               config=config)
    return Evaluation(arms=arms, outcome=outcome, cuped=cuped_summary,
                      metrics=_goal_rows(test, outcome, by_metric, cuped_summary) + side_rows)


def _goal_rows(test: ABTest, outcome: analysis.Outcome, by_metric, cuped_summary: dict) -> list[metrics.MetricResult]:
    """The goal metric's rows, exactly as the verdict computed them."""
    metric = metrics.METRICS[test.primary_metric]
    alpha = 1.0 - test.confidence_level
    control = by_metric[test.primary_metric][0]
    rows = []
    for arm, sums in zip(outcome.arms[1:], by_metric[test.primary_metric][1:], strict=True):
        diff = sums.mean - control.mean
        rows.append(metrics.MetricResult(
            metric=metric.name, label=metric.label, role=metrics.GOAL, variant=arm.name, value=sums.mean,
            control_value=control.mean, lift=arm.lift, ci_low=arm.ci_low, ci_high=arm.ci_high, p_value=arm.p_value,
            p_value_adjusted=arm.p_value_adjusted,
            significant=arm.p_value_adjusted is not None and arm.p_value_adjusted < alpha,
            direction="better" if diff > 0 else "worse" if diff < 0 else "flat",
            note=f"as the verdict used it ({outcome.method}{', CUPED' if cuped_summary.get('applied') else ''})",
            cuped_variance_reduction=cuped_summary.get("variance_reduction") if cuped_summary.get("applied") else None,
        ))
    return rows


def abtest_status(*, test: ABTest) -> dict:
    """Live progress of a test: users and conversions per variant, significance so far, progress vs target.

    Computed from the assignments and events now (not from the last stored analysis), so it is current.
    """
    if test.status != ABTest.Status.DRAFT:
        evaluation = evaluate(test=test)
        arms, outcome, metric_rows, cuped_summary = (evaluation.arms, evaluation.outcome, evaluation.metrics,
                                                     evaluation.cuped)
    else:
        cuped_summary = {}
        arms = [ArmTotals(position=v.position, name=v.name, weight=v.weight, users=0, conversions=0, revenue=0.0,
                          revenue_sq=0.0) for v in test.ordered_variants]
        outcome, metric_rows = None, []
    total = sum(a.users for a in arms)
    by_name = {a.name: a for a in outcome.arms} if outcome else {}
    variants = []
    for a in arms:
        o = by_name.get(a.name)
        variants.append({
            "name": a.name, "weight": a.weight, "control": a.position == 0, "users": a.users,
            "conversions": a.conversions, "conversion_rate": a.rate, "conversion_rate_pct": 100.0 * a.rate,
            "revenue_per_user": a.revenue_mean,
            "lift": o.lift if o else None, "ci_low": o.ci_low if o else None, "ci_high": o.ci_high if o else None,
            "p_value": o.p_value_adjusted if o else None,
            "chance_to_beat_control": o.chance_to_beat_control if o else None,
            # Risk (conversion-rate points given up on average): shipping this variant / keeping the control.
            "expected_loss": o.expected_loss if o else None,
            "control_expected_loss": o.control_expected_loss if o else None,
            "expected_loss_pp": 100.0 * o.expected_loss if o and o.expected_loss is not None else None,
            "control_expected_loss_pp": (100.0 * o.control_expected_loss
                                         if o and o.control_expected_loss is not None else None),
        })
    target = test.sample_size_target
    return {
        "test_id": test.test_id,
        "status": test.status,
        "users_assigned": total,
        "sample_size_target": target,
        "progress": min(total / target, 1.0) if target else None,
        "progress_percent": round(100.0 * total / target, 2) if target else None,
        "variant_a_conversions": arms[0].conversions,
        "variant_b_conversions": arms[1].conversions if len(arms) > 1 else 0,
        "variants": variants,
        "statistical_significance": outcome.statistical_significance if outcome else None,
        "p_value": outcome.p_value if outcome else None,
        "lift": outcome.lift if outcome else None,
        "confidence_level": test.confidence_level,
        "confidence_percent": f"{test.confidence_level:.1%}".replace(".0%", "%"),
        "srm_detected": outcome.srm_detected if outcome else False,
        "srm_p_value": outcome.srm_p_value if outcome else None,
        "decision": outcome.decision if outcome else None,
        # Fixed tests: the planned sample is reached; sequential: the always-valid boundary says so.
        "safe_to_stop": bool(outcome and outcome.decision != "srm" and outcome.safe_to_stop),
        "reason": outcome.reason if outcome else "not started",
        "users_still_needed": outcome.users_still_needed if outcome else target,
        "recommended_action": outcome.recommended_action if outcome else "Start the test and assign customers.",
        "started_at": test.started_at,
        "ended_at": test.ended_at,
        "multiple_testing": test.multiple_testing,
        "metrics": [r.as_dict() for r in metric_rows],
        "cuped": cuped_summary,
    }


def analysis_config(test: ABTest) -> analysis.Config:
    previous = intervals = None
    if test.sequential:
        last = latest_result(test=test)
        if last is not None and last.method == "sequential":
            p_values = [v.get("p_value") for v in last.variants[1:]]
            previous = tuple(p_values) if all(p is not None for p in p_values) else None
            # The intervals shown at that look (percent, None = unbounded), for the running intersection.
            intervals = tuple((_fraction(v.get("ci_low")), _fraction(v.get("ci_high"))) for v in last.variants[1:])
    return analysis.Config(confidence_level=test.confidence_level, sample_size_target=test.sample_size_target,
                           metric=test.primary_metric, guardrails=tuple(test.guardrail_metrics or ()),
                           sequential=test.sequential, previous_p_values=previous, previous_intervals=intervals)


def _fraction(percent: float | None) -> float | None:
    return None if percent is None else float(percent) / 100.0


# Bounds of the planning calculator: beyond them a plan means nothing (and the numbers overflow).
MAX_PLANNED_USERS_PER_ARM = 1e12
MAX_PLANNED_DAYS = 100 * 365


def sample_size_plan(*, baseline_rate: float, mde: float, confidence_level: float = 0.95, power: float = 0.8,
                     arms: int = 2, daily_traffic: float | None = None) -> dict:
    """Users per arm (``stats.sample_size``) and, given daily traffic, days (``stats.days_needed``)."""
    errors: dict[str, list[str]] = {}
    if not 0 < baseline_rate < 1:
        errors["baseline_rate"] = ["must be between 0 and 1 (exclusive), e.g. 0.05"]
    if mde == 0:
        errors["mde"] = ["must not be 0 (relative effect, e.g. 0.1 for +10%)"]
    elif 0 < baseline_rate < 1 and not 0 < baseline_rate * (1 + mde) < 1:
        errors["mde"] = ["baseline_rate x (1 + mde) must stay between 0 and 1"]
    if not CONFIDENCE_MIN <= confidence_level <= CONFIDENCE_MAX:
        errors["confidence_level"] = [f"must be between {CONFIDENCE_MIN} and {CONFIDENCE_MAX}"]
    if not 0.5 <= power < 1:
        errors["power"] = ["must be between 0.5 and 1 (exclusive), e.g. 0.8"]
    if daily_traffic is not None and daily_traffic <= 0:
        errors["daily_traffic"] = ["must be positive"]
    if errors:
        raise InvalidInput(errors)
    # An effect too small to tell from float noise (mde=1e-17) needs "infinitely" many users: say so.
    try:
        exact = stats.sample_size_unrounded(baseline_rate, mde, confidence_level=confidence_level, power=power, arms=arms)
    except (ValueError, ZeroDivisionError, OverflowError) as exc:
        raise InvalidInput({"mde": [f"no plan for this effect: {exc}"]}) from None
    if not math.isfinite(exact) or exact > MAX_PLANNED_USERS_PER_ARM:
        raise InvalidInput({"mde": [f"the effect is too small to detect with at most {MAX_PLANNED_USERS_PER_ARM:.0e} "
                                  "users per arm; plan for a larger effect"]})
    per_arm = stats.sample_size(baseline_rate, mde, confidence_level=confidence_level, power=power, arms=arms)
    if daily_traffic and per_arm * arms / daily_traffic > MAX_PLANNED_DAYS:
        raise InvalidInput({"daily_traffic": [f"the test would take more than {MAX_PLANNED_DAYS:,} days at this traffic"]})
    days = stats.days_needed(per_arm, arms, daily_traffic) if daily_traffic else None
    return {"baseline_rate": baseline_rate, "mde": mde, "confidence_level": confidence_level, "power": power,
            "arms": arms, "users_per_arm": per_arm, "total_users": per_arm * arms, "daily_traffic": daily_traffic,
            "days_needed": days}


# ---------------------------------------------------------------- results over time

MAX_DAYS = 366  # the over-time series shows at most the last year of a test, day by day

_COUNTED_EVENT_DAYS_SQL = """
SELECT e.type AS event_type, a.variant_id, e.customer_id, {day} AS day, COUNT(*) AS events,
       SUM(COALESCE(e.amount, 0)) AS amount
FROM {events} e
JOIN {assignments} a
  ON a.test_id = %s AND a.customer_id = e.customer_id AND e.occurred_at >= a.assigned_at
WHERE e.campaign_id = %s AND e.type IN ({types}) AND e.occurred_at <= %s
GROUP BY e.type, a.variant_id, e.customer_id, {day}
"""


def counted_event_days(*, test: ABTest, event_types: Sequence[str]) -> pd.DataFrame:
    """Per event type, arm, customer and UTC day (a pandas timestamp at midnight): the counted events and
    the sum of their amounts, for every event of those types that counts for the test under the attribution
    rule above (after the customer's assignment, in the campaign, not after the end). One grouped query for
    all the types, read straight into pandas: the over-time series needs each customer's value per day, not
    each event (one query per type with a Python tuple and a parsed timestamp per event was 1.8x slower at
    300 k assignments, docs/BENCHMARKS.md)."""
    ended = connection.ops.adapt_datetimefield_value(test.ended_at or _FAR_FUTURE)
    sql = _COUNTED_EVENT_DAYS_SQL.format(
        day=db.utc_date_sql("e.occurred_at"), events=Event._meta.db_table,
        assignments=ABTestAssignment._meta.db_table, types=", ".join(["%s"] * len(event_types)))
    frame = db.fetch_frame(sql, [test.pk, test.campaign_id, *event_types, ended],
                           columns=["event_type", "variant_id", "customer_id", "day", "events", "amount"])
    frame["day"] = pd.to_datetime(frame["day"], format="%Y-%m-%d")
    return frame


@dataclass(frozen=True)
class DailyTotals:
    days: list[dt.date]
    arms: list[ABTestVariant]
    conversion: timeline.Cumulative  # customers = converters; total = revenue
    by_type: dict[str, timeline.Cumulative]  # the same for every event type asked for (conversion included)


def daily_totals(*, test: ABTest, today: dt.date | None = None, event_types=()) -> DailyTotals:
    """Per arm and UTC day, cumulative users, converters and revenue sums (the attribution rule above)."""
    arms = test.ordered_variants
    index = {v.pk: i for i, v in enumerate(arms)}
    per_day = list(
        ABTestAssignment.objects.filter(test=test)
        .annotate(day=TruncDate("assigned_at", tzinfo=dt.UTC)).values_list("variant_id", "day")
        .annotate(n=Count("id")).order_by()
    )
    end = (test.ended_at.astimezone(dt.UTC).date() if test.ended_at else today or dt.datetime.now(dt.UTC).date())
    starts = [d for _, d, _ in per_day] + ([test.started_at.astimezone(dt.UTC).date()] if test.started_at else [])
    first = min(starts) if starts else end
    end = max(end, max((d for _, d, _ in per_day), default=end))
    first = max(first, end - dt.timedelta(days=MAX_DAYS - 1))
    days = [first + dt.timedelta(days=i) for i in range((end - first).days + 1)]
    new_users = np.zeros((len(arms), len(days)), dtype=np.int64)
    for variant_pk, day, n in per_day:
        new_users[index[variant_pk], max((day - first).days, 0)] += n  # older days fold into the first shown
    wanted = list(dict.fromkeys([Event.Type.CONVERSION, *event_types]))
    counted = counted_event_days(test=test, event_types=wanted)
    day_index = (counted["day"] - pd.Timestamp(first)).dt.days.to_numpy(dtype=np.int64)
    counted["day_index"] = np.clip(day_index, 0, len(days) - 1)  # older days fold into the first shown
    counted["arm"] = counted["variant_id"].map(index).astype(np.int64)
    by_type = {}
    for event_type in wanted:
        rows = counted[counted["event_type"] == event_type]
        by_type[event_type] = timeline.cumulative(
            arms=len(arms), days=len(days), new_users=new_users,
            event_arm=rows["arm"].to_numpy(dtype=np.int64),
            event_customer=rows["customer_id"].to_numpy(dtype=np.int64),
            event_day=rows["day_index"].to_numpy(dtype=np.int64),
            event_value=rows["amount"].to_numpy(dtype=np.float64),
        )
    return DailyTotals(days=days, arms=arms, conversion=by_type[Event.Type.CONVERSION], by_type=by_type)


def results_over_time(*, test: ABTest, today: dt.date | None = None) -> dict:
    """The primary metric's analysis as it stood at the end of each day: cumulative users and conversions
    per arm, each treatment's lift with its interval and p-value, and the sample-ratio check by day (on the
    cumulative users, and on that day's new users alone, which shows a one-day assignment fault)."""
    side = [(name, metrics.SECONDARY) for name in test.secondary_metrics if name != test.primary_metric]
    side += [(name, metrics.GUARDRAIL) for name in test.guardrail_metrics if name != test.primary_metric]
    totals = daily_totals(test=test, today=today,
                          event_types=[metrics.METRICS[name].event_type for name, _ in side])
    # Each day starts from that day's own history, not from the last stored look (later data).
    config = dataclasses.replace(analysis_config(test), previous_p_values=None, previous_intervals=None)
    weights = [v.weight for v in totals.arms]
    c = totals.conversion
    rows = []
    for d, day in enumerate(totals.days):
        users = c.users[:, d]
        arms = []
        for i, v in enumerate(totals.arms):
            n = int(users[i])
            mean = c.total[i, d] / n if n else 0.0
            variance = max(0.0, (c.total_sq[i, d] - c.total[i, d] ** 2 / n) / (n - 1)) if n > 1 else 0.0
            arms.append(analysis.Arm(name=v.name, weight=v.weight, users=n, conversions=int(c.customers[i, d]),
                                     revenue_mean=mean, revenue_variance=variance))
        outcome = analysis.analyze(arms=arms, config=config) if users.sum() else None
        if outcome is not None and config.sequential:
            # The always-valid p-value is a running minimum over the looks, and its interval the running
            # intersection (percent on the arms, fractions in the config): carry both day to day.
            p_values = tuple(a.p_value for a in outcome.arms[1:])
            if all(p is not None for p in p_values):
                intervals = tuple((None if a.ci_low is None else a.ci_low / 100, None if a.ci_high is None else a.ci_high / 100)
                                  for a in outcome.arms[1:])
                config = dataclasses.replace(config, previous_p_values=p_values, previous_intervals=intervals)
        new = c.new_users[:, d]
        rows.append({
            "date": day,
            "users": [int(u) for u in users],
            "new_users": [int(u) for u in new],
            "conversions": [int(x) for x in c.customers[:, d]],
            "revenue_per_user": [float(c.total[i, d] / users[i]) if users[i] else 0.0 for i in range(len(users))],
            "srm_p_value": outcome.srm_p_value if outcome else None,
            "srm_detected": bool(outcome and outcome.srm_detected),
            "srm_p_value_day": float(stats.srm_p_value(new.tolist(), weights)) if new.sum() else None,
            "treatments": [
                {"name": a.name, "lift": a.lift, "ci_low": a.ci_low, "ci_high": a.ci_high, "p_value": a.p_value_adjusted,
                 "chance_to_beat_control": a.chance_to_beat_control}
                for a in (outcome.arms[1:] if outcome else [])
            ],
        })
    peeking = ("sequential test: each day's interval and p-value are always valid, so stopping when one "
               "excludes 0 keeps the false-positive rate" if config.sequential else
               "fixed-horizon test: each day's interval shows how the estimate settles, but only the analysis at "
               "the planned sample decides; stopping the first day an interval excludes 0 inflates false positives")
    return {
        "test_id": test.test_id,
        "metric": test.primary_metric,
        "confidence_level": test.confidence_level,
        "sequential": test.sequential,
        "variants": [v.name for v in totals.arms],
        "note": peeking,
        "days": rows,
        "metrics": [_metric_over_time(test, totals, name, role) for name, role in side],
    }


def _metric_over_time(test: ABTest, totals: DailyTotals, name: str, role: str) -> dict:
    """A secondary metric or guardrail by day: each treatment's lift with its own (unadjusted) interval."""
    metric = metrics.METRICS[name]
    c = totals.by_type[metric.event_type]
    days = []
    for d, day in enumerate(totals.days):
        if metric.kind == metrics.BINARY:
            arms = [metrics.MetricArm(int(c.users[i, d]), int(c.customers[i, d]), int(c.customers[i, d]))
                    for i in range(len(totals.arms))]
        else:
            arms = [metrics.MetricArm(int(c.users[i, d]), float(c.total[i, d]), float(c.total_sq[i, d]))
                    for i in range(len(totals.arms))]
        comparisons = metrics.compare(metric, arms, test.confidence_level)
        days.append({"date": day, "treatments": [
            {"name": v.name, "lift": None if cmp is None or cmp.lift is None else 100.0 * cmp.lift,
             "ci_low": None if cmp is None or cmp.ci_low is None else 100.0 * cmp.ci_low,
             "ci_high": None if cmp is None or cmp.ci_high is None else 100.0 * cmp.ci_high,
             "p_value": None if cmp is None else cmp.p_value, "chance_to_beat_control": None}
            for v, cmp in zip(totals.arms[1:], comparisons, strict=True)]})
    return {"metric": name, "label": metric.label, "role": role, "days": days}


# ---------------------------------------------------------------- breakdowns

# Customer slices (segment, time zone) are attributes fixed before assignment, so each slice is itself a
# randomised experiment. Outcome slices (an event property: the channel) split the goal instead: "converted
# through email" is an outcome every assigned user has or has not, so each channel is compared over all
# the arm's users, again a randomised comparison (``_channel_breakdown``).
BREAKDOWN_DIMENSIONS = {"segment": "COALESCE(c.segment_id, 0)", "timezone": "c.timezone"}
EVENT_BREAKDOWNS = ("channel",)
BREAKDOWN_BY = (*BREAKDOWN_DIMENSIONS, *EVENT_BREAKDOWNS)
NO_CHANNEL = "(no channel)"

# One query per dimension: users per (arm, slice), and each converter's revenue joined to them. The converters
# come from the raw events, or, for a kept test (abtests/rollup.py), from its outcome rows (one per converter,
# its counted revenue in ``y``), which spares joining the campaign's events again.
_BREAKDOWN_SQL = """
WITH users AS (
    SELECT a.variant_id, {key} AS k, COUNT(*) AS n
    FROM {assignments} a JOIN {customers} c ON c.id = a.customer_id
    WHERE a.test_id = %s
    GROUP BY a.variant_id, {key}
), converters AS ({converters})
SELECT u.variant_id, u.k, u.n, COUNT(cv.variant_id), COALESCE(SUM(cv.revenue), 0),
       COALESCE(SUM(cv.revenue * cv.revenue), 0)
FROM users u
LEFT JOIN converters cv ON cv.variant_id = u.variant_id AND cv.k = u.k
GROUP BY u.variant_id, u.k, u.n
"""
_CONVERTERS_FROM_EVENTS_SQL = """
    SELECT a.variant_id, {key} AS k, SUM(COALESCE(e.amount, 0)) AS revenue
    FROM {events} e
    JOIN {assignments} a ON a.test_id = %s AND a.customer_id = e.customer_id AND e.occurred_at >= a.assigned_at
    JOIN {customers} c ON c.id = a.customer_id
    WHERE e.campaign_id = %s AND e.type = %s AND e.occurred_at <= %s
    GROUP BY a.variant_id, {key}, a.customer_id
"""
_CONVERTERS_FROM_ROLLUP_SQL = """
    SELECT o.variant_id, {key} AS k, o.y AS revenue
    FROM {outcomes} o JOIN {customers} c ON c.id = o.customer_id
    WHERE o.test_id = %s AND o.event_type = %s AND o.y_any
"""


def _breakdown_rows(test: ABTest, by: str, *, from_events: bool = False) -> list[tuple]:
    """(variant pk, slice key, users, converters, revenue, revenue²) per variant and slice: from the kept
    rollup when the test has one (unless ``from_events``: the benchmark's comparison), else from the raw
    events (the same attribution rule)."""
    names = {"key": BREAKDOWN_DIMENSIONS[by], "assignments": ABTestAssignment._meta.db_table,
             "customers": Customer._meta.db_table, "events": Event._meta.db_table,
             "outcomes": ABTestCustomerOutcome._meta.db_table}
    if not from_events and rollup.is_kept(test):
        converters = _CONVERTERS_FROM_ROLLUP_SQL
        params: list = [test.pk, test.pk, Event.Type.CONVERSION]
    else:
        converters = _CONVERTERS_FROM_EVENTS_SQL
        ended = connection.ops.adapt_datetimefield_value(test.ended_at or _FAR_FUTURE)
        params = [test.pk, test.pk, test.campaign_id, Event.Type.CONVERSION, ended]
    sql = _BREAKDOWN_SQL.format(converters=converters.format(**names), **names)
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def breakdown(*, test: ABTest, by: str) -> dict:
    """The goal metric per slice of customers (by segment or time zone) or per channel of its events, each
    treatment vs the control, with p-values adjusted across every slice comparison (the test's correction)."""
    if by not in BREAKDOWN_BY:
        raise InvalidInput({"by": [f"one of {', '.join(BREAKDOWN_BY)}"]})
    if by == "channel":
        return _channel_breakdown(test)
    rows = _breakdown_rows(test, by)
    variants = test.ordered_variants
    index = {v.pk: i for i, v in enumerate(variants)}
    labels: dict = {}
    if by == "segment":
        labels = dict(Segment.objects.filter(pk__in={k for _, k, *_ in rows}).values_list("pk", "name"))
        labels[0] = "(no segment)"
    zero = metrics.MetricArm(0, 0.0, 0.0)
    by_slice: dict[str, list[metrics.MetricArm]] = {}
    revenue = test.primary_metric == "revenue_per_user"
    for variant_pk, key, n, converters, total, total_sq in rows:
        name = str(labels.get(key, key))
        arms = by_slice.setdefault(name, [zero] * len(variants))
        arms[index[variant_pk]] = (metrics.MetricArm(int(n), float(total), float(total_sq)) if revenue
                                   else metrics.MetricArm(int(n), int(converters), int(converters)))
    slice_rows, note = breakdown_math.slices(names=[v.name for v in variants], metric=test.primary_metric,
                                             by_slice=by_slice, confidence_level=test.confidence_level,
                                             correction=test.multiple_testing)
    return {"test_id": test.test_id, "by": by, "metric": test.primary_metric, "multiple_testing": test.multiple_testing,
            "confidence_level": test.confidence_level, "note": note, "slices": [r.as_dict() for r in slice_rows]}


_CHANNEL_SQL = """
WITH per_customer AS (
    SELECT a.variant_id, {key} AS k, SUM(COALESCE(e.amount, 0)) AS revenue
    FROM {events} e
    JOIN {assignments} a ON a.test_id = %s AND a.customer_id = e.customer_id AND e.occurred_at >= a.assigned_at
    WHERE e.campaign_id = %s AND e.type = %s AND e.occurred_at <= %s
    GROUP BY a.variant_id, {key}, a.customer_id
)
SELECT variant_id, k, COUNT(*), SUM(revenue), SUM(revenue * revenue)
FROM per_customer
GROUP BY variant_id, k
"""


def _channel_rows(test: ABTest, keep: list[str] | None) -> list[tuple]:
    """(variant pk, channel, customers with a counted conversion through it, their revenue, its square sum);
    with ``keep``, every other channel is counted as one ``(other)`` channel (a customer once)."""
    if keep is None:
        key, params = "e.channel", []
    else:
        key = f"CASE WHEN e.channel IN ({', '.join(['%s'] * len(keep))}) THEN e.channel ELSE %s END"
        params = [*keep, breakdown_math.OTHER]
    sql = _CHANNEL_SQL.format(key=key, events=Event._meta.db_table, assignments=ABTestAssignment._meta.db_table)
    ended = connection.ops.adapt_datetimefield_value(test.ended_at or _FAR_FUTURE)
    with connection.cursor() as cur:  # the key's parameters: in the SELECT, then in the GROUP BY
        cur.execute(sql, [*params, test.pk, test.campaign_id, Event.Type.CONVERSION, ended, *params])
        return cur.fetchall()


def _channel_breakdown(test: ABTest) -> dict:
    """The goal counted through each channel, per assigned user: converters through email / users, and so on
    (revenue per user: the revenue that came through the channel). Every slice holds all the arm's users, so
    the channels' rates add up to more than the whole test's when customers converted through several."""
    rows = _channel_rows(test, None)
    channels = {k for _, k, *_ in rows}
    if len(channels) > breakdown_math.MAX_SLICES:
        converters: dict[str, int] = {}
        for _, k, n, *_ in rows:
            converters[k] = converters.get(k, 0) + int(n)
        ranked = sorted(channels, key=lambda k: (-converters[k], k))
        rows = _channel_rows(test, ranked[: breakdown_math.MAX_SLICES - 1])
    variants = test.ordered_variants
    index = {v.pk: i for i, v in enumerate(variants)}
    counted = dict(ABTestAssignment.objects.filter(test=test).values_list("variant_id").annotate(n=Count("id"))
                   .order_by())
    users = [int(counted.get(v.pk, 0)) for v in variants]
    revenue = test.primary_metric == "revenue_per_user"
    by_slice: dict[str, list[metrics.MetricArm]] = {}
    for variant_pk, key, converters_n, total, total_sq in rows:
        name = str(key) if key else NO_CHANNEL
        arms = by_slice.setdefault(name, [metrics.MetricArm(n, 0.0, 0.0) for n in users])
        i = index[variant_pk]
        arms[i] = (metrics.MetricArm(users[i], float(total), float(total_sq)) if revenue
                   else metrics.MetricArm(users[i], int(converters_n), int(converters_n)))
    slice_rows, note = breakdown_math.slices(names=[v.name for v in variants], metric=test.primary_metric,
                                             by_slice=by_slice, confidence_level=test.confidence_level,
                                             correction=test.multiple_testing, outcome_slices=True)
    return {"test_id": test.test_id, "by": "channel", "metric": test.primary_metric,
            "multiple_testing": test.multiple_testing, "confidence_level": test.confidence_level, "note": note,
            "slices": [r.as_dict() for r in slice_rows]}
