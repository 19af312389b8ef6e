"""The decision rules of an A/B test, on plain numbers (no Django): statistics in, verdict out.

A winner is declared only when all of these hold:
  1. no sample ratio mismatch (``stats.srm_p_value`` >= ``stats.SRM_THRESHOLD``);
  2. the primary metric differs significantly at the test's confidence level (Holm-adjusted p-value
     when there are more than two arms; Welch's t-test for revenue per user; the always-valid p-value
     for a sequential test);
  3. the planned sample is reached (fixed-horizon test) or the sequential boundary is crossed;
  4. no guardrail metric of the winning variant is significantly worse than the control's.
Otherwise the verdict is "inconclusive" (or "srm") with the reason, the users still needed where that
can be estimated, and a recommended action in plain words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from abtests import stats

CONVERSION_RATE = "conversion_rate"
REVENUE_PER_USER = "revenue_per_user"


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    users: int
    conversions: int
    revenue_mean: float = 0.0
    revenue_variance: float = 0.0


@dataclass(frozen=True)
class Config:
    confidence_level: float
    sample_size_target: int
    metric: str = CONVERSION_RATE
    guardrails: tuple[str, ...] = ()
    sequential: bool = False
    # Sequential tests: the always-valid p-values (one per treatment) of the previous look, so the
    # reported p-value stays the running minimum.
    previous_p_values: tuple[float, ...] | None = None
    # ... and the relative-lift intervals (fractions, None = unbounded) of that look, kept as their running
    # intersection so the interval shown agrees with the running-minimum p-value.
    previous_intervals: tuple[tuple[float | None, float | None], ...] | None = None
    # Guardrails found failing outside this module (``metrics.failed_guardrails``, e.g. open or click rate):
    # (variant name, metric label) pairs; they block a winner like the ones checked here.
    failed_guardrails: tuple[tuple[str, str], ...] = ()
    # CUPED-adjusted comparisons of the primary metric, one per treatment: (lift, ci_low, ci_high, p_value,
    # p_value_adjusted), relative figures as fractions. They replace the unadjusted ones in a fixed-horizon
    # test (a sequential test keeps its always-valid statistics on the raw counts).
    adjusted: tuple[tuple[float | None, float | None, float | None, float, float], ...] | None = None


@dataclass
class ArmOutcome:
    name: str
    weight: float
    users: int
    conversions: int
    rate: float
    revenue_mean: float
    revenue_variance: float
    lift: float | None = None  # relative lift of the primary metric vs control, percent
    ci_low: float | None = None  # its interval, percent
    ci_high: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    chance_to_beat_control: float | None = None
    expected_loss: float | None = None
    # Bayesian risk of keeping the control instead of this arm: E[max(rate - control rate, 0)].
    control_expected_loss: float | None = None
    share: float = 0.0  # observed share of users

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass
class Outcome:
    method: str
    arms: list[ArmOutcome]
    users_total: int
    decision: str  # winner | inconclusive | srm
    reason: str
    recommended_action: str
    winner: str | None = None
    chi2: float | None = None
    p_value: float | None = None
    statistical_significance: float | None = None
    significant: bool = False
    lift: float | None = None
    lift_ci_low: float | None = None
    lift_ci_high: float | None = None
    srm_p_value: float | None = None
    srm_detected: bool = False
    chance_to_beat_control: float | None = None
    users_still_needed: int | None = None
    safe_to_stop: bool = False
    best_arm: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return "|".join(f"{a.users}:{a.conversions}:{a.revenue_mean * a.users:.2f}" for a in self.arms)


def _finite(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _pct(x) -> float | None:
    x = _finite(x)
    return None if x is None else x * 100.0


def analyze(*, arms: Sequence[Arm], config: Config) -> Outcome:
    """Run the statistics for the primary metric and apply the decision rules above."""
    if len(arms) < 2:
        raise ValueError("an analysis needs at least two arms")
    users = [int(a.users) for a in arms]
    conversions = [int(a.conversions) for a in arms]
    total = sum(users)
    out_arms = _arm_outcomes(arms, total)
    srm_p = float(stats.srm_p_value(users, [a.weight for a in arms])) if total else 1.0
    method = _method(config)
    if not _has_users_to_compare(arms, users, config):
        return Outcome(method=method, arms=out_arms, users_total=total, decision="inconclusive",
                       reason="not every variant has users yet",
                       recommended_action="Keep running: every variant needs users before any comparison.",
                       srm_p_value=srm_p, users_still_needed=max(config.sample_size_target - total, 0))

    props = _fill_conversion_rate(out_arms, users, conversions, config)
    if config.metric == REVENUE_PER_USER:
        _fill_welch(out_arms, config.confidence_level)
        out_arms[0].lift = 0.0
    if config.adjusted is not None and method != "sequential" and len(config.adjusted) == len(out_arms) - 1:
        _fill_adjusted(out_arms, config.adjusted)
    seq = _fill_sequential(out_arms, users, conversions, config) if method == "sequential" else None

    outcome = _headline(method, out_arms, total, props, srm_p, config)
    if outcome.srm_detected:
        return _srm_verdict(outcome, srm_p)
    return _verdict(outcome, seq, config)


def _arm_outcomes(arms: Sequence[Arm], total: int) -> list[ArmOutcome]:
    """Each arm's observed figures, before any comparison."""
    return [
        ArmOutcome(name=a.name, weight=a.weight, users=a.users, conversions=a.conversions,
                   rate=a.conversions / a.users if a.users else 0.0, revenue_mean=a.revenue_mean,
                   revenue_variance=a.revenue_variance, share=a.users / total if total else 0.0)
        for a in arms
    ]


