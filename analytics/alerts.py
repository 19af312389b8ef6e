"""E-mail alerts a marketer subscribes to: an A/B test's decision or sample ratio mismatch, a failed job,
a campaign's daily conversions outside their usual range. Mail goes through Django's mail backend
(``EMAIL_BACKEND``; the console in development and the demo).

The ``alerts`` job (hourly, registered here) finds what is due now, and sends each subscriber each
thing once: ``AlertSent`` remembers (subscription, key).

"Usual range" of a campaign's daily conversions: the previous ``USUAL_DAYS`` complete days' mean
± 3 standard deviations, the deviation at least the Poisson noise √mean (so a very regular campaign
does not alert on one conversion more), and only with at least ``MIN_HISTORY_DAYS`` days of history.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics.models import AlertSent, AlertSubscription, CampaignAnalyticsDaily
from marketing_ai.jobs import NullProgress, Progress

Kind = AlertSubscription.Kind
USUAL_DAYS = 28
MIN_HISTORY_DAYS = 14
JOB_FAILURE_LOOKBACK = dt.timedelta(days=2)  # a new subscriber is not mailed about last month's failures


@dataclass(frozen=True)
class Alert:
    kind: str
    key: str
    subject: str
    body: str
    campaign_id: int | None = None  # the campaign's pk, for per-campaign subscriptions


@dataclass(frozen=True)
class UsualRange:
    low: float
    high: float
    mean: float
    days: int


def usual_range(history: list[int]) -> UsualRange | None:
    """mean ± 3 sd of the daily counts (sd at least √mean); None with fewer than MIN_HISTORY_DAYS days."""
    if len(history) < MIN_HISTORY_DAYS:
        return None
    mean = sum(history) / len(history)
    sd = math.sqrt(sum((x - mean) ** 2 for x in history) / (len(history) - 1))
    spread = 3 * max(sd, math.sqrt(mean))
    return UsualRange(max(0.0, mean - spread), mean + spread, mean, len(history))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


# --- What is due ------------------------------------------------------------------------------------
def abtest_alerts() -> list[Alert]:
    """Running tests whose latest stored analysis declares a winner, or detects an SRM."""
    from abtests.models import ABTest, ABTestResult

    out = []
    for test in ABTest.objects.filter(status=ABTest.Status.RUNNING).select_related("campaign"):
        result = test.results.order_by("-calculated_at", "-id").first()
        if result is None:
            continue
        link = f"/ab-tests/{test.test_id}/"
        if result.decision == ABTestResult.Decision.WINNER and result.winner:
            out.append(Alert(Kind.ABTEST_DECISION, f"abtest:{test.test_id}:winner:{result.winner}",
                             f"A/B test {test.test_name}: {result.winner} wins",
                             f"{test.test_name} ({test.campaign.name}) reached a decision: {result.winner} wins, lift "
                             f"{_pct(result.lift)} (interval {_pct(result.lift_ci_low)} to {_pct(result.lift_ci_high)}).\n"
                             f"{result.recommended_action}\nEnd the test to apply it: {link}", test.campaign_id))
        if result.srm_detected:
            out.append(Alert(Kind.ABTEST_SRM, f"abtest:{test.test_id}:srm",
                             f"A/B test {test.test_name}: sample ratio mismatch",
                             f"The users per variant of {test.test_name} ({test.campaign.name}) do not match the "
                             f"configured split (p = {result.srm_p_value:.2g}). Do not trust its results; check the "
                             f"assignment: {link}", test.campaign_id))
    return out


def job_failure_alerts(now: dt.datetime) -> list[Alert]:
    from marketing_ai.models import JobRun

    runs = JobRun.objects.filter(status=JobRun.Status.FAILED, started_at__gte=now - JOB_FAILURE_LOOKBACK).order_by("id")
    return [Alert(Kind.JOB_FAILED, f"job_run:{run.pk}", f"Job {run.job} failed",
                  f"{run.job} failed (started {run.started_at:%Y-%m-%d %H:%M} UTC; see the job runs on the overview).\n\n"
                  f"{(run.error or '')[:2000]}")
            for run in runs]


def conversion_alerts(today: dt.date) -> list[Alert]:
    """Yesterday (the last complete UTC day) against each campaign's previous USUAL_DAYS days."""
    day = today - dt.timedelta(days=1)
    first = day - dt.timedelta(days=USUAL_DAYS)
    rows = CampaignAnalyticsDaily.objects.filter(date__gte=first, date__lte=day).values_list(
        "campaign_id", "campaign__campaign_id", "campaign__name", "date", "conversions")
    by_campaign: dict[int, dict[dt.date, int]] = {}
    names: dict[int, tuple[str, str]] = {}
    for pk, external_id, name, date, conversions in rows:
        by_campaign.setdefault(pk, {})[date] = conversions
        names[pk] = (external_id, name)
    out = []
    for pk, per_day in by_campaign.items():
        started = min(per_day)  # days before a campaign's first row are not zeros of its history
        history = [per_day.get(started + dt.timedelta(days=i), 0) for i in range((day - started).days)]
        usual = usual_range(history)
        observed = per_day.get(day, 0)
        if usual is None or usual.low <= observed <= usual.high:
            continue
        external_id, name = names[pk]
        direction = "fell below" if observed < usual.low else "rose above"
        out.append(Alert(Kind.CONVERSIONS_UNUSUAL, f"conversions:{external_id}:{day.isoformat()}",
                         f"{name}: conversions {direction} their usual range on {day:%Y-%m-%d}",
                         f"{name} had {observed:,} conversions on {day:%Y-%m-%d} (UTC); over the previous "
                         f"{usual.days} days they averaged {usual.mean:.1f} a day, usually between {usual.low:.0f} "
                         f"and {usual.high:.0f}.\n/analytics/campaign/{external_id}/?days=30", pk))
    return out


