"""Calibration study of the offer recommendations against the demo's planted truth, over many seeds.

    python bench/offer_calibration.py                         # 20 seeds x (demo default, 10x customers)
    python bench/offer_calibration.py --seeds 5 --sizes 2000  # a quick look

For every generator seed and size it generates the demo (``campaigns.demo.generate``: each seed plants
its own offer curves), aggregates the events per segment and offer the way the ``campaign_optimizations``
job does (sends, conversions, revenue over the job's window), and calls the job's own offer code,
``optimizer.recommend.campaign_offer_recommendations``, for every live campaign with its current offer.
Each answer is scored against the planted expected profit per click:

- a *proposal* (decided, changes the offer) is right when the recommended offer's planted profit is
  higher than the current offer's; its confidence is the posterior P(recommended beats current);
- per segment (no current offer), the recommended offer is compared with the planted best.

It prints the reliability table (confidence bins vs share right, over every (campaign, segment) whose
recommendation differs from its current offer, decided or not), the proposals by confidence, and the
share of segments whose recommended offer is the planted best. The pytest version at small sizes is
``tests/optimizer/test_offer_calibration.py``; the figures are in docs/optimizer-recommendations.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
# First, always: the script's own folder (bench/, which has an optimizer.py) must not shadow the optimizer app,
# even when ROOT is already further down the path (make bench puts it in PYTHONPATH).
sys.path.insert(0, str(ROOT))

from campaigns import demo  # noqa: E402
from optimizer import recommend  # noqa: E402

LIVE = ("active", "paused", "draft")  # the statuses the job makes proposals for
END = dt.date(2026, 6, 30)
BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0000001)
SEED = 20240605  # the job's seed (optimizer.services.recommendations.SEED)


@dataclass(frozen=True)
class Answer:
    seed: int
    customers: int
    campaign: str
    segment: str
    current: float
    recommended: float
    confidence: float
    decided: bool
    sends_needed: int | None
    beats_current: bool  # planted profit of recommended > current's
    is_best: bool  # recommended == planted best


def population_outcomes(data: demo.DemoData) -> dict[str, list[recommend.OfferOutcome]]:
    """Per segment, the sends, conversions and revenue of each offer: the job's grouped read, in pandas."""
    events = data.events[data.events["type"].isin(["notification_sent", "conversion"])]
    segment = data.customers.set_index("customer_id")["segment"].astype(str)
    value = data.offers.set_index("offer_id")["value"].astype(float)
    frame = pd.DataFrame({
        "segment": segment.reindex(events["customer_id"].astype(str)).to_numpy(),
        "offer": value.reindex(events["offer_id"].astype(str)).to_numpy(),
        "sent": (events["type"] == "notification_sent").to_numpy(),
        "converted": (events["type"] == "conversion").to_numpy(),
        "revenue": events["amount_cents"].astype("Float64").fillna(0).to_numpy(float) / 100,
    })
    grouped = frame.groupby(["segment", "offer"]).agg(sends=("sent", "sum"), conversions=("converted", "sum"), revenue=("revenue", "sum"))
    out: dict[str, list[recommend.OfferOutcome]] = {}
    for (seg, offer), row in grouped.iterrows():
        out.setdefault(seg, []).append(recommend.OfferOutcome(float(offer), int(row.sends), int(min(row.conversions, row.sends)), float(row.revenue)))
    return out


