"""Offer confidence is a calibrated probability, checked against the planted truth of several generator seeds.

Each seed plants its own offer curves (``campaigns.demo.offer_curves``), so the study sees different
truths, not only different noise. The answers come from the job's own offer code
(``recommend.campaign_offer_recommendations``, called by ``bench.offer_calibration.evaluate`` on the
generated events); the larger study (20 seeds x two sizes) is ``bench/offer_calibration.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bench.offer_calibration import evaluate, reliability
from optimizer import recommend

SEEDS = (1, 2, 3, 4, 5, 6)


@pytest.fixture(scope="module")
def study():
    """Answers for six seeds at the demo's default size and at a thin size (600 customers)."""
    out = {}
    for customers in (2000, 600):
        answers, segments = [], []
        for seed in SEEDS:
            seed_answers, per_segment, truth = evaluate(seed, customers)
            answers += seed_answers
            segments += [(rec, truth["best_offer"][s]) for s, rec in per_segment.items()]
        out[customers] = (answers, segments)
    return out


def test_the_seeds_plant_different_best_offers(study):
    _, segments = study[2000]
    assert len({best for _, best in segments}) >= 4


def test_no_proposal_at_confidence_090_or_more_is_wrong_at_the_demo_size(study):
    answers, _ = study[2000]
    proposals = [a for a in answers if a.decided and a.recommended != a.current]
    assert all(a.confidence >= recommend.DECISION_PROBABILITY for a in proposals)
    assert [a for a in proposals if a.confidence >= 0.9 and not a.beats_current] == []
    assert len(proposals) >= 50, "too few proposals for the check to mean anything"


@pytest.mark.parametrize("customers", [2000, 600])
def test_among_answers_shown_with_confidence_c_or_more_at_least_c_are_right(study, customers):
    """Over every answer that would change the offer (decided or not): share right >= c for c = 0.5 .. 0.9.

    "Right" is the planted truth: the recommended offer earns more per click than the current one.
    The share may fall below c only by sampling noise: a one-sided binomial test at the 1 % level.
    """
    answers, _ = study[customers]
    changes = [a for a in answers if a.recommended != a.current]
    for c in (0.5, 0.6, 0.7, 0.8, 0.9):
        shown = [a for a in changes if a.confidence >= c]
        if not shown:
            continue
        right = sum(a.beats_current for a in shown)
        assert stats.binomtest(right, len(shown), c, alternative="less").pvalue > 0.01, (c, right, len(shown))
    table = reliability(answers)
    assert table["answers"].sum() == len(changes)


def test_thin_data_mostly_answers_keep_with_the_sends_that_would_decide(study):
    answers, _ = study[600]
    undecided = [a for a in answers if not a.decided and a.recommended != a.current]
    assert len(undecided) >= 10
    needed = [a.sends_needed for a in undecided if a.sends_needed is not None]
    assert needed and min(needed) > 0
    assert all(a.sends_needed == 0 for a in answers if a.decided)


def test_most_segments_get_their_planted_best_offer_at_the_demo_size(study):
    _, segments = study[2000]
    right = sum(rec.recommended_offer == best for rec, best in segments)
    assert right / len(segments) >= 0.8, f"{right} of {len(segments)}"


@pytest.mark.parametrize(("rates", "sends"), [((0.050, 0.060), 2000), ((0.20, 0.235), 500), ((0.010, 0.0125), 20_000)])
def test_sends_needed_is_the_sample_at_which_the_posterior_would_decide(rates, sends):
    """Scale both offers' sends by the answer, keeping their rates: P(beats) reaches DECISION_PROBABILITY."""
    p0, p1 = rates  # 0 % and 10 % off: profit p0 vs 0.9 p1
    outcomes = [recommend.OfferOutcome(0, sends, round(p0 * sends), 0.0), recommend.OfferOutcome(10, sends, round(p1 * sends), 0.0)]
    first = recommend.recommend_offer("s", outcomes, current_offer=0, order_value=1.0, prior_strength=1.0, draws=20_000)
    assert not first.decided and first.recommended_offer == 10 and first.sends_needed > 0
    k = 1 + first.sends_needed / (2 * sends)
    bigger = [recommend.OfferOutcome(o.offer_value, round(o.sends * k), round(o.conversions * k), 0.0) for o in outcomes]
    later = recommend.recommend_offer("s", bigger, current_offer=0, order_value=1.0, prior_strength=1.0, draws=20_000)
    assert later.confidence == pytest.approx(recommend.DECISION_PROBABILITY, abs=0.015)
    # And the normal approximation behind it agrees with the exact Beta posteriors (numerical integration).
    a = stats.beta(1 + round(p0 * sends * k), round((1 - p0) * sends * k))
    b = stats.beta(1 + round(p1 * sends * k), round((1 - p1) * sends * k))
    grid = np.linspace(0, min(1.0, 5 * p1), 20_001)
    exact = np.trapezoid(b.pdf(grid) * a.cdf(0.9 * grid), grid)
    assert exact == pytest.approx(recommend.DECISION_PROBABILITY, abs=0.02)
