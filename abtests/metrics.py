"""Several metrics per test: the goal, secondary metrics and guardrails (pure: no Django).

Every metric is a per-customer value averaged over all assigned users of an arm:

- binary metrics (conversion rate, open rate, click rate): 1 if the customer has at least one counted
  event of the metric's type, else 0; compared with ``stats.proportions_test`` (pooled z-test, delta-method
  interval of the relative lift);
- revenue per user: the sum of the customer's counted conversion amounts (0 for non-converters);
  compared with ``stats.welch_test``.

Roles:
- the **goal** is the test's primary metric; its row repeats what the verdict used (``analysis``);
- **secondary** metrics are reported with their own intervals; their p-values are adjusted across the
  family (every secondary metric x every treatment) by Holm or Benjamini-Hochberg
  (``multiple_testing``), and "significant" uses the adjusted p-value. Intervals are not adjusted;
- **guardrails** must not get worse: a guardrail fails for a treatment when it is worse than the
  control with an unadjusted p-value below alpha (no correction, so a guardrail errs towards failing),
  and a failing guardrail blocks shipping that treatment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from abtests import cuped as cuped_math
from abtests import multiple_testing, stats

BINARY = "binary"
MEAN = "mean"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    kind: str
    event_type: str  # the event whose presence (binary) or amount (mean) the metric counts


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("conversion_rate", "conversion rate", BINARY, "conversion"),
        Metric("revenue_per_user", "revenue per user", MEAN, "conversion"),
        Metric("open_rate", "open rate", BINARY, "notification_opened"),
        Metric("click_rate", "click rate", BINARY, "click"),
    )
}

# The names a test may list as secondary metrics or guardrails (one choice set in the API schema).
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)
GOAL, SECONDARY, GUARDRAIL = "goal", "secondary", "guardrail"


@dataclass(frozen=True)
class MetricArm:
    """One arm's sums for one metric: ``total`` = sum of per-user values (customers with the event, for a
    binary metric), ``total_sq`` = sum of their squares (equal to ``total`` for a binary metric)."""

    users: int
    total: float
    total_sq: float
    # CUPED covariate: the same metric per customer before the test (0 for customers without pre-period events).
    x_total: float = 0.0
    x_sq: float = 0.0
    xy: float = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.users if self.users else 0.0

    @property
    def variance(self) -> float:
        if self.users < 2:
            return 0.0
        return max(0.0, (self.total_sq - self.total**2 / self.users) / (self.users - 1))


@dataclass
class MetricResult:
    """One metric for one treatment vs the control. Lift and interval in percent, relative to the control."""

    metric: str
    label: str
    role: str
    variant: str
    value: float  # the treatment's mean per user
    control_value: float
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_value_adjusted: float | None  # secondary: over the family; goal: as the verdict used it; guardrail: = p
    significant: bool
    direction: str  # better | worse | flat (the sign of the difference, whatever its significance)
    guardrail_failed: bool | None = None  # guardrails only
    note: str = ""
    cuped_variance_reduction: float | None = None  # share of the variance CUPED removed; None if not applied

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Comparison:
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float
    cuped: cuped_math.CupedResult | None = None


def cuped_arms(arms: Sequence[MetricArm]) -> list[cuped_math.CupedArm]:
    return [cuped_math.CupedArm(users=a.users, y_total=a.total, y_sq=a.total_sq, x_total=a.x_total, x_sq=a.x_sq,
                                xy=a.xy) for a in arms]


def compare(metric: Metric, arms: Sequence[MetricArm], confidence_level: float,
            use_cuped: bool = False) -> list[Comparison | None]:
    """Each treatment vs the control (arm 0), one entry per treatment (None when it cannot be compared).

    With ``use_cuped`` and a covariate that varies, every metric (binary too) is compared by Welch's
    t-test on the CUPED-adjusted means and variances. Relative figures are fractions (0.05 = +5 %)."""
    users = [a.users for a in arms]
    if use_cuped and cuped_math.applicable(cuped_arms(arms)):
        adjusted = cuped_math.adjust(cuped_arms(arms))
        w = stats.welch_test(adjusted.means, adjusted.variances, users, confidence_level=confidence_level)
        return [Comparison(r.rel_diff, r.rel_ci_low, r.rel_ci_high, r.p_value, adjusted) for r in w.arms[1:]]
    if metric.kind == BINARY:
        if users[0] == 0:
            return [None] * (len(arms) - 1)
        result = stats.proportions_test(users, [int(round(a.total)) for a in arms], confidence_level=confidence_level)
        return [None if r.users == 0 else Comparison(r.lift, r.ci_low, r.ci_high, r.p_value) for r in result.arms[1:]]
    out: list[Comparison | None] = []
    for arm in arms[1:]:
        if min(arms[0].users, arm.users) < 2:
            out.append(None)
            continue
        w = stats.welch_test([arms[0].mean, arm.mean], [arms[0].variance, arm.variance], [arms[0].users, arm.users],
                             confidence_level=confidence_level).arms[1]
        out.append(Comparison(w.rel_diff, w.rel_ci_low, w.rel_ci_high, w.p_value))
    return out


def _pct(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else 100.0 * x


def _direction(diff: float) -> str:
    return "better" if diff > 0 else "worse" if diff < 0 else "flat"


def evaluate(
    *,
    names: Sequence[str],
    goal: str,
    secondary: Sequence[str],
    guardrails: Sequence[str],
    arms_by_metric: dict[str, Sequence[MetricArm]],
    confidence_level: float,
    correction: str = multiple_testing.HOLM,
    goal_rows: Sequence[MetricResult] | None = None,
    use_cuped: bool = False,
) -> list[MetricResult]:
    """The metric rows of a test: goal, then secondary, then guardrails, each for every treatment.

    ``goal_rows`` (from the verdict's analysis) are used as given so the goal shows exactly what decided;
    without them the goal is compared here like a secondary metric, unadjusted."""
    alpha = 1.0 - confidence_level
    rows: list[MetricResult] = []

    def build(name: str, role: str) -> list[MetricResult]:
        metric = METRICS[name]
        arms = arms_by_metric[name]
        built = []
        for i, comparison in enumerate(compare(metric, arms, confidence_level, use_cuped), start=1):
            control, arm = arms[0], arms[i]
            diff = arm.mean - control.mean
            if comparison is None:
                built.append(MetricResult(metric=name, label=metric.label, role=role, variant=names[i], value=arm.mean,
                                          control_value=control.mean, lift=None, ci_low=None, ci_high=None,
                                          p_value=None, p_value_adjusted=None, significant=False,
                                          direction=_direction(diff), note="too few users to compare"))
                continue
            note = "" if comparison.lift is not None else "the control's value is 0, so a relative lift is undefined"
            built.append(MetricResult(
                metric=name, label=metric.label, role=role, variant=names[i], value=arm.mean, control_value=control.mean,
                lift=_pct(comparison.lift), ci_low=_pct(comparison.ci_low), ci_high=_pct(comparison.ci_high),
                p_value=comparison.p_value, p_value_adjusted=comparison.p_value,
                significant=comparison.p_value < alpha, direction=_direction(diff), note=note,
                cuped_variance_reduction=comparison.cuped.variance_reduction if comparison.cuped else None,
            ))
        return built

    rows.extend(goal_rows if goal_rows is not None else build(goal, GOAL))

    family = [r for name in dict.fromkeys(secondary) if name != goal for r in build(name, SECONDARY)]
    if family:
        raw = np.array([np.nan if r.p_value is None else r.p_value for r in family])
        adjusted = multiple_testing.adjust(raw, correction)
        for r, p in zip(family, adjusted, strict=True):
            r.p_value_adjusted = None if math.isnan(p) else float(p)
            r.significant = r.p_value_adjusted is not None and r.p_value_adjusted < alpha
    rows.extend(family)

    for name in dict.fromkeys(guardrails):
        for r in build(name, GUARDRAIL):
            r.guardrail_failed = bool(r.direction == "worse" and r.p_value is not None and r.p_value < alpha)
            rows.append(r)
    return rows


def failed_guardrails(rows: Sequence[MetricResult]) -> dict[str, list[str]]:
    """Variant name -> labels of the guardrails it fails."""
    out: dict[str, list[str]] = {}
    for r in rows:
        if r.role == GUARDRAIL and r.guardrail_failed:
            out.setdefault(r.variant, []).append(r.label)
    return out