def evaluate(seed: int, customers: int, **config) -> tuple[list[Answer], dict[str, recommend.OfferRecommendation], dict]:
    """(per campaign x segment answers, per segment population answers, truth) for one generated demo."""
    data = demo.generate(demo.DemoConfig(customers=customers, seed=seed, end_date=END, **config))
    truth = data.truth
    profit = {s: {float(v): d["expected_profit_per_click"] for v, d in by.items()} for s, by in truth["offer_response"].items()}
    population = population_outcomes(data)
    answers = []
    for c in data.campaigns[data.campaigns["status"].isin(LIVE)].itertuples():
        segments = sorted(c.target_segments)
        current = {s: float(c.current_offer) for s in segments}
        for rec in recommend.campaign_offer_recommendations(population, segments, current, seed=SEED):
            s = rec.segment
            answers.append(Answer(
                seed, customers, c.campaign_id, s, rec.current_offer, rec.recommended_offer, rec.confidence, rec.decided,
                rec.sends_needed, profit[s][rec.recommended_offer] > profit[s][rec.current_offer],
                rec.recommended_offer == truth["best_offer"][s],
            ))
    per_segment = {
        rec.segment: rec
        for rec in recommend.campaign_offer_recommendations(population, sorted(population), {}, seed=SEED)
    }
    return answers, per_segment, truth


def reliability(answers: list[Answer]) -> pd.DataFrame:
    """Confidence bins vs the share right, over answers that would change the offer (decided or not)."""
    changes = [a for a in answers if a.recommended != a.current]
    frame = pd.DataFrame({"confidence": [a.confidence for a in changes], "right": [a.beats_current for a in changes]})
    if frame.empty:
        return pd.DataFrame(columns=["bin", "answers", "mean_confidence", "share_right"])
    frame["bin"] = pd.cut(frame["confidence"], BINS, right=False)
    table = frame.groupby("bin", observed=True).agg(answers=("right", "size"), mean_confidence=("confidence", "mean"), share_right=("right", "mean"))
    return table.reset_index()


def run(seeds: list[int], sizes: list[int]) -> dict:
    results = {}
    for customers in sizes:
        started = time.perf_counter()
        answers: list[Answer] = []
        segments_right, segments = 0, 0
        for seed in seeds:
            seed_answers, per_segment, truth = evaluate(seed, customers)
            answers += seed_answers
            for s, rec in per_segment.items():
                segments += 1
                segments_right += rec.recommended_offer == truth["best_offer"][s]
        proposals = [a for a in answers if a.decided and a.recommended != a.current]
        results[customers] = {
            "answers": answers,
            "proposals": proposals,
            "wrong_at_90": sum(1 for a in proposals if a.confidence >= 0.9 and not a.beats_current),
            "proposals_not_best": sum(1 for a in proposals if not a.is_best),
            "segments": segments,
            "segments_right": segments_right,
            "seconds": time.perf_counter() - started,
        }
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=20, help="generator seeds 1..N")
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="customers (demo default 2,000 and 10x)")
    args = p.parse_args()
    results = run(list(range(1, args.seeds + 1)), args.sizes)
    for customers, r in results.items():
        answers, proposals = r["answers"], r["proposals"]
        undecided = [a for a in answers if not a.decided and a.recommended != a.current]
        print(f"\n## {args.seeds} seeds x {customers:,} customers ({r['seconds']:.0f} s)")
        print(f"(campaign, segment) answers: {len(answers)}; proposals: {len(proposals)}, "
              f"right (beat the current offer): {sum(a.beats_current for a in proposals)}, "
              f"wrong at confidence >= 0.9: {r['wrong_at_90']}; proposals not the planted best: {r['proposals_not_best']}")
        needed = [a.sends_needed for a in undecided if a.sends_needed is not None]
        print(f"keep, not enough evidence: {len(undecided)} (sends needed: median {np.median(needed) if needed else float('nan'):,.0f})")
        print(f"segments whose recommended offer is the planted best: {r['segments_right']} / {r['segments']} "
              f"({r['segments_right'] / max(r['segments'], 1):.0%})")
        table = reliability(answers)
        print("\n| confidence | answers | mean confidence | share right |\n|---|---|---|---|")
        for row in table.itertuples():
            print(f"| {row.bin.left:.2f}-{min(row.bin.right, 1.0):.2f} | {row.answers} | {row.mean_confidence:.3f} | {row.share_right:.3f} |")


if __name__ == "__main__":
    main()
