"""The safe apply workflow: live values, stale-apply 409, supersede, contradictions, preview, undo, the change log.

Proposals come from the real job over hand-built events (see test_recommendations_service.add_outcomes);
A/B winners from the real A/B service; every write is checked on the database and in the change log.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from abtests import services as ab_services
from campaigns import configuration
from campaigns import selectors as campaign_selectors
from campaigns.configuration import SettingChange
from campaigns.models import CampaignChange, Customer, Event, Segment
from marketing_ai import jobs
from optimizer import recommend
from optimizer.models import CampaignOptimization, UserMerchantAffinity
from optimizer.services import recommendations as reco
from tests.abtests.factories import ABTestFactory, populate
from tests.factories import CampaignFactory, MerchantFactory, OfferFactory, SegmentFactory
from tests.optimizer.test_recommendations_service import add_outcomes

pytestmark = pytest.mark.django_db
Opt = CampaignOptimization


@pytest.fixture
def offers():
    return {v: OfferFactory(offer_id=f"off_{v}pct", value=Decimal(v)) for v in (0, 20, 40)}


@pytest.fixture
def campaign(offers):
    c = CampaignFactory(campaign_id="camp_1", current_offer=offers[0], send_time=dt.time(3, 0))
    c.target_segments.set([SegmentFactory(name=Segment.NEW_USERS)])
    # 1 % convert without a discount, 8 % with 20 % off: 20 % off earns far more per send.
    add_outcomes(c, Segment.NEW_USERS, offers[0], sends=1000, conversions=10, order_value=50)
    add_outcomes(c, Segment.NEW_USERS, offers[20], sends=1000, conversions=80, order_value=50)
    return c


@pytest.fixture
def proposal(campaign):
    jobs.run("campaign_optimizations")
    return Opt.objects.get(campaign=campaign, recommendation_type="offer", status="proposed")


def log(campaign):
    return [(c.field, c.segment, c.old_value, c.new_value, c.source) for c in CampaignChange.objects.filter(campaign=campaign).order_by("pk")]


def end_with_winner_offer(campaign, offer, user):
    """A real A/B test on the campaign whose variant B (with ``offer``) wins, ended with apply_winner."""
    test = ABTestFactory(campaign=campaign, sample_size_target=4000)
    b = test.ordered_variants[1]
    b.offer = offer
    b.save()
    populate(test, users=[2000, 2000], conversions=[160, 224])
    ended = ab_services.abtest_end(test=test, apply_winner=True, user=user)
    assert ended.test.winner == "B"
    return test


def test_a_proposal_records_the_live_value_it_was_computed_against(proposal):
    assert (proposal.target, proposal.live_value, proposal.current_value, proposal.recommended_value) == (
        "new_users", "off_0pct", "0", "20",
    )


def test_apply_after_an_ab_winner_is_409_naming_the_live_value_and_the_winner(api, campaign, proposal, offers, marketer):
    test = end_with_winner_offer(campaign, offers[40], marketer)
    resp = api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/apply/")
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert error["code"] == "stale_value"
    assert "off_40pct" in error["message"] and "off_0pct" in error["message"]
    assert "A/B winner" in error["message"] and test.test_id in error["message"] and "Regenerate" in error["message"]
    # Nothing moved: the winner's offer is live, the proposal is still open, only the A/B change is logged.
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_40pct"
    proposal.refresh_from_db()
    assert proposal.status == "proposed"
    assert log(campaign) == [("offer", "", "off_0pct", "off_40pct", "ab_winner")]
    # Regenerating computes against the live value; the stale proposal is superseded.
    regenerated = api.post("/api/v1/optimize/campaigns/camp_1/regenerate")
    assert regenerated.status_code == 200
    proposal.refresh_from_db()
    assert proposal.status == "superseded"
    assert {r["live_value"] for r in regenerated.json() if r["recommendation_type"] == "offer"} <= {"off_40pct"}


def test_ab_winner_clears_segment_offers_and_logs_every_change(campaign, offers, marketer):
    configuration.change_settings(campaign, [SettingChange("offer", "off_20pct", "new_users")], source="api")
    test = end_with_winner_offer(campaign, offers[40], marketer)
    assert log(campaign)[1:] == [
        ("offer", "", "off_0pct", "off_40pct", "ab_winner"),
        ("offer", "new_users", "off_20pct", "", "ab_winner"),
    ]
    assert set(CampaignChange.objects.filter(source="ab_winner").values_list("note", flat=True)) == {f"A/B test {test.test_id}: winner B"}
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_40pct"


def test_an_admin_edit_of_the_segment_offer_also_makes_apply_stale(api, campaign, proposal, marketer):
    configuration.change_settings(campaign, [SettingChange("offer", "off_40pct", "new_users")], user=marketer, source="admin")
    resp = api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/apply/")
    assert resp.status_code == 409 and "an admin edit" in resp.json()["error"]["message"]


def test_apply_changes_only_its_segment_and_is_logged_as_a_recommendation(api, campaign, proposal, offers):
    returning = SegmentFactory(name=Segment.RETURNING_USERS)
    campaign.target_segments.add(returning)
    resp = api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/apply/")
    assert resp.status_code == 200, resp.content
    got = {s: o.offer_id for s, o in campaign_selectors.offers_by_segment(campaign, ["new_users", "returning_users"]).items()}
    assert got == {"new_users": "off_20pct", "returning_users": "off_0pct"}
    assert log(campaign) == [("offer", "new_users", "", "off_20pct", "recommendation")]
    change = CampaignChange.objects.get()
    assert (change.changed_by.username, change.note) == ("marketer", f"recommendation {proposal.pk} (offer)")
    assert resp.json()["applied_change"] == change.pk


def test_applying_supersedes_the_other_open_proposals_for_the_same_setting(campaign, proposal, marketer):
    twin = Opt.objects.create(campaign=campaign, recommendation_type="offer", target="new_users", current_value="0",
                              recommended_value="40", live_value="off_0pct", expected_impact=3, confidence=0.6)
    other_segment = Opt.objects.create(campaign=campaign, recommendation_type="offer", target="returning_users",
                                       current_value="0", recommended_value="20", live_value="off_0pct", expected_impact=3, confidence=0.6)
    timing = Opt.objects.create(campaign=campaign, recommendation_type="timing", current_value="fixed 03:00",
                                recommended_value="personal", live_value="fixed", expected_impact=3, confidence=0.6)
    stale_timing = Opt.objects.create(campaign=campaign, recommendation_type="timing", current_value="personal",
                                      recommended_value="fixed", live_value="personal", expected_impact=3, confidence=0.6)
    reco.apply_optimization(proposal, marketer)
    statuses = {o.pk: o.status for o in Opt.objects.filter(pk__in=[twin.pk, other_segment.pk, timing.pk, stale_timing.pk])}
    assert statuses == {
        twin.pk: "superseded",  # the same field and segment
        other_segment.pk: "proposed",  # another segment's offer is untouched
        timing.pk: "proposed",  # another field, still computed against the live value
        stale_timing.pk: "superseded",  # computed against a value that is no longer live
    }


def test_a_targeting_proposal_and_offer_proposals_for_the_segments_it_drops_are_not_both_open(offers, marketer):
    c = CampaignFactory(current_offer=offers[0])
    c.target_segments.set([SegmentFactory(name="new_users"), SegmentFactory(name="high_value_users")])
    add_outcomes(c, "new_users", offers[0], sends=500, conversions=60, order_value=50)
    # high_value_users lose money overall, though 20 % off beats no discount within the segment.
    add_outcomes(c, "high_value_users", offers[0], sends=500, conversions=2, order_value=50)
    add_outcomes(c, "high_value_users", offers[20], sends=1000, conversions=40, order_value=50)
    Event.objects.create(event_id="spend-1", type="spend", occurred_at=timezone.now() - dt.timedelta(days=2), campaign=c, amount=Decimal("4000"))
    jobs.run("campaign_optimizations")
    targeting = Opt.objects.get(campaign=c, recommendation_type="segment", status="proposed")
    assert targeting.details["dropped"] == ["high_value_users"]
    assert not Opt.objects.filter(campaign=c, recommendation_type="offer", target="high_value_users", status="proposed").exists()
    # Dismissing the drop lets the next run propose the segment's better offer: the rule is what held it back.
    reco.dismiss_optimization(targeting, marketer)
    jobs.run("campaign_optimizations")
    offer = Opt.objects.get(campaign=c, recommendation_type="offer", target="high_value_users", status="proposed")
    assert offer.recommended_value == "20"
    # And applying a drop supersedes an offer proposal of the dropped segment.
    drop = Opt.objects.create(campaign=c, recommendation_type="segment", current_value="high_value_users,new_users",
                              recommended_value="new_users", live_value="high_value_users,new_users",
                              expected_impact=5, confidence=0.9, details={"dropped": ["high_value_users"]})
    reco.apply_optimization(drop, marketer)
    offer.refresh_from_db()
    assert offer.status == "superseded"
    assert list(c.target_segments.values_list("name", flat=True)) == ["new_users"]


def test_preview_shows_from_to_reach_and_the_impact_interval_before_apply(api, campaign, proposal):
    resp = api.get(f"/api/v1/optimize/recommendations/{proposal.pk}/preview/")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["field"], body["segment"], body["from_value"], body["to_value"]) == ("offer", "new_users", "off_0pct", "off_20pct")
    assert body["from_label"] == "0% off (off_0pct)" and body["to_label"] == "20% off (off_20pct)"
    assert (body["stale"], body["can_apply"], body["message"]) == (False, True, "")
    assert body["reach"] == Customer.objects.filter(segment__name="new_users").count()
    low, high = body["impact_interval"]["low"], body["impact_interval"]["high"]
    assert low < body["expected_impact"] < high and body["impact_interval"]["level"] == 0.9
    assert not CampaignChange.objects.exists()  # a preview writes nothing
    # After a change elsewhere the preview says apply would be refused, and why.
    configuration.change_settings(campaign, [SettingChange("offer", "off_40pct")], source="api")
    body = api.get(f"/api/v1/optimize/recommendations/{proposal.pk}/preview/").json()
    assert body["stale"] and not body["can_apply"] and "an API write" in body["message"]
    assert body["from_value"] == "off_40pct" and body["computed_against"] == "off_0pct"


def test_preview_of_an_offer_that_does_not_exist_yet_creates_nothing(api, campaign):
    opt = Opt.objects.create(campaign=campaign, recommendation_type="offer", target="new_users", current_value="0",
                             recommended_value="35", live_value="off_0pct", expected_impact=5, confidence=0.9)
    body = api.get(f"/api/v1/optimize/recommendations/{opt.pk}/preview/").json()
    assert body["to_value"] == "off_35pct" and body["impact_interval"] is None and body["interval_note"]
    assert not campaign_selectors.Offer.objects.filter(offer_id="off_35pct").exists()


def test_undo_reverts_to_the_value_before_and_is_logged(api, campaign, proposal):
    api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/apply/")
    resp = api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/undo/")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "undone"
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_0pct"
    assert log(campaign) == [
        ("offer", "new_users", "", "off_20pct", "recommendation"),
        ("offer", "new_users", "off_20pct", "", "undo"),
    ]
    undo = CampaignChange.objects.get(source="undo")
    assert undo.reverts_id == resp.json()["applied_change"] and undo.changed_by.username == "marketer"
    assert api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/undo/").status_code == 200  # idempotent
    assert len(log(campaign)) == 2
    # An undone value is not proposed again by the next run (like a dismissed one).
    jobs.run("campaign_optimizations")
    assert not Opt.objects.filter(campaign=campaign, recommendation_type="offer", status="proposed").exists()


def test_undo_is_409_when_the_value_changed_since(api, campaign, proposal, offers, marketer):
    api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/apply/")
    end_with_winner_offer(campaign, offers[40], marketer)  # clears new_users' own offer
    resp = api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/undo/")
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "stale_value" and "A/B winner" in resp.json()["error"]["message"]
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_40pct"
    proposal.refresh_from_db()
    assert proposal.status == "applied"


def test_only_an_applied_proposal_can_be_undone_and_only_by_a_marketer(api, viewer_api, proposal):
    assert viewer_api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/undo/").status_code == 403
    resp = api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/undo/")
    assert resp.status_code == 409 and "proposed" in resp.json()["error"]["message"]


def test_merchant_apply_adds_the_partner_to_the_promoted_merchants(api, campaign, marketer):
    partner, other = MerchantFactory(merchant_id="m_partner"), MerchantFactory()
    for i, customer in enumerate(Customer.objects.all()):
        merchants = [campaign.merchant, partner] if i % 2 == 0 else [other] + ([partner] if i % 4 == 1 else [])
        for rank, m in enumerate(merchants, start=1):
            UserMerchantAffinity.objects.create(customer=customer, merchant=m, rank=rank, affinity_score=0.5)
    jobs.run("campaign_optimizations")
    row = Opt.objects.get(campaign=campaign, recommendation_type="merchant", status="proposed")
    assert (row.recommended_value, row.live_value) == ("m_partner", "")
    assert api.post(f"/api/v1/optimize/recommendations/{row.pk}/apply/").status_code == 200
    assert api.get("/api/v1/campaigns/camp_1/").json()["promoted_merchants"] == ["m_partner"]
    assert log(campaign)[-1] == ("promoted_merchants", "", "", "m_partner", "recommendation")
    # Already promoted: not proposed again.
    jobs.run("campaign_optimizations")
    assert not Opt.objects.filter(campaign=campaign, recommendation_type="merchant", status="proposed").exists()


def test_a_targeting_result_that_still_loses_money_is_not_called_an_improvement():
    losing = recommend.TargetingRecommendation(
        current=["a", "b"], recommended=["a"], expected_roi_current=-0.5, expected_roi_recommended=-0.2,
        expected_impact=30.0, confidence=0.9, affected_users=10,
    )
    text = reco._targeting_rationale(losing)
    assert "still lose money" in text and "-50% -> -20%" in text and "positive expected ROI" not in text
    winning = recommend.TargetingRecommendation(
        current=["a", "b"], recommended=["a"], expected_roi_current=-0.1, expected_roi_recommended=0.3,
        expected_impact=40.0, confidence=0.9, affected_users=10,
    )
    assert "lose" not in reco._targeting_rationale(winning)


def test_the_offer_lift_interval_covers_the_planted_lift_about_as_often_as_it_says():
    """90 % intervals of the profit lift of 20 % off over 0 %, on data drawn from planted rates (50 seeds)."""
    p0, p20, value = 0.02, 0.05, 50.0
    true_lift = (p20 * value * 0.8 - p0 * value) / (p0 * value) * 100
    covered = 0
    seeds = range(50)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        c0, c20 = rng.binomial(2000, p0), rng.binomial(2000, p20)
        rec = recommend.recommend_offer(
            "s", [recommend.OfferOutcome(0, 2000, int(c0)), recommend.OfferOutcome(20, 2000, int(c20))],
            current_offer=0, order_value=value, prior_strength=1.0, seed=seed,
        )
        low, high = rec.lift_interval
        covered += low <= true_lift <= high
    assert 0.78 <= covered / len(seeds) <= 1.0


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_applies_for_one_setting_one_wins_the_other_is_refused(postgres, offers, marketer):
    """Two requests apply rival send-time proposals at once: the campaign row lock queues the second, which
    then finds its proposal superseded; never both applied, never a deadlock."""
    import threading

    from django.db import connection, transaction

    c = CampaignFactory(campaign_id="camp_race", current_offer=offers[0], send_time=dt.time(3))
    # Two open proposals for the send-time policy (e.g. one left open by an earlier run and its regeneration).
    first, second = (
        Opt.objects.create(campaign=c, recommendation_type="timing", current_value="fixed 03:00", recommended_value="personal",
                           live_value="fixed", expected_impact=impact, confidence=0.8)
        for impact in (3, 4)
    )
    outcome: list = []

    def apply_second():
        try:
            reco.apply_optimization(Opt.objects.get(pk=second.pk), marketer)
            outcome.append("applied")
        except Exception as exc:  # the refusal is what the test is about
            outcome.append(str(getattr(exc, "detail", exc)))
        finally:
            connection.close()

    with transaction.atomic():
        reco.apply_optimization(first, marketer)
        thread = threading.Thread(target=apply_second)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), "the second apply should wait for the campaign row lock"
    thread.join(30)
    assert outcome == [f"recommendation {second.pk} is superseded; only a proposed recommendation can be applied"]
    c.refresh_from_db()
    assert (c.send_time_policy, c.send_time) == ("personal", dt.time(3))
    assert [(ch.field, ch.old_value, ch.new_value) for ch in CampaignChange.objects.filter(campaign=c)] == [
        ("send_time_policy", "fixed", "personal")
    ]


# --- The timing proposal (a send-time policy switch) through the same workflow -----------------------
@pytest.fixture
def timing(campaign):
    """An open timing proposal as the job writes it: switch the fixed 03:00 campaign to personal hours."""
    return Opt.objects.create(
        campaign=campaign, recommendation_type="timing", current_value="fixed 03:00", recommended_value="personal",
        live_value="fixed", expected_impact=6.5, confidence=0.97, affected_users=40,
        details={"impact_interval": {"low": 2.1, "high": 11.0, "level": 0.9}},
    )


def test_timing_preview_apply_and_undo_go_through_the_change_log(api, campaign, timing):
    body = api.get(f"/api/v1/optimize/recommendations/{timing.pk}/preview/").json()
    assert (body["field"], body["from_value"], body["to_value"], body["can_apply"]) == ("send_time_policy", "fixed", "personal", True)
    assert body["to_label"].startswith("personal") and body["impact_interval"] == {"low": 2.1, "high": 11.0, "level": 0.9}
    assert not CampaignChange.objects.exists()

    resp = api.post(f"/api/v1/optimize/recommendations/{timing.pk}/apply/")
    assert resp.status_code == 200, resp.content
    campaign.refresh_from_db()
    assert (campaign.send_time_policy, campaign.send_time) == ("personal", dt.time(3))  # the fixed time stays
    assert log(campaign) == [("send_time_policy", "", "fixed", "personal", "recommendation")]
    assert resp.json()["applied_change"] == CampaignChange.objects.get().pk

    resp = api.post(f"/api/v1/optimize/recommendations/{timing.pk}/undo/")
    assert resp.status_code == 200 and resp.json()["status"] == "undone"
    campaign.refresh_from_db()
    assert campaign.send_time_policy == "fixed"
    assert log(campaign)[-1] == ("send_time_policy", "", "personal", "fixed", "undo")


def test_timing_apply_is_409_when_the_live_policy_changed_and_api_edits_are_logged(api, campaign, timing):
    resp = api.patch("/api/v1/campaigns/camp_1/", {"send_time_policy": "personal"}, format="json")
    assert resp.status_code == 200 and resp.json()["send_time_policy"] == "personal"
    assert log(campaign) == [("send_time_policy", "", "fixed", "personal", "api")]
    assert api.get(f"/api/v1/optimize/recommendations/{timing.pk}/preview/").json()["stale"] is True
    resp = api.post(f"/api/v1/optimize/recommendations/{timing.pk}/apply/")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "stale_value"
    message = resp.json()["error"]["message"]
    assert "send_time_policy = fixed" in message and "now personal" in message and "an API write" in message
    timing.refresh_from_db()
    assert timing.status == "proposed" and len(log(campaign)) == 1
    bad = api.patch("/api/v1/campaigns/camp_1/", {"send_time_policy": "sometimes"}, format="json")
    assert bad.status_code == 400 and "send_time_policy" in bad.json()["error"]["fields"]


def test_applying_a_timing_proposal_supersedes_the_other_open_policy_proposals(campaign, proposal, timing, marketer):
    twin = Opt.objects.create(campaign=campaign, recommendation_type="timing", current_value="fixed 03:00",
                              recommended_value="personal", live_value="fixed", expected_impact=1, confidence=0.6)
    reco.apply_optimization(timing, marketer)
    twin.refresh_from_db()
    proposal.refresh_from_db()
    assert (twin.status, proposal.status) == ("superseded", "proposed")  # the offer is another setting


def test_a_timing_row_from_before_send_time_policies_still_applies_to_the_send_time(campaign, marketer):
    legacy = Opt.objects.create(campaign=campaign, recommendation_type="timing", current_value="03:00",
                                recommended_value="14:00", expected_impact=3, confidence=0.8)  # no live_value recorded
    assert reco.setting_of(legacy) == ("send_time", "")
    reco.apply_optimization(legacy, marketer)
    campaign.refresh_from_db()
    assert (campaign.send_time, campaign.send_time_policy) == (dt.time(14), "fixed")
    assert log(campaign) == [("send_time", "", "03:00", "14:00", "recommendation")]
