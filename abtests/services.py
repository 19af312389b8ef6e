"""Writes for the A/B tests: create, start, assign, analyze, end (and apply the winner), the hourly job.

Lifecycle: draft -> running -> completed. Every other transition is a 409 with a message; bad
input is a 400 naming the field. What "apply the winner" changes: the campaign's ``current_offer``
and/or ``send_time`` become the winning variant's configured offer/send time (if the variant has
one). Ending with the control as winner, or with no winner, changes nothing on the campaign.
The winner is applied through ``campaigns.configuration.change_settings`` (logged, source
"ab_winner"): the test compared its offer on every segment, so the winning offer becomes the
campaign default and the segments' own offers are cleared (each of those changes is logged too).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from abtests import analysis, assignment, metrics, rollup, selectors
from abtests.models import CONFIDENCE_MAX, CONFIDENCE_MIN, ABTest, ABTestResult, ABTestVariant
from campaigns import configuration
from campaigns import selectors as campaign_selectors
from campaigns.models import Campaign, CampaignChange, Offer
from marketing_ai.errors import Conflict, InvalidInput
from marketing_ai.jobs import NullProgress, Progress
from marketing_ai.validation import INT32_MAX

WEIGHT_TOLERANCE = 1e-6
MAX_VARIANTS = 10


@dataclass(frozen=True)
class VariantSpec:
    name: str
    weight: float
    offer_id: str | None = None
    send_time: dt.time | None = None


def _validate(*, test_name: str, variants: Sequence[VariantSpec], sample_size_target, confidence_level,
              primary_metric: str, guardrail_metrics: Sequence[str], secondary_metrics: Sequence[str] = (),
              multiple_testing: str = ABTest.Correction.HOLM) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not (test_name or "").strip():
        errors["test_name"] = ["give the test a name"]
    if len(variants) < 2:
        errors["variants"] = [f"a test needs at least 2 variants (got {len(variants)})"]
    elif len(variants) > MAX_VARIANTS:
        errors["variants"] = [f"at most {MAX_VARIANTS} variants"]
    else:
        names = [v.name.strip() for v in variants]
        weights = [v.weight for v in variants]
        if any(not n for n in names):
            errors["variants"] = ["every variant needs a name"]
        elif len(set(names)) != len(names):
            errors["variants"] = ["variant names must be different"]
        elif any(not isinstance(w, (int, float)) or math.isnan(w) or w < 0 or w > 1 for w in weights):
            errors["variants"] = ["each weight must be a number between 0 and 1"]
        elif abs(sum(weights) - 1.0) > WEIGHT_TOLERANCE:
            errors["variants"] = [f"weights must sum to 1 (they sum to {sum(weights):g})"]
        elif weights[0] == 0 or sum(1 for w in weights if w > 0) < 2:
            errors["variants"] = ["the control and at least one other variant need a weight above 0"]
    if isinstance(sample_size_target, bool) or not isinstance(sample_size_target, int) or sample_size_target < 2:
        errors["sample_size_target"] = ["a whole number of users, at least 2"]
    elif sample_size_target > INT32_MAX:  # the column is a 32-bit integer
        errors["sample_size_target"] = [f"at most {INT32_MAX:,} users"]
    if (
        isinstance(confidence_level, bool)
        or not isinstance(confidence_level, (int, float))
        or math.isnan(confidence_level)
        or not CONFIDENCE_MIN <= confidence_level <= CONFIDENCE_MAX
    ):
        errors["confidence_level"] = [f"must be between {CONFIDENCE_MIN} and {CONFIDENCE_MAX} (e.g. 0.95)"]
    if primary_metric not in ABTest.Metric.values:
        errors["primary_metric"] = [f"one of {', '.join(ABTest.Metric.values)}"]
    for field, given in (("guardrail_metrics", guardrail_metrics), ("secondary_metrics", secondary_metrics)):
        unknown = [g for g in given if g not in metrics.METRICS]
        if unknown:
            errors[field] = [f"unknown metrics {unknown}; use {', '.join(metrics.METRICS)}"]
    if multiple_testing not in ABTest.Correction.values:
        errors["multiple_testing"] = [f"one of {', '.join(ABTest.Correction.values)}"]
    return errors


def _validate_namespace(namespace: str, start, end) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if namespace and not re.fullmatch(r"[-a-zA-Z0-9_]{1,64}", namespace):
        errors["namespace"] = ["letters, digits, '-' and '_' only (at most 64)"]
    bad = [name for name, x in (("namespace_start", start), ("namespace_end", end))
           if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x) or not 0 <= x <= 1]
    for name in bad:
        errors[name] = ["a share of the namespace's traffic between 0 and 1"]
    if not bad and start >= end:
        errors["namespace_end"] = [f"must be above namespace_start ({start:g})"]
    if not namespace and not bad and (start, end) != (0, 1):
        errors["namespace"] = ["a traffic range needs a namespace"]
    return errors


def abtest_create(
    *,
    campaign_id: str,
    test_name: str,
    variants: Sequence[VariantSpec],
    sample_size_target: int,
    confidence_level: float = 0.95,
    hypothesis: str = "",
    primary_metric: str = ABTest.Metric.CONVERSION_RATE,
    guardrail_metrics: Sequence[str] = (),
    secondary_metrics: Sequence[str] = (),
    multiple_testing: str = ABTest.Correction.HOLM,
    cuped: bool = True,
    sequential: bool = False,
    hashing_seed: str = "",
    namespace: str = "",
    namespace_start: float = 0.0,
    namespace_end: float = 1.0,
    user=None,
) -> ABTest:
    """Create a draft test. Every problem with the input is reported at once, by field (400)."""
    errors = _validate(test_name=test_name, variants=variants, sample_size_target=sample_size_target,
                       confidence_level=confidence_level, primary_metric=primary_metric,
                       guardrail_metrics=guardrail_metrics, secondary_metrics=secondary_metrics,
                       multiple_testing=multiple_testing)
    errors.update(_validate_namespace(namespace or "", namespace_start, namespace_end))
    campaign = Campaign.objects.filter(campaign_id=campaign_id).first() if campaign_id else None
    if campaign is None:
        errors["campaign_id"] = [f"no campaign with campaign_id {campaign_id!r}" if campaign_id else "required"]
    offers: dict[str, Offer] = {}
    wanted = {v.offer_id for v in variants if v.offer_id}
    if wanted:
        offers = {o.offer_id: o for o in Offer.objects.filter(offer_id__in=wanted)}
        missing = sorted(wanted - set(offers))
        if missing:
            errors.setdefault("variants", []).append(f"unknown offers: {', '.join(missing)}")
    if errors:
        raise InvalidInput(errors)
    assert campaign is not None  # else errors named campaign_id above
    with transaction.atomic():
        test = ABTest.objects.create(
            campaign=campaign,
            test_name=test_name.strip(),
            hypothesis=hypothesis or "",
            primary_metric=primary_metric,
            guardrail_metrics=list(dict.fromkeys(guardrail_metrics)),
            secondary_metrics=list(dict.fromkeys(secondary_metrics)),
            multiple_testing=multiple_testing,
            cuped=bool(cuped),
            sample_size_target=sample_size_target,
            confidence_level=float(confidence_level),
            sequential=sequential,
            hashing_seed=hashing_seed or "",
            namespace=namespace or "",
            namespace_start=float(namespace_start),
            namespace_end=float(namespace_end),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        ABTestVariant.objects.bulk_create(
            ABTestVariant(test=test, position=i, name=v.name.strip(), weight=float(v.weight),
                          offer=offers.get(v.offer_id) if v.offer_id else None, send_time=v.send_time)
            for i, v in enumerate(variants)
        )
    return selectors.abtest_get(test_id=test.test_id)


def _locked(test: ABTest) -> ABTest:
    return ABTest.objects.select_for_update().get(pk=test.pk)


def abtest_start(*, test: ABTest) -> ABTest:
    with transaction.atomic():
        if test.namespace:
            # Starts in one namespace take turns (every test row of the namespace locked, in key order),
            # so two overlapping ranges cannot both start.
            list(ABTest.objects.select_for_update().filter(namespace=test.namespace).order_by("pk").values_list("pk"))
        locked = _locked(test)
        if locked.status != ABTest.Status.DRAFT:
            raise Conflict(f"test {test.test_id} is already {locked.status}; only a draft test can start")
        if locked.namespace:
            overlapping = ABTest.objects.filter(
                namespace=locked.namespace, status=ABTest.Status.RUNNING,
                namespace_start__lt=locked.namespace_end, namespace_end__gt=locked.namespace_start,
            ).exclude(pk=locked.pk).values_list("test_id", "namespace_start", "namespace_end")
            clash = [f"{t} ({a:g}-{b:g})" for t, a, b in overlapping]
            if clash:
                raise Conflict(
                    f"test {test.test_id}'s range {locked.namespace_start:g}-{locked.namespace_end:g} of namespace "
                    f"{locked.namespace!r} overlaps running {', '.join(clash)}; give it a free range",
                    fields={"namespace_start": [f"overlaps {', '.join(clash)}"]})
        locked.status = ABTest.Status.RUNNING
        locked.started_at = timezone.now()
        locked.save(update_fields=["status", "started_at"])
        rollup.rebuild(test=locked)  # nobody assigned yet: empty sums, kept from now on
    return selectors.abtest_get(test_id=test.test_id)


def abtest_assign(*, test: ABTest, customer_ids: Sequence[str]) -> list[assignment.Assigned]:
    return assignment.assign(test=test, customer_ids=customer_ids)


def abtest_analyze(*, test: ABTest, save: bool = True) -> ABTestResult:
    """Count per variant, run the statistics, decide; store the analysis as a new ``ab_test_results`` row."""
    if test.status == ABTest.Status.DRAFT:
        raise Conflict(f"test {test.test_id} is a draft; start it and assign customers before analysing")
    evaluation = selectors.evaluate(test=test)
    if evaluation.outcome is None:
        raise Conflict(f"test {test.test_id} has no customers assigned yet; nothing to analyse")
    result = _result_row(test, evaluation.outcome)
    result.metrics = [r.as_dict() for r in evaluation.metrics]
    result.cuped = evaluation.cuped
    if save:
        result.save()
    return result


def _result_row(test: ABTest, outcome: analysis.Outcome) -> ABTestResult:
    variants = [a.as_dict() for a in outcome.arms]
    return ABTestResult(
        test=test,
        calculated_at=timezone.now(),
        method=outcome.method,
        metric=test.primary_metric,
        variants=variants,
        users_total=outcome.users_total,
        variant_a_conversions=outcome.arms[0].conversions,
        variant_b_conversions=outcome.arms[1].conversions,
        lift=outcome.lift,
        lift_ci_low=outcome.lift_ci_low,
        lift_ci_high=outcome.lift_ci_high,
        p_value=outcome.p_value,
        statistical_significance=outcome.statistical_significance,
        significant=outcome.significant,
        chi2=outcome.chi2,
        srm_p_value=outcome.srm_p_value,
        srm_detected=outcome.srm_detected,
        chance_to_beat_control=outcome.chance_to_beat_control,
        decision=outcome.decision,
        winner=outcome.winner or "",
        reason=outcome.reason,
        users_still_needed=outcome.users_still_needed,
        recommended_action=outcome.recommended_action,
        fingerprint=outcome.fingerprint,
    )


@dataclass(frozen=True)
class Ended:
    test: ABTest
    result: ABTestResult | None
    applied: dict


def abtest_end(*, test: ABTest, apply_winner: bool = False, user=None) -> Ended:
    """Complete a running test: final analysis (if anyone was assigned), record the winner, optionally apply it."""
    with transaction.atomic():
        locked = _locked(test)
        if locked.status != ABTest.Status.RUNNING:
            hint = "start it first" if locked.status == ABTest.Status.DRAFT else "it already ended"
            raise Conflict(f"test {test.test_id} is {locked.status}; only a running test can end ({hint})")
        locked.ended_at = timezone.now()
        locked.status = ABTest.Status.COMPLETED
        fresh = selectors.abtest_get(test_id=test.test_id)
        fresh.ended_at, fresh.status = locked.ended_at, locked.status
        rollup.abtest_ended(test=fresh)  # events after the end stop counting
        result = None
        if selectors.users_assigned(test=fresh) > 0:
            result = abtest_analyze(test=fresh)
        locked.winner = result.winner if result else ""
        applied: dict = {}
        if apply_winner and locked.winner:
            applied = _apply(fresh, locked.winner, user=user)
        locked.applied = applied
        locked.save(update_fields=["ended_at", "status", "winner", "applied"])
    return Ended(test=selectors.abtest_get(test_id=test.test_id), result=result, applied=applied)


def _apply(test: ABTest, winner: str, *, user=None) -> dict:
    """Copy the winning variant's offer / send time to the campaign; the control is already live."""
    variant = next(v for v in test.ordered_variants if v.name == winner)
    if variant.position == 0:
        return {}
    campaign = Campaign.objects.get(pk=test.campaign_id)
    changes: dict = {}
    settings: list[configuration.SettingChange] = []
    if (offer := variant.offer) is not None:
        changes["current_offer"] = offer.offer_id
        settings.append(configuration.SettingChange(CampaignChange.Field.OFFER, offer.offer_id))
        settings += [
            configuration.SettingChange(CampaignChange.Field.OFFER, "", segment)
            for segment in campaign_selectors.segment_offer_overrides(campaign)
        ]
    if variant.send_time is not None:
        changes["send_time"] = variant.send_time.strftime("%H:%M")
        settings.append(configuration.SettingChange(CampaignChange.Field.SEND_TIME, changes["send_time"]))
    configuration.change_settings(
        campaign, settings, user=user, source=CampaignChange.Source.AB_WINNER,
        note=f"A/B test {test.test_id}: winner {winner}",
    )
    return changes


def refresh_running_results(*, progress: Progress | None = None) -> int:
    """Refresh the results of running tests; a test whose counts did not change gets no new row."""
    progress = progress or NullProgress()
    tests = list(selectors.abtest_list(status=ABTest.Status.RUNNING))
    progress.total(len(tests))
    written = 0
    for test in tests:
        if getattr(test, "users_assigned", 0):
            result = abtest_analyze(test=test, save=False)
            latest = selectors.latest_result(test=test)
            if latest is None or latest.fingerprint != result.fingerprint:
                result.save()
                written += 1
        progress.advance()
    return written