def _method(config: Config) -> str:
    if config.sequential and config.metric == CONVERSION_RATE:
        return "sequential"
    return "welch" if config.metric == REVENUE_PER_USER else "fixed"


def _has_users_to_compare(arms: Sequence[Arm], users: list[int], config: Config) -> bool:
    """Welch needs two users in every arm; the proportions test only in the arms that get traffic."""
    live = [i for i, a in enumerate(arms) if a.weight > 0 or config.metric == REVENUE_PER_USER]
    return sum(users) > 0 and all(users[i] >= 2 for i in live)


def _fill_conversion_rate(out_arms: list[ArmOutcome], users: list[int], conversions: list[int],
                          config: Config) -> stats.ProportionsResult:
    """The conversion-rate comparison (always computed: the page shows it for every test) and the Bayesian
    chance to beat the control with its risk; the lift and interval only when conversion rate is the goal."""
    props = stats.proportions_test(users, conversions, confidence_level=config.confidence_level)
    chances = stats.chance_to_beat_control(users, conversions)
    for i, arm in enumerate(out_arms[1:], start=1):
        r = props.arms[i]
        if config.metric == CONVERSION_RATE:
            arm.lift, arm.ci_low, arm.ci_high = _pct(r.lift), _pct(r.ci_low), _pct(r.ci_high)
            arm.p_value, arm.p_value_adjusted = _finite(r.p_value), _finite(r.p_value_adjusted)
        arm.chance_to_beat_control = _finite(_chance(chances, i))
        arm.expected_loss = _finite(_loss(chances, i))
        arm.control_expected_loss = _finite(chances.arms[i - 1].control_expected_loss)
    out_arms[0].lift = 0.0 if config.metric == CONVERSION_RATE else None
    return props


def _fill_adjusted(out_arms: list[ArmOutcome], adjusted) -> None:
    """CUPED-adjusted comparisons replace the unadjusted ones (fixed-horizon tests)."""
    for arm, (lift, low, high, p, p_adj) in zip(out_arms[1:], adjusted, strict=True):
        arm.lift, arm.ci_low, arm.ci_high = _pct(lift), _pct(low), _pct(high)
        arm.p_value, arm.p_value_adjusted = _finite(p), _finite(p_adj)


def _fill_sequential(out_arms: list[ArmOutcome], users: list[int], conversions: list[int],
                     config: Config) -> stats.SequentialResult:
    """Always-valid p-values and confidence sequences replace the fixed-horizon ones."""
    k = len(out_arms)
    planned_pair = 2 * config.sample_size_target / k if config.sample_size_target else None
    previous = config.previous_p_values
    if previous is not None and len(previous) != k - 1:
        previous = None
    intervals = config.previous_intervals if previous is not None else None
    if intervals is not None and len(intervals) != k - 1:
        intervals = None
    seq = stats.sequential_test(users, conversions, confidence_level=config.confidence_level,
                                planned_users=planned_pair, previous_p_values=previous,
                                previous_intervals=intervals)
    for arm, r in zip(out_arms[1:], seq.arms, strict=True):
        arm.p_value, arm.p_value_adjusted = _finite(r.p_value), _finite(r.p_value_adjusted)
        arm.ci_low, arm.ci_high = _pct(r.lift_cs_low), _pct(r.lift_cs_high)
    return seq


def _best_treatment(out_arms: list[ArmOutcome]) -> ArmOutcome:
    """The headline arm: the treatment with the best primary metric."""
    return max(out_arms[1:], key=lambda a: (a.lift if a.lift is not None else -math.inf, a.rate))


