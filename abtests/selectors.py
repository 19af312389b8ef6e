"""Reads for the A/B tests: lookups, lists, and the per-variant totals that every analysis starts from.

Attribution rule: a conversion counts for a test when (1) its customer is assigned in the test,
(2) it happened at or after that customer's ``assigned_at`` (and, once the test ended, not after
``ended_at``), and (3) it belongs to the test's campaign. A customer "converts" if at least one
conversion counts; their revenue is the sum of the counted conversions' amounts. Conversion rate
is converters / assigned users; revenue per user averages over all assigned users (zeros included).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Count, Prefetch, QuerySet

from abtests import analysis, stats
from abtests.models import CONFIDENCE_MAX, CONFIDENCE_MIN, ABTest, ABTestAssignment, ABTestResult, ABTestVariant
from campaigns.models import Event
from marketing_ai.api import BadRequest, NotFound


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


def test_get(*, test_id: str) -> ABTest:
    test = _tests().filter(test_id=test_id).first()
    if test is None:
        raise NotFound(f"no A/B test with test_id {test_id!r}")
    return test


def test_list(*, status: str | None = None, campaign_id: str | None = None, search: str | None = None) -> QuerySet[ABTest]:
    # Meta.ordering does not apply to a GROUP BY query: order explicitly so pages are stable.
    qs = _tests().annotate(users_assigned=Count("assignments", distinct=True)).order_by("-created_at", "-id")
    if status:
        qs = qs.filter(status=status)
    if campaign_id:
        qs = qs.filter(campaign__campaign_id=campaign_id)
    if search:
        qs = qs.filter(test_name__icontains=search)
    return qs


def test_history() -> QuerySet[ABTest]:
    """Completed tests, most recently ended first."""
    return _tests().filter(status=ABTest.Status.COMPLETED).order_by("-ended_at", "-id")


def latest_result(*, test: ABTest) -> ABTestResult | None:
    return test.results.order_by("-calculated_at", "-id").first()


def results_of(*, test: ABTest) -> QuerySet[ABTestResult]:
    return test.results.order_by("-calculated_at", "-id")


def users_assigned(*, test: ABTest) -> int:
    return ABTestAssignment.objects.filter(test=test).count()


# Users per variant come from the (test, variant) index alone; the counted conversions are grouped per
# customer (for the revenue variance) and then per variant, so the million-row side is never joined
# row by row against the small conversion side.
_ARM_TOTALS_SQL = f"""
WITH users AS (
    SELECT variant_id, COUNT(*) AS n
    FROM {ABTestAssignment._meta.db_table}
    WHERE test_id = %s
    GROUP BY variant_id
), converters AS (
    SELECT a.variant_id, SUM(COALESCE(e.amount, 0)) AS revenue
    FROM {Event._meta.db_table} e
    JOIN {ABTestAssignment._meta.db_table} a
      ON a.test_id = %s AND a.customer_id = e.customer_id AND e.occurred_at >= a.assigned_at
    WHERE e.campaign_id = %s AND e.type = %s AND e.occurred_at <= %s
    GROUP BY a.variant_id, a.customer_id
)
SELECT u.variant_id, u.n, COUNT(c.variant_id), COALESCE(SUM(c.revenue), 0), COALESCE(SUM(c.revenue * c.revenue), 0)
FROM users u
LEFT JOIN converters c ON c.variant_id = u.variant_id
GROUP BY u.variant_id, u.n
"""

_FAR_FUTURE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


def arm_totals(*, test: ABTest) -> list[ArmTotals]:
    """Users, converters and revenue sums per variant (control first), in one grouped query."""
    # Adapted by the backend so SQLite compares text in its own stored format.
    ended = connection.ops.adapt_datetimefield_value(test.ended_at or _FAR_FUTURE)
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            # A short analytic query: JIT compilation costs more than it saves, and the per-customer
            # grouping should stay in memory.
            cur.execute("SET LOCAL jit = off")
            cur.execute("SET LOCAL work_mem = '64MB'")
        cur.execute(_ARM_TOTALS_SQL, [test.pk, test.pk, test.campaign_id, Event.Type.CONVERSION, ended])
        by_variant = {row[0]: row[1:] for row in cur.fetchall()}
    arms = []
    for v in test.ordered_variants:
        users, conversions, revenue, revenue_sq = by_variant.get(v.pk, (0, 0, 0, 0))
        arms.append(ArmTotals(position=v.position, name=v.name, weight=v.weight, users=int(users),
                              conversions=int(conversions), revenue=float(revenue), revenue_sq=float(revenue_sq)))
    return arms


def test_status(*, test: ABTest) -> dict:
    """Live progress of a test: users and conversions per variant, significance so far, progress vs target.

    Computed from the assignments and events now (not from the last stored analysis), so it is current.
    """
    arms = arm_totals(test=test) if test.status != ABTest.Status.DRAFT else [
        ArmTotals(position=v.position, name=v.name, weight=v.weight, users=0, conversions=0, revenue=0.0,
                  revenue_sq=0.0) for v in test.ordered_variants
    ]
    total = sum(a.users for a in arms)
    outcome = None
    if total:
        outcome = analysis.analyze(arms=[analysis.Arm(name=a.name, weight=a.weight, users=a.users,
                                                      conversions=a.conversions, revenue_mean=a.revenue_mean,
                                                      revenue_variance=a.revenue_variance) for a in arms],
                                   config=analysis_config(test))
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
        raise BadRequest(errors)
    per_arm = stats.sample_size(baseline_rate, mde, confidence_level=confidence_level, power=power, arms=arms)
    days = stats.days_needed(per_arm, arms, daily_traffic) if daily_traffic else None
    return {"baseline_rate": baseline_rate, "mde": mde, "confidence_level": confidence_level, "power": power,
            "arms": arms, "users_per_arm": per_arm, "total_users": per_arm * arms, "daily_traffic": daily_traffic,
            "days_needed": days}
