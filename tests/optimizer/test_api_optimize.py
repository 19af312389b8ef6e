"""The optimisation API: the seed's paths and fields, v1 viewsets, roles, 404s, 409s and fallbacks."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns import selectors as campaign_selectors
from campaigns.models import Event
from optimizer.models import CampaignOptimization, MLModel, UserMerchantAffinity, UserSendTime
from tests.factories import CampaignFactory, CustomerFactory, MerchantFactory, OfferFactory, SegmentFactory

pytestmark = pytest.mark.django_db
Opt = CampaignOptimization


@pytest.fixture
def campaign():
    c = CampaignFactory(campaign_id="camp_1", current_offer=OfferFactory(offer_id="off_10pct", value=Decimal(10)), send_time=dt.time(8))
    c.target_segments.set([SegmentFactory(name="new_users"), SegmentFactory(name="returning_users")])
    return c


@pytest.fixture
def proposal(campaign):
    return Opt.objects.create(
        campaign=campaign, recommendation_type="offer", target="new_users", current_value="10", recommended_value="25",
        expected_impact=18.5, confidence=0.93, affected_users=40, priority=1,
    )


def paths(route: str) -> list[str]:
    return [route, route + "/"]


@pytest.mark.parametrize("slash", ["", "/"])
def test_seed_offer_path_lists_each_target_segment_with_the_seed_fields(api, campaign, proposal, slash):
    CustomerFactory.create_batch(3, segment=SegmentFactory(name="returning_users"))
    resp = api.get(f"/api/optimize/offer/camp_1{slash}")
    assert resp.status_code == 200
    rows = {r["segment"]: r for r in resp.json()}
    assert set(rows) == {"new_users", "returning_users"}
    assert {k: rows["new_users"][k] for k in ("current_offer", "recommended_offer", "expected_lift", "affected_users", "confidence")} == {
        "current_offer": 10.0, "recommended_offer": 25.0, "expected_lift": 18.5, "affected_users": 40, "confidence": 0.93
    }
    # No proposal for returning users: keep the current offer.
    keep = rows["returning_users"]
    assert (keep["current_offer"], keep["recommended_offer"], keep["expected_lift"], keep["status"]) == (10.0, 10.0, 0.0, "keep")
    assert keep["affected_users"] == 3
    assert (keep["decided"], keep["sends_needed"]) == (False, None) and "no sends" in keep["reason"]
    assert (rows["new_users"]["decided"], rows["new_users"]["sends_needed"]) == (True, 0)


def test_a_keep_the_data_cannot_decide_says_so_and_how_many_sends_would_decide(api, campaign):
    """10 % vs 20 % off for returning users on 400 sends each: a better-looking offer, but no decision."""
    from optimizer import recommend
    from tests.optimizer.test_recommendations_service import add_outcomes

    twenty = OfferFactory(offer_id="off_20pct", value=Decimal(20))
    add_outcomes(campaign, "returning_users", campaign.current_offer, sends=400, conversions=20, order_value=50.0)
    add_outcomes(campaign, "returning_users", twenty, sends=400, conversions=26, order_value=50.0)
    keep = {r["segment"]: r for r in api.get("/api/optimize/offer/camp_1").json()}["returning_users"]
    assert keep["status"] == "keep" and keep["decided"] is False
    assert "not enough evidence" in keep["reason"]
    # The same number straight from the posterior: profit 20 % vs 10 % (order value cancels out).
    rec = recommend.recommend_offer("returning_users", [recommend.OfferOutcome(10, 400, 20, 20 * 45.0), recommend.OfferOutcome(20, 400, 26, 26 * 40.0)],
                                    current_offer=10, order_value=50.0, prior_strength=recommend.POPULATION_PRIOR_SENDS,
                                    seed=recommend.segment_seed("returning_users", 20240605))
    assert keep["sends_needed"] == rec.sends_needed > 0


@pytest.mark.parametrize("slash", ["", "/"])
def test_seed_send_time_path_answers_the_stored_send_time(api, slash):
    customer = CustomerFactory(customer_id="user_42", timezone="Asia/Tokyo")
    UserSendTime.objects.create(customer=customer, local_send_time=dt.time(14, 30), utc_send_time=dt.time(5, 30),
                                expected_improvement=15.5, confidence=0.7, events_used=34, method="personal")
    body = api.get(f"/api/optimize/send-time/user_42{slash}").json()
    assert body["optimal_send_time"] == "14:30"
    assert body["expected_improvement"] == 15.5
    assert (body["method"], body["events_used"], body["timezone"], body["optimal_send_time_utc"]) == ("personal", 34, "Asia/Tokyo", "05:30")


def test_customer_without_a_send_time_gets_the_population_hour_marked_fallback(api):
    for _ in range(3):
        UserSendTime.objects.create(customer=CustomerFactory(), local_send_time=dt.time(20), utc_send_time=dt.time(20),
                                    expected_improvement=10, events_used=30, method="personal")
    UserSendTime.objects.create(customer=CustomerFactory(), local_send_time=dt.time(9), utc_send_time=dt.time(9),
                                expected_improvement=10, events_used=30, method="personal")
    CustomerFactory(customer_id="user_new", timezone="America/New_York")
    body = api.get("/api/optimize/send-time/user_new").json()
    assert (body["optimal_send_time"], body["method"], body["events_used"]) == ("20:00", "fallback", 0)
    local = dt.datetime.combine(timezone.now().date(), dt.time(20), tzinfo=zoneinfo.ZoneInfo("America/New_York"))
    assert body["optimal_send_time_utc"] == local.astimezone(dt.UTC).strftime("%H:%M")


@pytest.mark.parametrize("slash", ["", "/"])
def test_seed_affinity_path_lists_top_merchants_best_first(api, slash):
    customer = CustomerFactory(customer_id="user_7")
    pizza, sushi = MerchantFactory(merchant_id="m_1", name="Pizza Place"), MerchantFactory(merchant_id="m_2", name="Sushi Bar")
    UserMerchantAffinity.objects.create(customer=customer, merchant=sushi, rank=2, affinity_score=0.4, engagement_level="medium",
                                        avg_purchase_value=Decimal("31.50"), confidence=0.5)
    UserMerchantAffinity.objects.create(customer=customer, merchant=pizza, rank=1, affinity_score=0.92, engagement_level="high",
                                        avg_purchase_value=Decimal("22.00"), confidence=0.8)
    rows = api.get(f"/api/optimize/affinity/user_7{slash}").json()
    assert [(r["merchant_id"], r["merchant_name"], r["affinity_score"]) for r in rows] == [("m_1", "Pizza Place", 0.92), ("m_2", "Sushi Bar", 0.4)]
    assert (rows[0]["engagement_level"], rows[0]["avg_purchase_value"], rows[0]["confidence"], rows[0]["method"]) == ("high", "22.00", 0.8, "personal")


def test_customer_without_affinities_gets_popular_merchants_marked_fallback(api):
    popular, rare = MerchantFactory(merchant_id="m_pop"), MerchantFactory(merchant_id="m_rare")
    for _ in range(3):
        UserMerchantAffinity.objects.create(customer=CustomerFactory(), merchant=popular, affinity_score=0.5)
    UserMerchantAffinity.objects.create(customer=CustomerFactory(), merchant=rare, affinity_score=0.9)
    CustomerFactory(customer_id="user_cold")
    rows = api.get("/api/optimize/affinity/user_cold").json()
    assert [r["merchant_id"] for r in rows] == ["m_pop", "m_rare"]
    assert {r["method"] for r in rows} == {"fallback"}
    assert rows[0]["affinity_score"] == pytest.approx(3 / 4)  # share of customers who favour it


@pytest.mark.parametrize("slash", ["", "/"])
def test_seed_recommendations_path_lists_live_proposals_best_first(api, campaign, proposal, slash):
    Opt.objects.create(campaign=campaign, recommendation_type="timing", current_value="08:00", recommended_value="19:00",
                       expected_impact=5, confidence=0.8, priority=2)
    Opt.objects.create(campaign=campaign, recommendation_type="offer", target="new_users", recommended_value="5",
                       expected_impact=1, confidence=0.5, status="superseded")
    rows = api.get(f"/api/optimize/recommendations/camp_1{slash}").json()
    assert [(r["recommendation_type"], r["priority"]) for r in rows] == [("offer", 1), ("timing", 2)]
    assert {"optimization_id", "campaign_id", "current_value", "recommended_value", "expected_impact", "confidence",
            "affected_users", "status", "applied_by", "applied_at", "created_at"} <= set(rows[0])


@pytest.mark.parametrize("slash", ["", "/"])
def test_seed_segments_path_ranks_segments_by_expected_roi(api, campaign, slash):
    now = timezone.now() - dt.timedelta(days=1)
    good, poor = SegmentFactory(name="returning_users"), SegmentFactory(name="high_value_users")
    a, b = CustomerFactory(segment=good), CustomerFactory(segment=poor)
    n = 0
    for customer, sends, conversions in ((a, 200, 30), (b, 200, 2)):
        for _ in range(sends):
            Event.objects.create(event_id=f"s{n}", type="notification_sent", occurred_at=now, customer=customer, campaign=campaign)
            n += 1
        for _ in range(conversions):
            Event.objects.create(event_id=f"s{n}", type="conversion", occurred_at=now, customer=customer, campaign=campaign, amount=Decimal("40"))
            n += 1
    Event.objects.create(event_id="spend", type="spend", occurred_at=now, campaign=campaign, amount=Decimal("400"))
    rows = api.get(f"/api/optimize/segments/camp_1{slash}").json()
    assert [r["segment"] for r in rows[:2]] == ["returning_users", "high_value_users"]
    top = rows[0]
    assert top["users_count"] == 1 and top["rank"] == 1
    assert top["expected_roi"] == pytest.approx(30 * 40 / 200 - 1, rel=0.1)  # 200 of 400 cost, 1200 revenue
    assert top["expected_conversion_rate"] == pytest.approx(30 / 200, rel=0.1)


@pytest.mark.parametrize(
    "url,message",
    [
        ("/api/optimize/offer/nope", "No campaign with campaign_id 'nope'."),
        ("/api/optimize/segments/nope", "No campaign with campaign_id 'nope'."),
        ("/api/optimize/recommendations/nope", "No campaign with campaign_id 'nope'."),
        ("/api/optimize/send-time/ghost", "No customer with customer_id 'ghost'."),
        ("/api/optimize/affinity/ghost", "No customer with customer_id 'ghost'."),
        ("/api/v1/optimize/send-times/ghost/", "No customer with customer_id 'ghost'."),
    ],
)
def test_unknown_ids_are_404_with_a_message(api, url, message):
    resp = api.get(url)
    assert resp.status_code == 404
    assert resp.json()["error"] == {"code": "not_found", "message": message, "fields": {}}


def test_marketer_applies_a_recommendation_through_the_api(api, campaign, proposal):
    resp = api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/apply/")
    assert resp.status_code == 200
    assert (resp.json()["status"], resp.json()["applied_by"]) == ("applied", "marketer")
    offers = campaign_selectors.offers_by_segment(campaign, ["new_users", "returning_users"])
    assert (offers["new_users"].value, offers["returning_users"].value) == (Decimal(25), Decimal(10))
    assert api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/apply/").status_code == 200  # idempotent


def test_viewer_may_read_but_not_apply(viewer_api, anon_api, campaign, proposal):
    assert viewer_api.get("/api/v1/optimize/recommendations/").status_code == 200
    resp = viewer_api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/apply/")
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "permission_denied"
    assert viewer_api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/dismiss/").status_code == 403
    assert anon_api.get("/api/v1/optimize/recommendations/").status_code in (401, 403)
    proposal.refresh_from_db()
    assert proposal.status == "proposed"


def test_applying_a_dismissed_recommendation_is_409(api, campaign, proposal):
    assert api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/dismiss").json()["status"] == "dismissed"
    resp = api.post(f"/api/v1/optimize/recommendations/{proposal.pk}/apply/")
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "conflict"
    assert "dismissed" in resp.json()["error"]["message"]
    campaign.refresh_from_db()
    assert campaign.current_offer.value == Decimal(10)


def test_recommendation_list_filters_and_rejects_unknown_filter_values(api, campaign, proposal):
    other = Opt.objects.create(campaign=CampaignFactory(), recommendation_type="timing", recommended_value="09:00", expected_impact=1, confidence=0.5)
    ids = lambda q: [r["optimization_id"] for r in api.get(f"/api/v1/optimize/recommendations/{q}").json()["results"]]  # noqa: E731
    assert ids("?type=offer") == [proposal.pk]
    assert ids("?campaign_id=camp_1") == [proposal.pk]
    assert ids("?type=timing&status=proposed") == [other.pk]
    assert ids("?target=new_users") == [proposal.pk]
    resp = api.get("/api/v1/optimize/recommendations/?type=price")
    assert resp.status_code == 400
    assert "type" in resp.json()["error"]["fields"]


def test_model_registry_is_listed_read_only(api):
    MLModel.objects.create(model_type="conversion", version=1, accuracy=0.71, primary_metric="roc_auc", is_active=False)
    MLModel.objects.create(model_type="conversion", version=2, accuracy=0.74, primary_metric="roc_auc", is_active=True)
    rows = api.get("/api/v1/optimize/models/?model_type=conversion").json()["results"]
    assert [(r["version"], r["is_active"], r["accuracy"]) for r in rows] == [(2, True, 0.74), (1, False, 0.71)]
    assert [r["version"] for r in api.get("/api/v1/optimize/models/?active=true").json()["results"]] == [2]
    assert api.post("/api/v1/optimize/models/", {"model_type": "conversion"}).status_code == 405


def test_v1_send_time_and_affinity_lists(api):
    customer = CustomerFactory(customer_id="user_9")
    UserSendTime.objects.create(customer=customer, local_send_time=dt.time(7), utc_send_time=dt.time(7), expected_improvement=3,
                                events_used=2, method="fallback")
    UserMerchantAffinity.objects.create(customer=customer, merchant=MerchantFactory(merchant_id="m_9"), affinity_score=0.3)
    sends = api.get("/api/v1/optimize/send-times/?method=fallback").json()["results"]
    assert [(r["customer_id"], r["optimal_send_time"]) for r in sends] == [("user_9", "07:00")]
    assert api.get("/api/v1/optimize/send-times/user_9/").json()["method"] == "fallback"
    aff = api.get("/api/v1/optimize/affinities/?customer_id=user_9").json()["results"]
    assert [r["merchant_id"] for r in aff] == ["m_9"]
    assert api.get("/api/v1/optimize/campaigns/nope/offer").status_code == 404


def test_admin_actions_apply_and_refuse_through_the_same_services(client, make_user, campaign, proposal):
    boss = make_user("boss", "marketer", is_staff=True, is_superuser=True)
    client.force_login(boss)
    stale = Opt.objects.create(campaign=campaign, recommendation_type="timing", recommended_value="19:00",
                               expected_impact=2, confidence=0.6, status="superseded")
    url = "/admin/optimizer/campaignoptimization/"
    resp = client.post(url, {"action": "apply_selected", "_selected_action": [proposal.pk, stale.pk]}, follow=True)
    assert resp.status_code == 200
    text = " ".join(str(m) for m in resp.context["messages"])
    assert "1 recommendation(s) applied" in text and "superseded" in text
    campaign.refresh_from_db()
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_25pct" and campaign.send_time == dt.time(8)
    proposal.refresh_from_db()
    assert (proposal.status, proposal.applied_by) == ("applied", boss)


def test_page_buttons_are_for_marketers_only(client, viewer, marketer, campaign, proposal):
    client.force_login(viewer)
    page = client.get("/optimize/")
    assert page.status_code == 200 and f'data-recommendation="{proposal.pk}"' in page.content.decode()
    assert "data-apply" not in page.content.decode()
    assert client.post(f"/optimize/recommendations/{proposal.pk}/apply").status_code == 403
    proposal.refresh_from_db()
    assert proposal.status == "proposed"
    client.force_login(marketer)
    assert "data-apply" in client.get("/optimize/").content.decode()
    resp = client.post(f"/optimize/recommendations/{proposal.pk}/dismiss", {"next": "https://evil.example/"})
    assert resp.status_code == 302 and resp.url == "/optimize/"  # never redirects off-site
    proposal.refresh_from_db()
    assert proposal.status == "dismissed"
    assert client.get("/optimize/").status_code == 200

    from django.test import Client

    assert Client().get("/optimize/").status_code == 302  # login required
