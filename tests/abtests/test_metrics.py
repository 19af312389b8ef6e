"""Several metrics per test: each metric's test against scipy/statsmodels, the correction across secondary
metrics against statsmodels' multipletests, and guardrails that block shipping (API and page)."""

from __future__ import annotations

import datetime as dt
import gc

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from abtests import metrics
from abtests.models import ABTest
from campaigns.models import Customer, Event
from tests.abtests.factories import populate, rebuild_if_kept
from tests.factories import CampaignFactory


def random_arms(rng, k: int, kind: str) -> list[metrics.MetricArm]:
    users = rng.integers(30, 3000, k)
    if kind == metrics.BINARY:
        counts = rng.binomial(users, rng.uniform(0.02, 0.6))
        return [metrics.MetricArm(int(n), float(c), float(c)) for n, c in zip(users, counts, strict=True)]
    arms = []
    for n in users:
        values = rng.exponential(20, n) * (rng.random(n) < 0.3)
        arms.append(metrics.MetricArm(int(n), float(values.sum()), float((values**2).sum())))
    return arms


@pytest.mark.parametrize("correction, reference", [("holm", "holm"), ("bh", "fdr_bh")])
def test_secondary_metrics_match_scipy_and_the_correction_matches_multipletests(correction, reference, monkeypatch):
    monkeypatch.setattr(gc, "collect", lambda *args: 0)  # multipletests collects garbage on every call
    rng = np.random.default_rng(42)
    names = list(metrics.METRICS)
    for _ in range(300):
        k = int(rng.integers(2, 5))
        variants = [f"v{i}" for i in range(k)]
        arms = {name: random_arms(rng, k, metrics.METRICS[name].kind) for name in names}
        secondary = list(rng.choice(names[1:], size=int(rng.integers(1, 4)), replace=False))
        rows = metrics.evaluate(names=variants, goal="conversion_rate", secondary=secondary, guardrails=[],
                                arms_by_metric=arms, confidence_level=0.95, correction=correction)
        family = [r for r in rows if r.role == metrics.SECONDARY]
        assert [(r.metric, r.variant) for r in family] == [(m, v) for m in secondary for v in variants[1:]]
        raw = []
        for r in family:
            a0, a1 = arms[r.metric][0], arms[r.metric][variants.index(r.variant)]
            if metrics.METRICS[r.metric].kind == metrics.BINARY:
                _, p = proportions_ztest([a1.total, a0.total], [a1.users, a0.users])
            else:
                p = scipy_stats.ttest_ind_from_stats(a1.mean, np.sqrt(a1.variance), a1.users, a0.mean,
                                                     np.sqrt(a0.variance), a0.users, equal_var=False).pvalue
            assert r.p_value == pytest.approx(p, rel=1e-8, abs=1e-300)
            assert r.lift == pytest.approx(100 * (a1.mean / a0.mean - 1), rel=1e-9)
            raw.append(p)
        reject, adjusted, _, _ = multipletests(raw, alpha=0.05, method=reference)
        assert [r.p_value_adjusted for r in family] == pytest.approx(list(adjusted), rel=1e-8, abs=1e-300)
        assert [r.significant for r in family] == list(reject)


def test_a_guardrail_fails_only_when_significantly_worse():
    arms = {"click_rate": [metrics.MetricArm(2000, 400, 400), metrics.MetricArm(2000, 300, 300),
                           metrics.MetricArm(2000, 390, 390)]}
    rows = metrics.evaluate(names=["A", "B", "C"], goal="click_rate", secondary=[], guardrails=["click_rate"],
                            arms_by_metric=arms, confidence_level=0.95, goal_rows=[])
    assert [(r.variant, r.guardrail_failed) for r in rows] == [("B", True), ("C", False)]
    assert metrics.failed_guardrails(rows) == {"B": ["click rate"]}


def add_events(test: ABTest, event_type: str, per_arm: list[int]) -> None:
    """The first ``per_arm[i]`` customers of arm i (as ``populate`` named them) get one event of the type."""
    events = []
    pk = dict(Customer.objects.filter(customer_id__startswith=f"{test.test_id}_").values_list("customer_id", "pk"))
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=12)
    for i, n in enumerate(per_arm):
        for j in range(n):
            events.append(Event(event_id=f"{test.test_id}_{event_type}_{i}_{j}", type=event_type, occurred_at=at,
                                customer_id=pk[f"{test.test_id}_{i}_{j}"], campaign_id=test.campaign_id))
    Event.objects.bulk_create(events)
    rebuild_if_kept(test)


