"""Winner rules end to end (database counts -> statistics -> decision), checked against scipy/statsmodels."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportions_ztest

from abtests import selectors, services, stats
from abtests.models import ABTest, ABTestResult
from marketing_ai import jobs
from tests.abtests.factories import ABTestFactory, populate
from tests.factories import OfferFactory

pytestmark = pytest.mark.django_db


def test_a_real_lift_at_the_planned_sample_is_declared_with_scipy_equal_p_value():
    test = ABTestFactory(sample_size_target=4000)
    populate(test, users=[2000, 2000], conversions=[160, 224])  # 8.0 % vs 11.2 %: +40 %
    result = services.abtest_analyze(test=test)
    _, p_ref = proportions_ztest([224, 160], [2000, 2000])
    assert result.decision == "winner" and result.winner == "B"
    assert result.p_value == pytest.approx(p_ref, rel=1e-9)
    assert result.lift == pytest.approx(40.0)
    assert result.lift_ci_low < 40.0 < result.lift_ci_high
    assert result.statistical_significance == pytest.approx((1 - p_ref) * 100, rel=1e-6)
    assert result.recommended_action.startswith("Ship B")
    assert result.users_still_needed == 0


def test_an_aa_test_is_not_declared():
    test = ABTestFactory(sample_size_target=4000)
    populate(test, users=[2000, 2000], conversions=[160, 161])
    result = services.abtest_analyze(test=test)
    assert result.decision == "inconclusive" and result.winner == ""
    assert "no significant difference" in result.reason
    assert "keep A" in result.recommended_action


def test_before_the_planned_sample_no_winner_and_the_users_still_needed():
    test = ABTestFactory(sample_size_target=10000)
    populate(test, users=[2000, 2000], conversions=[160, 224])
    result = services.abtest_analyze(test=test)
    assert result.significant  # it looks significant ...
    assert result.decision == "inconclusive" and result.winner == ""  # ... but peeking is not deciding
    assert result.users_still_needed == 6000
    assert "planned sample not reached" in result.reason
    assert "about 6,000 more users" in result.recommended_action


def test_a_sample_ratio_mismatch_blocks_the_winner():
    test = ABTestFactory(sample_size_target=4000)
    populate(test, users=[2200, 1800], conversions=[176, 252])
    srm_ref = scipy_stats.chisquare([2200, 1800], [2000, 2000]).pvalue
    result = services.abtest_analyze(test=test)
    assert result.srm_detected and result.srm_p_value == pytest.approx(srm_ref, rel=1e-9)
    assert result.decision == "srm" and result.winner == ""
    assert "investigate the split" in result.recommended_action


def test_control_wins_when_the_treatment_is_significantly_worse():
    test = ABTestFactory(sample_size_target=4000)
    populate(test, users=[2000, 2000], conversions=[224, 160])
    result = services.abtest_analyze(test=test)
    assert result.decision == "winner" and result.winner == "A"
    assert result.recommended_action.startswith("Keep A")


def test_three_arms_use_holm_adjusted_p_values():
    from statsmodels.stats.multitest import multipletests

    test = ABTestFactory(sample_size_target=4500, variants=[("A", 1 / 3), ("B", 1 / 3), ("C", 1 / 3)])
    populate(test, users=[1500, 1500, 1500], conversions=[120, 160, 128])
    result = services.abtest_analyze(test=test)
    raw = [proportions_ztest([160, 120], [1500, 1500])[1], proportions_ztest([128, 120], [1500, 1500])[1]]
    holm = multipletests(raw, method="holm")[1]
    by_name = {v["name"]: v for v in result.variants}
    assert by_name["B"]["p_value_adjusted"] == pytest.approx(holm[0], rel=1e-9)
    assert by_name["C"]["p_value_adjusted"] == pytest.approx(holm[1], rel=1e-9)
    assert result.p_value == pytest.approx(holm[0], rel=1e-9)
    chi2_ref = scipy_stats.chi2_contingency([[120, 1380], [160, 1340], [128, 1372]], correction=False)[0]
    assert result.chi2 == pytest.approx(chi2_ref, rel=1e-9)


def test_revenue_per_user_uses_welch_on_the_per_user_revenue():
    rng = np.random.default_rng(3)
    test = ABTestFactory(sample_size_target=4000, primary_metric=ABTest.Metric.REVENUE_PER_USER)
    rev_a = np.round(rng.gamma(2.0, 20.0, 400), 2)
    rev_b = np.round(rng.gamma(2.0, 26.0, 500), 2)
    populate(test, users=[2000, 2000], conversions=[400, 500], revenue=[list(rev_a), list(rev_b)])
    per_user_a = np.concatenate([rev_a, np.zeros(1600)])
    per_user_b = np.concatenate([rev_b, np.zeros(1500)])
    p_ref = scipy_stats.ttest_ind(per_user_b, per_user_a, equal_var=False).pvalue
    result = services.abtest_analyze(test=test)
    assert result.method == "welch"
    assert result.p_value == pytest.approx(p_ref, rel=1e-6)
    expected_lift = (per_user_b.mean() / per_user_a.mean() - 1) * 100
    assert result.lift == pytest.approx(expected_lift, rel=1e-9)
    assert result.winner == "B"


def test_a_guardrail_that_gets_significantly_worse_blocks_the_winner():
    rng = np.random.default_rng(5)
    test = ABTestFactory(sample_size_target=4000, guardrail_metrics=[ABTest.Metric.REVENUE_PER_USER])
    populate(test, users=[2000, 2000], conversions=[160, 224],
             revenue=[list(rng.uniform(80, 120, 160)), list(rng.uniform(20, 40, 224))])
    result = services.abtest_analyze(test=test)
    assert result.significant and result.winner == ""
    assert "revenue per user got significantly worse" in result.reason


def test_a_sequential_test_may_stop_early_when_the_boundary_is_crossed():
    test = ABTestFactory(sample_size_target=100_000, sequential=True)
    populate(test, users=[3000, 3000], conversions=[150, 300])  # 5 % vs 10 %: overwhelming
    result = services.abtest_analyze(test=test)
    assert result.method == "sequential"
    assert result.decision == "winner" and result.winner == "B"


def test_end_records_the_winner_and_applies_its_offer_and_send_time():
    old, new = OfferFactory(value=10), OfferFactory(value=25)
    test = ABTestFactory(sample_size_target=4000)
    test.campaign.current_offer = old
    test.campaign.save()
    b = test.ordered_variants[1]
    b.offer, b.send_time = new, dt.time(18, 30)
    b.save()
    populate(test, users=[2000, 2000], conversions=[160, 224])
    ended = services.abtest_end(test=test, apply_winner=True)
    test.refresh_from_db()
    test.campaign.refresh_from_db()
    assert test.status == "completed" and test.winner == "B" and test.ended_at is not None
    assert ended.applied == {"current_offer": new.offer_id, "send_time": "18:30"}
    assert test.campaign.current_offer == new and test.campaign.send_time == dt.time(18, 30)


def test_end_without_a_winner_leaves_the_campaign_alone():
    old, new = OfferFactory(value=10), OfferFactory(value=25)
    test = ABTestFactory(sample_size_target=4000)
    test.campaign.current_offer = old
    test.campaign.save()
    b = test.ordered_variants[1]
    b.offer = new
    b.save()
    populate(test, users=[2000, 2000], conversions=[160, 161])
    ended = services.abtest_end(test=test, apply_winner=True)
    test.campaign.refresh_from_db()
    assert ended.test.winner == "" and ended.applied == {}
    assert test.campaign.current_offer == old


def test_hourly_job_refreshes_running_tests_and_a_rerun_writes_nothing_new():
    running = ABTestFactory()
    populate(running, users=[100, 100], conversions=[5, 9])
    ABTestFactory(status=ABTest.Status.DRAFT, started_at=None)
    ABTestFactory()  # running, nobody assigned yet: nothing to analyse
    first = jobs.run("abtest_results")
    assert first.status == "succeeded" and first.rows_written == 1
    assert jobs.run("abtest_results").rows_written == 0  # same counts: no new row
    populate(running, users=[10, 0], conversions=[1, 0], prefix="late_")
    assert jobs.run("abtest_results").rows_written == 1
    assert ABTestResult.objects.filter(test=running).count() == 2
    assert jobs.get("abtest_results").schedule_text().startswith("15 * ")


def test_a_sequential_p_value_is_the_running_minimum_across_looks():
    test = ABTestFactory(sample_size_target=100_000, sequential=True)
    populate(test, users=[1000, 1000], conversions=[50, 75])
    first = services.abtest_analyze(test=test)
    # More users with no difference would raise a fixed-horizon p-value; the always-valid one keeps its minimum.
    populate(test, users=[3000, 3000], conversions=[150, 150], prefix="second_look_")
    second = services.abtest_analyze(test=test)
    assert second.users_total == 8000
    without_memory = stats.sequential_test([4000, 4000], [200, 225], planned_users=100_000).arms[0].p_value
    assert without_memory > first.variants[1]["p_value"]
    assert second.variants[1]["p_value"] == pytest.approx(first.variants[1]["p_value"])
    status = selectors.abtest_status(test=test)
    assert status["safe_to_stop"] is False and "keep running" in status["reason"]


def test_after_a_sequential_win_the_stored_interval_never_contains_zero_while_significant():
    test = ABTestFactory(sample_size_target=4000, sequential=True)
    populate(test, users=[1000, 1000], conversions=[50, 110])
    first = services.abtest_analyze(test=test)
    assert first.significant and first.lift_ci_low > 0
    # A second look whose own evidence is weaker: alone, its sequence would contain 0 ...
    populate(test, users=[3000, 3000], conversions=[150, 150], prefix="second_look_")
    alone = stats.sequential_test([4000, 4000], [200, 260], planned_users=4000).arms[0]
    assert not alone.significant and alone.lift_cs_low < 0
    # ... but the p-value keeps its minimum and the interval is the running intersection: they still agree.
    second = services.abtest_analyze(test=test)
    assert second.significant and second.variants[1]["p_value"] == pytest.approx(first.variants[1]["p_value"])
    assert second.lift_ci_low == pytest.approx(first.lift_ci_low) and second.lift_ci_low > 0
    assert second.lift_ci_high == pytest.approx(alone.lift_cs_high * 100)
    status = selectors.abtest_status(test=test)
    assert status["variants"][1]["ci_low"] > 0 and status["p_value"] < 0.05
