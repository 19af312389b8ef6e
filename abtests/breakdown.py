"""Results by slice (e.g. by customer segment), adjusted for looking at many slices (pure: no Django).

Each slice is compared like the whole test (``metrics.compare``: z-test for a rate, Welch for revenue),
and the p-values of every (slice x treatment) comparison are adjusted together (Holm by default, or
Benjamini-Hochberg, ``multiple_testing``): with 10 slices, one of them looks "significant" at 5 % by
chance about 40 % of the time without an adjustment. Slices too small to compare are listed without
statistics; a slice result is a lead to confirm with its own test, never a reason to ship on its own.

Two kinds of slices. Customer slices (segment, time zone) split the users: each holds its own users.
Outcome slices (an event property such as the channel) split the goal: "converted through email" per
assigned user, so every slice holds all the arm's users and a customer who converted through two
channels counts in both; the caller folds the smallest outcome slices itself (``_merge`` adds users up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from abtests import metrics, multiple_testing

MIN_USERS_PER_ARM = 30  # below this a slice's interval is too rough to show
MAX_SLICES = 25  # the largest slices; the rest are added up as "other"
OTHER = "(other)"


@dataclass
class SliceRow:
    slice: str
    variant: str
    users: int  # the treatment's users in the slice
    control_users: int
    value: float
    control_value: float
    lift: float | None  # percent
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_value_adjusted: float | None
    significant: bool
    note: str = ""

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _merge(arms_list: Sequence[Sequence[metrics.MetricArm]]) -> list[metrics.MetricArm]:
    return [metrics.MetricArm(users=sum(a[i].users for a in arms_list), total=sum(a[i].total for a in arms_list),
                              total_sq=sum(a[i].total_sq for a in arms_list)) for i in range(len(arms_list[0]))]


def slices(
    *,
    names: Sequence[str],
    metric: str,
    by_slice: dict[str, Sequence[metrics.MetricArm]],
    confidence_level: float,
    correction: str = multiple_testing.HOLM,
    outcome_slices: bool = False,
) -> tuple[list[SliceRow], str]:
    """Rows per (slice, treatment), largest slices first (outcome slices: the most converters or revenue
    first), and the note to show beside them."""
    alpha = 1.0 - confidence_level
    spec = metrics.METRICS[metric]
    size = (lambda arms: sum(a.total for a in arms)) if outcome_slices else (lambda arms: sum(a.users for a in arms))
    ordered = sorted(by_slice.items(), key=lambda kv: (-size(kv[1]), kv[0]))
    if len(ordered) > MAX_SLICES:
        if outcome_slices:
            raise ValueError(f"at most {MAX_SLICES} outcome slices: fold the others before comparing")
        head, tail = ordered[: MAX_SLICES - 1], ordered[MAX_SLICES - 1:]
        ordered = [*head, (OTHER, _merge([arms for _, arms in tail]))]
    rows: list[SliceRow] = []
    for key, arms in ordered:
        small = min(a.users for a in arms) < MIN_USERS_PER_ARM
        comparisons = [None] * (len(arms) - 1) if small else metrics.compare(spec, arms, confidence_level)
        for i, comparison in enumerate(comparisons, start=1):
            control, arm = arms[0], arms[i]
            row = SliceRow(slice=key, variant=names[i], users=arm.users, control_users=control.users, value=arm.mean,
                           control_value=control.mean, lift=None, ci_low=None, ci_high=None, p_value=None,
                           p_value_adjusted=None, significant=False)
            if comparison is None:
                row.note = f"fewer than {MIN_USERS_PER_ARM} users in an arm: not compared" if small else "not comparable"
            else:
                row.lift, row.ci_low, row.ci_high = (None if x is None else 100.0 * x
                                                     for x in (comparison.lift, comparison.ci_low, comparison.ci_high))
                row.p_value = comparison.p_value
            rows.append(row)
    compared = [r for r in rows if r.p_value is not None]
    if compared:
        adjusted = multiple_testing.adjust(np.array([r.p_value for r in compared]), correction)
        for r, p in zip(compared, adjusted, strict=True):
            r.p_value_adjusted = float(p)
            r.significant = bool(p < alpha)
    method = "Holm" if correction == multiple_testing.HOLM else "Benjamini-Hochberg"
    note = (f"{len(compared)} slice comparisons: p-values adjusted across all of them ({method}); intervals are "
            "not adjusted. A slice that differs is a lead to confirm with its own test, not a reason to ship.")
    if outcome_slices:
        note = ("Each slice counts only the goal that came through it, per assigned user (every slice holds all "
                "the arm's users; a customer who converted through two counts in both). " + note)
    return rows, note