def create(api, **extra) -> str:
    campaign = CampaignFactory()
    body = {"campaign_id": campaign.campaign_id, "test_name": "metrics", "sample_size_target": 4000, **extra}
    response = api.post("/api/v1/ab-tests/", body, format="json")
    assert response.status_code == 201, response.json()
    assert api.post(f"/api/v1/ab-tests/{response.json()['test_id']}/start").status_code == 200
    return response.json()["test_id"]


@pytest.mark.django_db
def test_a_failing_click_guardrail_blocks_a_winner_and_every_metric_has_its_row(api):
    test_id = create(api, secondary_metrics=["open_rate", "revenue_per_user"], guardrail_metrics=["click_rate"],
                     multiple_testing="bh")
    test = ABTest.objects.get(test_id=test_id)
    assert test.secondary_metrics == ["open_rate", "revenue_per_user"] and test.multiple_testing == "bh"
    populate(test, users=[2000, 2000], conversions=[160, 224])  # +40 % conversion: a clear win
    add_events(test, "notification_opened", [900, 920])
    add_events(test, "click", [400, 300])  # clicks drop by a quarter: the guardrail fails
    body = api.post(f"/api/v1/ab-tests/{test_id}/analyze").json()
    assert body["significant"] and body["winner"] is None and body["decision"] == "inconclusive"
    assert "click rate got significantly worse" in body["reason"]
    by_metric = {(m["metric"], m["role"]): m for m in body["metrics"]}
    assert set(by_metric) == {("conversion_rate", "goal"), ("open_rate", "secondary"),
                              ("revenue_per_user", "secondary"), ("click_rate", "guardrail")}
    assert by_metric[("conversion_rate", "goal")]["lift"] == pytest.approx(body["lift"])
    assert by_metric[("conversion_rate", "goal")]["ci_low"] == pytest.approx(body["lift_ci_low"])
    clicks = by_metric[("click_rate", "guardrail")]
    assert clicks["guardrail_failed"] and clicks["direction"] == "worse"
    assert clicks["p_value"] == pytest.approx(proportions_ztest([300, 400], [2000, 2000])[1], rel=1e-9)
    opens = by_metric[("open_rate", "secondary")]
    assert opens["value"] == pytest.approx(0.46) and opens["control_value"] == pytest.approx(0.45)
    raw = [opens["p_value"], by_metric[("revenue_per_user", "secondary")]["p_value"]]
    assert opens["p_value_adjusted"] == pytest.approx(multipletests(raw, method="fdr_bh")[1][0])
    status = api.get(f"/api/ab-tests/{test_id}/status").json()
    assert [m["metric"] for m in status["metrics"]] == [m["metric"] for m in body["metrics"]]


@pytest.mark.django_db
def test_the_same_win_with_a_holding_guardrail_ships(api):
    test_id = create(api, guardrail_metrics=["click_rate"])
    test = ABTest.objects.get(test_id=test_id)
    populate(test, users=[2000, 2000], conversions=[160, 224])
    add_events(test, "click", [400, 395])
    body = api.post(f"/api/v1/ab-tests/{test_id}/analyze").json()
    assert body["decision"] == "winner" and body["winner"] == "B"
    assert [m["guardrail_failed"] for m in body["metrics"] if m["role"] == "guardrail"] == [False]


@pytest.mark.django_db
@pytest.mark.parametrize("extra, field", [
    ({"secondary_metrics": ["bounce_rate"]}, "secondary_metrics"),
    ({"guardrail_metrics": ["nope"]}, "guardrail_metrics"),
    ({"multiple_testing": "bonferroni"}, "multiple_testing"),
])
def test_unknown_metrics_and_corrections_are_a_400(api, extra, field):
    campaign = CampaignFactory()
    body = {"campaign_id": campaign.campaign_id, "test_name": "m", "sample_size_target": 100, **extra}
    response = api.post("/api/v1/ab-tests/", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_the_card_lists_the_metrics_and_marks_a_failing_guardrail(client, marketer, api):
    test_id = create(api, secondary_metrics=["open_rate"], guardrail_metrics=["click_rate"])
    test = ABTest.objects.get(test_id=test_id)
    populate(test, users=[2000, 2000], conversions=[160, 224])
    add_events(test, "click", [400, 300])
    client.force_login(marketer)
    html = client.get(f"/ab-tests/{test_id}/").content.decode()
    assert 'class="metrics"' in html and "open rate" in html
    assert "guardrail-failed" in html and "fails: blocks shipping B" in html
    assert "Holm, family-wise error rate" in html