def _headline(method: str, out_arms: list[ArmOutcome], total: int, props, srm_p: float, config: Config) -> Outcome:
    """The outcome's headline figures (the best treatment's), decision still "inconclusive"."""
    best = _best_treatment(out_arms)
    best_p = best.p_value_adjusted if best.p_value_adjusted is not None else 1.0
    return Outcome(
        method=method, arms=out_arms, users_total=total, decision="inconclusive", reason="", recommended_action="",
        chi2=_finite(props.chi2), p_value=_finite(best_p), statistical_significance=round((1.0 - best_p) * 100.0, 4),
        significant=best_p < 1.0 - config.confidence_level, lift=best.lift, lift_ci_low=best.ci_low,
        lift_ci_high=best.ci_high, srm_p_value=srm_p, srm_detected=srm_p < stats.SRM_THRESHOLD,
        chance_to_beat_control=best.chance_to_beat_control, best_arm=best.name,
    )


def _srm_verdict(outcome: Outcome, srm_p: float) -> Outcome:
    expected = ", ".join(f"{a.name} {a.weight:.0%}" for a in outcome.arms)
    observed = ", ".join(f"{a.name} {a.share:.1%}" for a in outcome.arms)
    outcome.decision = "srm"
    outcome.reason = (f"sample ratio mismatch (p = {srm_p:.2g} < {stats.SRM_THRESHOLD}): the split is "
                      f"{observed}, configured {expected}; the results cannot be trusted")
    outcome.recommended_action = ("Stop and investigate the split: check the assignment code, bots and "
                                  "tracking before trusting any result.")
    return outcome


def _readiness(seq, total: int, config: Config) -> tuple[bool, str]:
    """Whether the test may decide now (planned sample reached, or the sequential boundary crossed), and why not."""
    if seq is not None:
        return seq.safe_to_stop, seq.reason
    return (total >= config.sample_size_target,
            f"planned sample not reached: {total:,} of {config.sample_size_target:,} users")


def _winner_candidate(outcome: Outcome, best: ArmOutcome) -> ArmOutcome | None:
    """A significant best treatment that gains wins; if every treatment loses, the control does."""
    if not outcome.significant or best.lift is None:
        return None
    control, treatments = outcome.arms[0], outcome.arms[1:]
    if best.lift > 0:
        return best
    return control if all((a.lift or 0) < 0 for a in treatments) else None


def _verdict(outcome: Outcome, seq, config: Config) -> Outcome:
    """Apply the decision rules (significance, readiness, guardrails) to an outcome without SRM."""
    control = outcome.arms[0]
    best = next(a for a in outcome.arms if a.name == outcome.best_arm)
    total = outcome.users_total
    ready, not_ready_reason = _readiness(seq, total, config)
    outcome.safe_to_stop = ready
    if outcome.significant and best.lift is None:
        outcome.reason = f"{control.name} has no conversions yet, so a relative lift is undefined"
        outcome.recommended_action = "Keep running until the control converts, then compare again."
        outcome.users_still_needed = max(config.sample_size_target - total, 0)
        return outcome
    winner = _winner_candidate(outcome, best)
    if winner is not None and winner is not control:
        worse = _guardrail_breaches(outcome.arms, winner, config)
        worse += [label for name, label in config.failed_guardrails if name == winner.name and label not in worse]
        if worse:
            outcome.reason = f"{winner.name} wins on the primary metric but {', '.join(worse)} got significantly worse"
            outcome.recommended_action = (f"Do not ship {winner.name} yet: weigh its gain against the drop in "
                                          f"{', '.join(worse)}.")
            return outcome
    if winner is not None and ready:
        return _winner_verdict(outcome, winner, best, config)
    if not ready:
        return _keep_running_verdict(outcome, best, seq, not_ready_reason, config)
    return _no_difference_verdict(outcome, best, config)


def _confidence_label(config: Config) -> str:
    return f"{config.confidence_level:.1%}".replace(".0%", "%")


def _winner_verdict(outcome: Outcome, winner: ArmOutcome, best: ArmOutcome, config: Config) -> Outcome:
    control = outcome.arms[0]
    cl = _confidence_label(config)
    outcome.decision = "winner"
    outcome.winner = winner.name
    outcome.safe_to_stop = True
    outcome.users_still_needed = 0
    if winner is control:
        outcome.reason = (f"{best.name} is significantly worse than {control.name} "
                          f"({best.lift:+.1f}%, p = {outcome.p_value:.3g}) at {cl} confidence")
        outcome.recommended_action = f"Keep {control.name}: {best.name} performs {abs(best.lift):.1f}% worse."
    else:
        outcome.reason = (f"{winner.name} beats {control.name} by {winner.lift:+.1f}% "
                          f"(p = {outcome.p_value:.3g}) at {cl} confidence")
        interval = (f" (interval {winner.ci_low:+.1f}% to {winner.ci_high:+.1f}%)"
                    if winner.ci_low is not None and winner.ci_high is not None else "")
        outcome.recommended_action = f"Ship {winner.name}: expect about {winner.lift:+.1f}%{interval}."
    return outcome