def due_alerts(now: dt.datetime | None = None) -> list[Alert]:
    now = now or timezone.now()
    return [*abtest_alerts(), *job_failure_alerts(now), *conversion_alerts(now.date())]


# --- Writes -----------------------------------------------------------------------------------------
def subscriptions_set(*, user, kinds: set[str], campaign=None) -> list[AlertSubscription]:
    """The user's subscriptions for ``campaign`` (None: every campaign) become exactly ``kinds``."""
    unknown = set(kinds) - set(Kind.values)
    if unknown:
        raise ValueError(f"unknown alert kinds: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        mine = AlertSubscription.objects.filter(user=user, campaign=campaign)
        mine.exclude(kind__in=kinds).delete()
        for kind in kinds:
            AlertSubscription.objects.get_or_create(user=user, kind=kind, campaign=campaign)
    return list(AlertSubscription.objects.filter(user=user, campaign=campaign).order_by("kind"))


def send_due(*, now: dt.datetime | None = None) -> int:
    """Mail every subscriber each due alert once; returns the e-mails sent."""
    subscriptions = list(AlertSubscription.objects.select_related("user").exclude(user__email=""))
    sent = 0
    for alert in due_alerts(now):
        for sub in subscriptions:
            if sub.kind != alert.kind or (sub.campaign_id is not None and sub.campaign_id != alert.campaign_id):
                continue
            try:
                with transaction.atomic():  # a mail that fails rolls its record back: the next run tries again
                    AlertSent.objects.create(subscription=sub, key=alert.key, subject=alert.subject[:300])
                    send_mail(f"[marketing_ai] {alert.subject}", alert.body, settings.DEFAULT_FROM_EMAIL, [sub.user.email])
            except IntegrityError:
                continue  # already sent
            sent += 1
    return sent


def send_alerts(*, progress: Progress | None = None) -> int:
    """Send the subscribed e-mail alerts that are due (each thing once per subscriber)."""
    (progress or NullProgress()).total(1)
    return send_due()
