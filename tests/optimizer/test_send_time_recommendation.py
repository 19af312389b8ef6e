"""The send-time recommendation: personal hours vs the campaign's fixed time, against the generator's planted hours."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest

from campaigns import demo
from campaigns.demo_load import seed_demo
from campaigns.models import Campaign, Customer
from optimizer import registry
from optimizer.ml import send_time
from optimizer.models import CampaignOptimization
from optimizer.services import recommendations, send_times, training

END = dt.date(2026, 6, 30)


@pytest.fixture(autouse=True)
def artifacts_in_tmp(settings, tmp_path):
    settings.MODEL_ARTIFACT_DIR = tmp_path / "models"
    registry._CACHE.clear()


def planted_open_probability(local_hour: np.ndarray, preferred: np.ndarray) -> np.ndarray:
    """The generator's open probability of a send in the first half of ``local_hour`` (campaigns/demo.py), per customer factor 1."""
    gap = np.abs(local_hour + 0.25 - (preferred + 0.5))
    gap = np.minimum(gap, 24 - gap)
    return demo.BASE_OPEN + demo.PEAK_OPEN * np.exp(-0.5 * (gap / demo.HOUR_SPREAD) ** 2)


def planted_gain(campaign: Campaign, truth: dict, day: dt.date) -> float:
    """Relative gain in opens (percent) of personal hours over the campaign's fixed time under the planted truth."""
    segments = [s.name for s in campaign.target_segments.all()]
    customers = Customer.objects.filter(segment__name__in=segments) if segments else Customer.objects.all()
    rows = list(customers.select_related("send_time").values_list("customer_id", "timezone", "send_time__local_send_time"))
    preferred = np.array([truth["preferred_hour"][cid] for cid, _, _ in rows])
    fixed = dt.datetime.combine(day, campaign.send_time, tzinfo=dt.UTC)
    fixed_local = np.array([fixed.astimezone(zoneinfo.ZoneInfo(tz)).hour for _, tz, _ in rows])
    personal_local = np.array([t.hour for _, _, t in rows])
    return float((planted_open_probability(personal_local, preferred).sum() / planted_open_probability(fixed_local, preferred).sum() - 1) * 100)


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [21, 22])
def test_timing_proposals_follow_the_planted_hours_with_an_honest_interval(seed):
    truth = seed_demo(customers=500, merchants=20, campaigns=6, days=42, seed=seed, end_date=END)
    training.train_all()
    send_times.compute_send_times()
    now = dt.datetime.combine(END, dt.time(23), tzinfo=dt.UTC)
    recommendations.generate_optimizations(now=now)

    proposals = list(CampaignOptimization.objects.filter(recommendation_type="timing", status="proposed").select_related("campaign"))
    assert proposals, "the generator plants strong personal hours: personal sending must be proposed somewhere"
    for p in proposals:
        lo, hi = p.details["relative_gain_interval"]
        true_gain = planted_gain(p.campaign, truth, END)
        # Proposed only when the interval is above zero, and then the planted truth gains too.
        assert 0 < lo <= p.expected_impact <= hi
        assert true_gain > 0, (p.campaign.campaign_id, true_gain, lo, hi)
        # The model's estimate is of the planted size (it reads open hours, not the planted curve: within a factor of 2).
        assert 0.5 * true_gain <= p.expected_impact <= 2.0 * true_gain, (p.campaign.campaign_id, true_gain, p.expected_impact)
        assert p.recommended_value == "personal" and p.current_value == f"fixed {p.campaign.send_time:%H:%M}"
        assert f"{p.details['expected_opens_current']:,.1f}" in p.rationale

    # Rationales come from the data: equal only for campaigns with the same audience and fixed time.
    def data_key(c: Campaign) -> tuple:
        return (tuple(sorted(s.name for s in c.target_segments.all())), c.send_time)

    for a in proposals:
        for b in proposals:
            if a.pk < b.pk and data_key(a.campaign) != data_key(b.campaign):
                assert a.rationale != b.rationale


def test_no_gain_no_proposal_when_the_fixed_hour_is_everyones_hour():
    rng = np.random.default_rng(3)
    n = 800
    counts = np.zeros((n, 24), dtype=int)
    counts[:, 19] = rng.poisson(8, n)  # everyone opens at 19:00 local
    counts[:, 18] = counts[:, 20] = rng.poisson(1, n)  # symmetric around it: 19:00 is the best window
    segments = rng.integers(0, 3, n)
    artifact, _ = send_time.fit(counts, segments, n_segments=3)
    personal = send_time.recommend(artifact, counts, segments)["hour"]
    assert set(personal.tolist()) == {19}
    gain = send_time.policy_gain(artifact, counts, segments, np.full(n, 20), counts.sum(axis=1) // 3, np.full(n, 19), personal)
    assert gain.relative_gain == 0 and gain.moved == 0 and gain.interval[0] <= 0 <= gain.interval[1]


def test_policy_gain_interval_covers_the_gain_of_customers_drawn_from_the_model():
    """Calibration by simulation: audiences drawn from the model's own assumptions; the 90 % interval covers the true gain ~90 %."""
    covered, runs = 0, 40
    for run in range(runs):
        rng = np.random.default_rng(100 + run)
        n = 300
        segments = rng.integers(0, 3, n)
        true_pattern = rng.dirichlet(np.full(24, 0.3), size=n)
        rate = rng.beta(2, 8, n)
        history = np.array([rng.multinomial(k, p) for k, p in zip(rng.integers(0, 25, n), true_pattern, strict=True)])
        artifact, _ = send_time.fit(history, segments, n_segments=3)
        fixed = np.full(n, 9)
        personal = send_time.recommend(artifact, history, segments)["hour"]
        sends = rng.integers(5, 40, n)
        opens = rng.binomial(sends, rate)
        truth = send_time.open_probability(artifact, true_pattern, rate, personal).sum() / send_time.open_probability(artifact, true_pattern, rate, fixed).sum()
        gain = send_time.policy_gain(artifact, history, segments, sends, opens, fixed, personal, seed=run)
        covered += gain.interval[0] <= (truth - 1) * 100 <= gain.interval[1]
    assert covered / runs >= 0.75, covered