def _keep_running_verdict(outcome: Outcome, best: ArmOutcome, seq, not_ready_reason: str, config: Config) -> Outcome:
    total = outcome.users_total
    still = max(config.sample_size_target - total, 0)
    if seq is not None and still == 0:
        still = _users_to_detect(outcome.arms[0].rate, best.lift, config, len(outcome.arms), total)
    outcome.users_still_needed = still
    outcome.reason = not_ready_reason
    looks = " The difference already looks significant, but stopping early inflates false positives." if (
        outcome.significant and seq is None) else ""
    more = f"about {still:,} more users" if still else "more users"
    outcome.recommended_action = f"Keep running: {more} before deciding.{looks}"
    return outcome


def _no_difference_verdict(outcome: Outcome, best: ArmOutcome, config: Config) -> Outcome:
    """Planned sample reached, no significant difference."""
    control = outcome.arms[0]
    total = outcome.users_total
    outcome.reason = (f"no significant difference at {_confidence_label(config)} confidence after {total:,} users "
                      f"(p = {outcome.p_value:.3g})")
    still = _users_to_detect(control.rate, best.lift, config, len(outcome.arms), total)
    outcome.users_still_needed = still
    if still and best.lift and still <= 3 * total:
        outcome.recommended_action = (f"If a {best.lift:+.1f}% change matters, keep running about {still:,} more users; "
                                      f"otherwise stop and keep {control.name}.")
    else:
        outcome.recommended_action = f"Stop the test and keep {control.name}: no meaningful difference was found."
    return outcome


def _users_to_detect(baseline: float, lift_pct: float | None, config: Config, k: int, total: int) -> int | None:
    """Users still needed (all arms) to detect the observed lift with 80 % power, if estimable."""
    if lift_pct is None or lift_pct == 0 or not 0 < baseline < 1 or config.metric != CONVERSION_RATE:
        return None
    mde = abs(lift_pct) / 100.0
    if baseline * (1 + mde) >= 1:
        return None
    try:
        per_arm = stats.sample_size(baseline, mde, confidence_level=config.confidence_level, arms=k)
    except ValueError:
        return None
    return max(int(per_arm) * k - total, 0)


def _fill_welch(out_arms: list[ArmOutcome], confidence_level: float) -> None:
    w = stats.welch_test([a.revenue_mean for a in out_arms], [a.revenue_variance for a in out_arms],
                         [a.users for a in out_arms], confidence_level=confidence_level)
    for arm, r in zip(out_arms[1:], w.arms[1:], strict=True):
        arm.lift, arm.ci_low, arm.ci_high = _pct(r.rel_diff), _pct(r.rel_ci_low), _pct(r.rel_ci_high)
        arm.p_value, arm.p_value_adjusted = _finite(r.p_value), _finite(r.p_value_adjusted)


def _guardrail_breaches(arms: list[ArmOutcome], winner: ArmOutcome, config: Config) -> list[str]:
    """Guardrail metrics on which the winner is significantly worse than the control."""
    alpha = 1.0 - config.confidence_level
    breaches = []
    control = arms[0]
    for metric in config.guardrails:
        if metric == config.metric:
            continue
        if metric == REVENUE_PER_USER:
            w = stats.welch_test([control.revenue_mean, winner.revenue_mean],
                                 [control.revenue_variance, winner.revenue_variance],
                                 [control.users, winner.users], confidence_level=config.confidence_level)
            r = w.arms[1]
            if winner.revenue_mean < control.revenue_mean and r.p_value < alpha:
                breaches.append("revenue per user")
        elif metric == CONVERSION_RATE:
            r = stats.proportions_test([control.users, winner.users], [control.conversions, winner.conversions],
                                       confidence_level=config.confidence_level).arms[1]
            if winner.rate < control.rate and r.p_value < alpha:
                breaches.append("conversion rate")
    return breaches


def _chance(chances: stats.BayesResult, i: int) -> float | None:
    return chances.arms[i - 1].chance_to_beat_control  # Bayes arms are the treatments only


def _loss(chances: stats.BayesResult, i: int) -> float | None:
    return chances.arms[i - 1].expected_loss
