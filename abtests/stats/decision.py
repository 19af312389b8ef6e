"""The reference decision rule on plain numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from abtests.stats._common import _check_confidence, _check_users_conversions
from abtests.stats.bayes import BayesResult, chance_to_beat_control
from abtests.stats.proportions import ProportionsResult, proportions_test
from abtests.stats.sequential import SequentialResult, sequential_means_test, sequential_test
from abtests.stats.srm import SRM_THRESHOLD, srm_p_value
from abtests.stats.welch import WelchResult, welch_test


@dataclass(frozen=True)
class Analysis:
    """The verdict on a test.

    ``decision``: "winner", "inconclusive" or "srm". ``winner`` is the winning arm's index (None unless
    decision == "winner"; 0 when the control beats every treatment). ``users_needed``: users (all arms
    together) still needed to reach ``sample_size_target``, 0 when reached or no target.
    ``welch`` is set for the revenue-per-user metric, ``sequential`` for the sequential method.
    """

    decision: str
    winner: int | None
    reason: str
    recommended_action: str
    users_needed: int
    srm_p_value: float
    srm: bool
    method: str
    metric: str
    proportions: ProportionsResult
    bayes: BayesResult
    welch: WelchResult | None = None
    sequential: SequentialResult | None = None


METRICS = ("conversion_rate", "revenue_per_user")
METHODS = ("fixed", "sequential")


def analyze(
    users: Sequence[int],
    conversions: Sequence[int],
    weights: Sequence[float] | None = None,
    confidence_level: float = 0.95,
    sample_size_target: int | None = None,
    method: str = "fixed",
    metric: str = "conversion_rate",
    revenue_mean: Sequence[float] | None = None,
    revenue_variance: Sequence[float] | None = None,
    previous_p_values: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
) -> Analysis:
    """Decide a test by the issue's rule.

    A winner only when (1) the primary metric's difference is significant at ``confidence_level``
    (Holm-adjusted when k > 2), (2) there is no sample ratio mismatch (SRM p >= ``SRM_THRESHOLD``), and
    (3) the planned sample is reached (``sample_size_target`` = total users over all arms) or, with
    ``method="sequential"``, the always-valid boundary is crossed. Otherwise "inconclusive" with the reason
    and the users still needed, or "srm" when the split is broken.
    ``metric="revenue_per_user"`` needs ``revenue_mean`` and ``revenue_variance`` (sample variance per user)
    per arm and decides on Welch's test (fixed) or the sequential means test.
    ``previous_p_values``: the sequential p-values stored at the last look (running minimum).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    level = _check_confidence(confidence_level)
    n, c = _check_users_conversions(users, conversions)
    k = n.size
    if weights is None:
        weights = [1.0 / k] * k
    if len(weights) != k:
        raise ValueError(f"weights must have one value per arm ({len(weights)} != {k})")
    labels = [str(x) for x in names] if names is not None else ["control"] + [f"arm {i}" for i in range(1, k)]
    if len(labels) != k:
        raise ValueError(f"names must have one value per arm ({len(labels)} != {k})")
    if sample_size_target is not None and int(sample_size_target) < 0:
        raise ValueError("sample_size_target must not be negative")
    if metric == "revenue_per_user" and (revenue_mean is None or revenue_variance is None):
        raise ValueError("revenue_per_user needs revenue_mean and revenue_variance per arm")

    props = proportions_test(n, c, level)
    bayes = chance_to_beat_control(n, c)
    srm_p = srm_p_value(n, weights)
    srm = srm_p < SRM_THRESHOLD
    total = int(n.sum())
    target = int(sample_size_target) if sample_size_target else 0
    users_needed = max(0, target - total)
    planned_pair = (2.0 * target / k) if target else None
    welch = seq = None
    if metric == "revenue_per_user":
        if np.all(n >= 2):
            welch = welch_test(revenue_mean, revenue_variance, n, level)
        if method == "sequential":
            seq = sequential_means_test(revenue_mean, revenue_variance, n, level, planned_pair, previous_p_values)
    elif method == "sequential":
        seq = sequential_test(n, c, level, planned_pair, previous_p_values)

    if seq is not None:
        significant = {a.index: a.abs_lift for a in seq.arms if a.significant}
    elif welch is not None:
        significant = {a.index: a.diff for a in welch.arms[1:] if a.significant}
    elif metric == "revenue_per_user":
        significant = {}  # fewer than 2 users in some arm: no variance, nothing can be significant
    else:
        significant = {a.index: a.abs_lift for a in props.treatments if a.significant}
    unit = "revenue per user" if metric == "revenue_per_user" else "conversion rate"

    def verdict(decision: str, winner: int | None, reason: str, action: str) -> Analysis:
        return Analysis(
            decision=decision, winner=winner, reason=reason, recommended_action=action,
            users_needed=users_needed, srm_p_value=srm_p, srm=srm, method=method, metric=metric,
            proportions=props, bayes=bayes, welch=welch, sequential=seq,
        )

    if srm:
        return verdict(
            "srm", None,
            f"sample ratio mismatch: users per arm {[int(x) for x in n]} do not fit the configured weights "
            f"(p = {srm_p:.2g} < {SRM_THRESHOLD}); the results cannot be trusted",
            "Stop and investigate the split: assignment or tracking is broken.",
        )
    if method == "fixed" and users_needed > 0:
        return verdict(
            "inconclusive", None,
            f"the planned sample is not reached yet ({total} of {target} users)",
            f"Keep running: about {users_needed} more users are needed.",
        )
    if not significant:
        if method == "sequential" and not (seq is not None and seq.safe_to_stop):
            more = f" about {users_needed} more users to the plan" if users_needed else ""
            return verdict(
                "inconclusive", None,
                f"no arm has crossed the always-valid boundary yet at {level:.0%} confidence",
                f"Keep running:{more or ' looking again tomorrow is safe'}.",
            )
        return verdict(
            "inconclusive", None,
            f"no difference in {unit} is significant at {level:.0%} confidence with the planned sample",
            f"Stop: no variant differs detectably from the control; keep {labels[0]}.",
        )
    best = max(significant, key=lambda i: significant[i])
    if significant[best] > 0:
        return verdict(
            "winner", best,
            f"{labels[best]} beats {labels[0]} on {unit}, significant at {level:.0%} confidence",
            f"Ship {labels[best]}.",
        )
    if len(significant) == k - 1:
        return verdict(
            "winner", 0,
            f"every variant is significantly worse than {labels[0]} on {unit} at {level:.0%} confidence",
            f"Keep {labels[0]}.",
        )
    losers = ", ".join(labels[i] for i in sorted(significant))
    return verdict(
        "inconclusive", None,
        f"only losses are significant ({losers} worse than {labels[0]}); no variant beats it",
        f"Drop {losers}; keep {labels[0]}.",
    )
