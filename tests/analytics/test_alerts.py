"""E-mail alerts: what is due (checked against independent computations), sent once, only to subscribers."""

from __future__ import annotations

import datetime as dt
import math
import random

import numpy as np
import pytest
from django.core import mail
from django.utils import timezone

from analytics import alerts
from analytics.models import AlertSent, AlertSubscription, CampaignAnalyticsDaily
from marketing_ai.models import JobRun
from tests.abtests.factories import ABTestFactory, populate
from tests.factories import CampaignFactory

Kind = AlertSubscription.Kind


@pytest.mark.parametrize("seed", range(20))
def test_usual_range_is_mean_plus_minus_three_sd_with_a_poisson_floor(seed):
    rng = np.random.default_rng(seed)
    history = rng.poisson(rng.uniform(0.5, 60), size=int(rng.integers(14, 29))).tolist()
    usual = alerts.usual_range(history)
    mean, sd = np.mean(history), np.std(history, ddof=1)
    spread = 3 * max(sd, math.sqrt(mean))
    assert usual.mean == pytest.approx(mean)
    assert usual.high == pytest.approx(mean + spread) and usual.low == pytest.approx(max(0, mean - spread))


def test_too_little_history_has_no_usual_range():
    assert alerts.usual_range([5] * (alerts.MIN_HISTORY_DAYS - 1)) is None


def _days(campaign, today, counts):
    """``counts[i]`` conversions on the day i+1 days before ``today`` (counts[0] is yesterday)."""
    CampaignAnalyticsDaily.objects.bulk_create([
        CampaignAnalyticsDaily(campaign=campaign, date=today - dt.timedelta(days=i + 1), conversions=n,
                               computed_at=timezone.now())
        for i, n in enumerate(counts)
    ])


@pytest.fixture
def subscriber(make_user):
    def make(name, *kinds, campaign=None, email=True):
        user = make_user(name, "marketer", email=f"{name}@example.com" if email else "")
        alerts.subscriptions_set(user=user, kinds=set(kinds), campaign=campaign)
        return user
    return make


@pytest.mark.django_db
def test_a_collapse_in_daily_conversions_is_mailed_once_to_subscribers(subscriber):
    today = timezone.now().date()
    rng = random.Random(1)
    quiet, steady = CampaignFactory(name="Quiet"), CampaignFactory(name="Steady")
    history = [rng.randint(35, 45) for _ in range(alerts.USUAL_DAYS)]
    _days(quiet, today, [2, *history])
    _days(steady, today, [40, *history])
    subscriber("ann", Kind.CONVERSIONS_UNUSUAL)
    subscriber("bob", Kind.JOB_FAILED)
    subscriber("cid", Kind.CONVERSIONS_UNUSUAL, campaign=steady)  # only the steady one, which is fine
    subscriber("dan", Kind.CONVERSIONS_UNUSUAL, email=False)  # no address: nothing to send to

    assert alerts.send_due() == 1
    assert alerts.send_due() == 0  # the same day is not mailed twice
    (message,) = mail.outbox
    assert message.to == ["ann@example.com"]
    mean = np.mean(history)
    assert "Quiet: conversions fell below their usual range" in message.subject
    assert f"averaged {mean:.1f} a day" in message.body and "had 2 conversions" in message.body


@pytest.mark.django_db
def test_a_new_campaign_without_enough_history_is_not_judged(subscriber):
    today = timezone.now().date()
    _days(CampaignFactory(), today, [0, *[50] * (alerts.MIN_HISTORY_DAYS - 1)])
    subscriber("ann", Kind.CONVERSIONS_UNUSUAL)
    assert alerts.send_due() == 0


@pytest.mark.django_db
def test_a_test_decision_and_an_srm_reach_their_subscribers_only(subscriber):
    from abtests import services

    decided = ABTestFactory(test_name="Copy test")
    populate(decided, users=[1000, 1000], conversions=[50, 120])
    services.abtest_analyze(test=decided)
    broken = ABTestFactory(test_name="Broken split")
    populate(broken, users=[700, 300], conversions=[10, 5])
    services.abtest_analyze(test=broken)
    subscriber("ann", Kind.ABTEST_DECISION)
    subscriber("bob", Kind.ABTEST_SRM)
    subscriber("cid", Kind.ABTEST_DECISION, campaign=broken.campaign)  # a campaign whose test has not decided

    assert alerts.send_due() == 2
    by_user = {m.to[0]: m for m in mail.outbox}
    assert set(by_user) == {"ann@example.com", "bob@example.com"}
    assert "Copy test: B wins" in by_user["ann@example.com"].subject
    assert "Broken split: sample ratio mismatch" in by_user["bob@example.com"].subject
    assert alerts.send_due() == 0


@pytest.mark.django_db
def test_a_failed_job_is_mailed_and_old_failures_are_not(subscriber):
    JobRun.objects.create(job="send_times", status="failed", error="Traceback: boom",
                          started_at=timezone.now() - dt.timedelta(days=3))
    JobRun.objects.create(job="daily_analytics", status="failed", error="Traceback: database gone")
    JobRun.objects.create(job="model_retraining", status="succeeded")
    subscriber("ann", Kind.JOB_FAILED)
    assert alerts.send_due() == 1
    assert mail.outbox[0].subject == "[marketing_ai] Job daily_analytics failed"
    assert "database gone" in mail.outbox[0].body


@pytest.mark.django_db
def test_a_mail_that_fails_is_tried_again_next_run(subscriber, settings):
    JobRun.objects.create(job="daily_analytics", status="failed", error="x")
    subscriber("ann", Kind.JOB_FAILED)
    settings.EMAIL_BACKEND = "tests.analytics.test_alerts.BrokenBackend"
    with pytest.raises(ConnectionError):
        alerts.send_due()
    assert not AlertSent.objects.exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert alerts.send_due() == 1


class BrokenBackend:
    """A mail server that is down (the real Django interface, no delivery)."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionError("mail server down")


@pytest.mark.django_db
def test_the_page_saves_subscriptions_and_refuses_a_bad_address(client, marketer):
    client.force_login(marketer)
    campaign = CampaignFactory(campaign_id="camp_alert", name="Alerted")
    response = client.post("/analytics/alerts/", {"email": "m@example.com", "kinds": [Kind.JOB_FAILED, Kind.ABTEST_SRM]}, follow=True)
    assert "Alerts for every campaign to m@example.com" in response.content.decode()
    client.post("/analytics/alerts/", {"email": "m@example.com", "campaign_id": "camp_alert", "kinds": [Kind.CONVERSIONS_UNUSUAL]})
    assert set(AlertSubscription.objects.filter(user=marketer).values_list("kind", "campaign")) == {
        (Kind.JOB_FAILED, None), (Kind.ABTEST_SRM, None), (Kind.CONVERSIONS_UNUSUAL, campaign.pk)}
    client.post("/analytics/alerts/", {"email": "m@example.com", "kinds": [Kind.JOB_FAILED]})  # unticking removes
    assert AlertSubscription.objects.filter(user=marketer, campaign=None).count() == 1
    html = client.post("/analytics/alerts/", {"email": "not-an-address", "kinds": [Kind.JOB_FAILED]}, follow=True).content.decode()
    assert "is not an e-mail address" in html
    html = client.get("/analytics/alerts/").content.decode()
    assert "Alerted" in html and "checked" in html


def test_alerts_job_is_registered_hourly_after_the_aggregation():
    from marketing_ai import jobs

    job = jobs.REGISTRY["alerts"]
    assert job.schedule_text() == "30 * * * * (UTC)" and job.after == ("daily_analytics",)
