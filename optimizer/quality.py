"""Model quality against the planted truth of ``seed_demo`` (used by ``manage.py model_report`` and the tests).

The truth is read only here, after training: ``optimizer.services.training`` never sees it.
Goals (issue 6):

- send time: the recommended local hour is within 1 hour (circular) of the planted preferred
  hour for >= 80 % of customers with 20 or more opens; customers with fewer than 5 opens get the
  population hour (method "fallback");
- offer: the planted best offer is the expected-profit argmax of the offer-response model for
  >= 90 % of the segments the model decides: where the posterior probability that its best offer
  beats the runner-up reaches ``recommend.DECISION_PROBABILITY`` (the rule the proposals use); the
  other segments are "not enough evidence" and reported, not judged;
- affinity: NDCG@10 on held-out later purchases >= 1.3 x the popularity baseline of the same run;
- conversion and engagement: holdout ROC AUC above the recency-frequency heuristic's (base rate shown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from campaigns.models import Customer, Merchant
from optimizer import recommend, registry
from optimizer.ml import offer_response
from optimizer.ml.metrics import circular_hour_distance
from optimizer.models import MLModel, ModelType

SEND_TIME_MIN_OPENS = 20
SEND_TIME_GOAL = 0.80
OFFER_GOAL = 0.90
AFFINITY_GOAL_RATIO = 1.3


@dataclass
class Check:
    name: str
    value: float | None
    goal: str
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)


def send_time_checks(artifact: dict[str, Any], truth: dict[str, Any]) -> list[Check]:
    from optimizer.services import send_times

    rows = send_times.compute(artifact=artifact)
    external = dict(Customer.objects.values_list("id", "customer_id"))
    rows["customer"] = rows["customer_id"].map(external)
    rows["hour"] = [t.hour for t in rows["local_send_time"]]
    rows["planted"] = rows["customer"].map(truth["preferred_hour"])
    rows = rows[rows["planted"].notna()]
    heavy = rows[rows["events_used"] >= SEND_TIME_MIN_OPENS]
    hit = float((circular_hour_distance(heavy["hour"].to_numpy(), heavy["planted"].to_numpy(int)) <= 1).mean()) if len(heavy) else None
    thin = rows[rows["events_used"] < artifact["min_events"]]
    thin_ok = bool(((thin["method"] == "fallback") & (thin["hour"] == artifact["population_hour"])).all())
    return [
        Check("send_time_hit_rate", hit, f">= {SEND_TIME_GOAL:.0%} within 1 h for customers with >= {SEND_TIME_MIN_OPENS} opens",
              hit is not None and hit >= SEND_TIME_GOAL, {"customers": int(len(heavy))}),
        Check("send_time_fallback", 1.0 if thin_ok else 0.0, f"customers with < {artifact['min_events']} opens get the population hour",
              thin_ok, {"customers": int(len(thin)), "population_hour": int(artifact["population_hour"])}),
    ]


def offer_decision(artifact: dict[str, Any], segment: str) -> recommend.OfferRecommendation:
    """The recommendation the model's posterior makes for ``segment`` with no current offer (P(best), decided)."""
    i = artifact["segments"].index(segment)
    outcomes = [
        recommend.OfferOutcome(float(v), int(n), int(c))
        for v, n, c in zip(artifact["offer_values"], artifact["sends"][i], artifact["conversions"][i], strict=True)
    ]
    return recommend.recommend_offer(
        segment, outcomes, current_offer=None, order_value=artifact["order_value"][segment],
        prior_strength=artifact.get("prior_sends", offer_response.PRIOR_SENDS),
    )


def offer_check(artifact: dict[str, Any], truth: dict[str, Any]) -> Check:
    per_segment = {}
    for segment in artifact["segments"]:
        recommended, _, _ = offer_response.best_offer(artifact, segment)
        decision = offer_decision(artifact, segment)
        planted = truth["best_offer"].get(segment)
        per_segment[segment] = {
            "recommended": recommended, "planted": planted, "enough_data": decision.decided,
            "prob_best": round(decision.confidence, 4), "sends_needed": decision.sends_needed,
        }
    judged = [s for s, d in per_segment.items() if d["enough_data"] and d["planted"] is not None]
    right = [s for s in judged if float(per_segment[s]["recommended"]) == float(per_segment[s]["planted"])]
    share = len(right) / len(judged) if judged else None
    return Check("offer_recovered", share, f">= {OFFER_GOAL:.0%} of the segments the model decides",
                 share is not None and share >= OFFER_GOAL, {"segments": per_segment, "judged": len(judged)})


def affinity_checks(record: MLModel, artifact: dict[str, Any], truth: dict[str, Any]) -> list[Check]:
    from optimizer.services import affinity as affinity_job

    m = record.metrics
    ratio = m.get("ndcg_ratio_vs_popularity")
    checks = [Check("affinity_ndcg_vs_popularity", ratio, f"NDCG@10 >= {AFFINITY_GOAL_RATIO}x popularity",
                    ratio is not None and ratio >= AFFINITY_GOAL_RATIO,
                    {"ndcg_at_10": m.get("ndcg_at_10"), "popularity_ndcg_at_10": m.get("popularity_ndcg_at_10"),
                     "holdout_customers": m.get("holdout_customers")})]
    # Extra (informative): overlap of the job's top 10 with the planted top 10.
    rows = affinity_job.compute(artifact=artifact)
    if len(rows) and truth.get("merchant_preference"):
        customers = dict(Customer.objects.values_list("id", "customer_id"))
        merchants = dict(Merchant.objects.values_list("id", "merchant_id"))
        rows["c"] = rows["customer_id"].map(customers)
        rows["m"] = rows["merchant_id"].map(merchants)
        planted = truth["merchant_preference"]
        overlap = [len(set(g["m"]) & set(planted.get(c, []))) / max(len(planted.get(c, [])), 1) for c, g in rows.groupby("c") if c in planted]
        checks.append(Check("affinity_planted_top10_overlap", float(np.mean(overlap)) if overlap else None, "informative", True))
    return checks


def propensity_check(record: MLModel) -> Check:
    m = record.metrics
    auc, heuristic = m.get("roc_auc"), m.get("heuristic_roc_auc")
    return Check(f"{record.model_type}_auc", auc, "holdout ROC AUC > recency-frequency heuristic",
                 auc is not None and heuristic is not None and auc > heuristic,
                 {"heuristic_roc_auc": heuristic, "base_rate": m.get("base_rate"), "algorithm": record.algorithm})


def report(models: dict[str, MLModel], truth: dict[str, Any]) -> list[Check]:
    """Every quality check for the given model versions (e.g. those ``train_all`` just registered)."""
    checks: list[Check] = []
    if ModelType.SEND_TIME in models:
        checks += send_time_checks(registry.load(models[ModelType.SEND_TIME]), truth)
    if ModelType.OFFER_RESPONSE in models:
        checks.append(offer_check(registry.load(models[ModelType.OFFER_RESPONSE]), truth))
    if ModelType.AFFINITY in models:
        checks += affinity_checks(models[ModelType.AFFINITY], registry.load(models[ModelType.AFFINITY]), truth)
    for model_type in (ModelType.CONVERSION, ModelType.ENGAGEMENT):
        if model_type in models:
            checks.append(propensity_check(models[model_type]))
    return checks
