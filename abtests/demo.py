"""Demo A/B tests with a planted truth, called by ``seed_demo`` (``campaigns.demo_load``) as ``plant(ctx)``.

Each planted test runs on its own demo campaign (``demo_camp_ab_<n>``), so the base demo's conversions
do not dilute the planted effect. Customers are assigned with the real hashing (``assignment.variant_index_for``
with a seed derived from the demo seed), and each assigned customer converts at most once, after their
assignment, with probability ``baseline`` (control) or ``baseline x (1 + true_lift)`` (treatment).
Conversions go to merchants drawn from the demo's planted preferences and carry no offer, so the
optimizer's planted truths are untouched. Completed tests are ended through ``services.abtest_end``.

Truth written under ``ab_tests``: ``{test name: {"test_id", "true_lift", "baseline", "status",
"channel_share", "channel_lift"}}``; ``true_lift`` is the relative lift of variant B's conversion rate
over A's (0 for A/A tests).

Channels: every event carries the channel it came through (email, push, sms). The control's conversions
split by ``CHANNEL_SHARE``; in the treatment, converting through channel c has the relative lift
``channel_lift[c]`` (planted so that the shares weighted by 1 + lift average to 1 + ``true_lift``), so the
breakdown by channel has a planted truth too: per assigned user, the rate of converting through c is
``baseline x share[c]`` in A and ``baseline x share[c] x (1 + channel_lift[c])`` in B. The channels are drawn
from their own random stream, so adding them changed none of the other planted draws.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from abtests import assignment, rollup, services, stats
from abtests.models import ABTest, ABTestAssignment
from campaigns.models import Campaign, Event

MAX_USERS_PER_TEST = 20_000  # keeps the plant a few seconds even for a 10-million-event demo
CHANNELS = ("email", "push", "sms")
CHANNEL_SHARE = (0.5, 0.3, 0.2)  # of the control's conversions (and of every arm's views)


@dataclass(frozen=True)
class PlantedTest:
    name: str
    hypothesis: str
    true_lift: float
    baseline: float
    completed: bool
    share_of_customers: float  # of the demo's customers assigned to this test
    planned_mde: float  # the relative lift the sample size target is planned for
    offers: tuple[str | None, str | None] = (None, None)  # offer suffix per variant (apply-winner config)
    send_times: tuple[dt.time | None, dt.time | None] = (None, None)
    sequential: bool = False
    # Relative lift of converting through each channel of CHANNELS (None: true_lift in every channel).
    channel_lift: tuple[float, float, float] | None = None

    @property
    def lift_by_channel(self) -> tuple[float, ...]:
        return self.channel_lift if self.channel_lift is not None else (self.true_lift,) * len(CHANNELS)


PLANTED = (
    PlantedTest("Demo: 20% off beats 10% off", "A bigger discount lifts conversion by about 30%.",
                true_lift=0.30, baseline=0.20, completed=True, share_of_customers=1.0, planned_mde=0.30,
                offers=("off_10pct", "off_20pct"), channel_lift=(0.50, 0.20, -0.05)),
    PlantedTest("Demo: A/A check", "Two identical arms: the test must not declare a winner.",
                true_lift=0.0, baseline=0.20, completed=True, share_of_customers=1.0, planned_mde=0.30),
    PlantedTest("Demo: evening send time", "Sending at 18:00 UTC lifts conversion by about 15%.",
                true_lift=0.15, baseline=0.25, completed=False, share_of_customers=0.6, planned_mde=0.15,
                send_times=(dt.time(9, 0), dt.time(18, 0)), channel_lift=(0.0, 0.40, 0.15)),
    PlantedTest("Demo: new push copy (A/A, sequential)", "Copy change with no real effect; watched daily.",
                true_lift=0.0, baseline=0.15, completed=False, share_of_customers=0.5, planned_mde=0.20,
                sequential=True),
)


def plant(ctx) -> dict:
    """Create the planted tests, their assignments and conversions; return the truth under ``ab_tests``."""
    truth: dict[str, dict] = {}
    prefix = ctx.id_prefix
    customers = ctx.data.customers["customer_id"].astype(str).to_numpy()
    merchants = ctx.data.merchants["merchant_id"].astype(str).to_numpy()
    now = timezone.now()
    window_start = dt.datetime.combine(ctx.start, dt.time(0), tzinfo=dt.UTC)
    window_end = min(dt.datetime.combine(ctx.end, dt.time(23, 59), tzinfo=dt.UTC), now - dt.timedelta(minutes=5))
    days = max((window_end - window_start).days, 2)
    event_n = 0
    for k, spec in enumerate(PLANTED):
        rng = np.random.default_rng([ctx.seed, 5, k])
        if spec.completed:
            start = window_start + dt.timedelta(days=min(2, days // 10))
            end = min(start + dt.timedelta(days=max(1, min(21, days // 2))), window_end)
        else:
            start = max(window_start, window_end - dt.timedelta(days=min(14, days)))
            end = window_end
        campaign = _campaign(ctx, prefix, k, spec, start, end, merchants)
        n_users = min(int(len(customers) * spec.share_of_customers), MAX_USERS_PER_TEST)
        chosen = np.sort(rng.choice(len(customers), size=n_users, replace=False))
        per_arm = stats.sample_size(spec.baseline, spec.planned_mde)
        target = 2 * per_arm if spec.completed else max(2 * per_arm, int(n_users * 1.5))
        test = services.abtest_create(
            campaign_id=campaign.campaign_id,
            test_name=spec.name,
            hypothesis=spec.hypothesis,
            variants=[services.VariantSpec(name=name, weight=0.5,
                                           offer_id=f"{prefix}{offer}" if offer else None, send_time=send_time)
                      for name, offer, send_time in zip(("A", "B"), spec.offers, spec.send_times, strict=True)],
            sample_size_target=target,
            sequential=spec.sequential,
            hashing_seed=f"{prefix}ab_{ctx.seed}_{k}",
        )
        services.abtest_start(test=test)
        # Back-dated past save(), so the A/B answers' cache version (abtests/answers.py) is moved here too.
        ABTest.objects.filter(pk=test.pk).update(started_at=start, data_version=F("data_version") + 1)
        test.refresh_from_db()
        event_n = _assign_and_convert(ctx, test, spec, customers[chosen], chosen, start, end, rng, event_n)
        rollup.rebuild(test=test)  # the rows above were bulk-written, past the services' hooks
        if spec.completed:
            services.abtest_end(test=test)
            ABTest.objects.filter(pk=test.pk).update(ended_at=end, data_version=F("data_version") + 1)
            test.refresh_from_db()
            rollup.rebuild(test=test)
        else:
            services.abtest_analyze(test=test)
        truth[spec.name] = {"test_id": test.test_id, "true_lift": spec.true_lift, "baseline": spec.baseline,
                            "status": "completed" if spec.completed else "running",
                            "channel_share": dict(zip(CHANNELS, CHANNEL_SHARE, strict=True)),
                            "channel_lift": dict(zip(CHANNELS, spec.lift_by_channel, strict=True))}
    return {"ab_tests": truth}


def _campaign(ctx, prefix: str, k: int, spec: PlantedTest, start, end, merchants) -> Campaign:
    merchant_id = ctx.merchant_pk[merchants[k % len(merchants)]]
    offer_pk = ctx.offer_pk.get(f"{prefix}{spec.offers[0]}") if spec.offers[0] else None
    return Campaign.objects.create(
        campaign_id=f"{prefix}camp_ab_{k}",
        name=f"{spec.name.removeprefix('Demo: ')} (A/B demo)",
        merchant_id=merchant_id,
        status=Campaign.Status.COMPLETED if spec.completed else Campaign.Status.ACTIVE,
        start_date=start.date(),
        end_date=end.date(),
        budget=Decimal("0"),
        current_offer_id=offer_pk,
        send_time=spec.send_times[0],
    )


def _assign_and_convert(ctx, test: ABTest, spec: PlantedTest, ids, idx, start, end, rng, event_n: int) -> int:
    variants = test.ordered_variants
    weights = [v.weight for v in variants]
    arm = np.fromiter((assignment.variant_index_for(test.hashing_seed, c, weights) for c in ids), dtype=np.int64,
                      count=len(ids))
    span = (end - start).total_seconds()
    assigned_offset = rng.uniform(0, 0.7 * span, len(ids))
    assigned_at = [start + dt.timedelta(seconds=float(s)) for s in assigned_offset]
    rows = [ABTestAssignment(test=test, customer_id=ctx.customer_pk[c], variant=variants[a], assigned_at=t)
            for c, a, t in zip(ids, arm, assigned_at, strict=True)]
    with transaction.atomic():
        ABTestAssignment.objects.bulk_create(rows, batch_size=5000)

    rate = np.where(arm == 0, spec.baseline, spec.baseline * (1 + spec.true_lift))
    converts = rng.random(len(ids)) < rate
    # Convert between 10 minutes and 5 days after assignment, always inside the test window.
    delay = rng.uniform(600, 5 * 86400, len(ids))
    when = np.minimum(assigned_offset + delay, span - 60)
    view_channel, conversion_channel = _channels(ctx, test, spec, arm)
    merchant_idx = ctx.data.sample_merchants(np.asarray(idx)[converts], rng)
    merchants = ctx.data.merchants["merchant_id"].astype(str).to_numpy()[merchant_idx]
    cents = np.round(rng.lognormal(np.log(4000), 0.5, converts.sum())).astype(np.int64)
    # Every assigned customer saw their variant once, so the campaign's analytics show views too.
    events = [
        Event(
            event_id=f"{ctx.id_prefix}ab_{ctx.seed}_{event_n + k}",
            type=Event.Type.VIEW,
            occurred_at=t + dt.timedelta(seconds=1),
            received_at=t + dt.timedelta(seconds=30),
            customer_id=ctx.customer_pk[c],
            campaign_id=test.campaign_id,
            variant=variants[a].name,
            channel=view_channel[k],
        )
        for k, (c, a, t) in enumerate(zip(ids, arm, assigned_at, strict=True))
    ]
    event_n += len(events)
    for j, i in enumerate(np.flatnonzero(converts)):
        events.append(Event(
            event_id=f"{ctx.id_prefix}ab_{ctx.seed}_{event_n}",
            type=Event.Type.CONVERSION,
            occurred_at=start + dt.timedelta(seconds=float(when[i])),
            received_at=start + dt.timedelta(seconds=float(when[i]) + 40),
            customer_id=ctx.customer_pk[ids[i]],
            campaign_id=test.campaign_id,
            merchant_id=ctx.merchant_pk[merchants[j]],
            variant=variants[arm[i]].name,
            amount=Decimal(int(cents[j])).scaleb(-2),
            channel=conversion_channel[i],
        ))
        event_n += 1
    with transaction.atomic():
        Event.objects.bulk_create(events, batch_size=5000)
    return event_n


def _channels(ctx, test: ABTest, spec: PlantedTest, arm: np.ndarray) -> tuple[list[str], list[str]]:
    """Each assigned customer's view channel and, were they to convert, their conversion's channel (see the
    module's docstring), from a stream of their own."""
    rng = np.random.default_rng([ctx.seed, 6, PLANTED.index(spec)])
    share = np.array(CHANNEL_SHARE)
    treated = share * (1.0 + np.array(spec.lift_by_channel))
    treated /= treated.sum()
    names = np.array(CHANNELS)
    view = names[rng.choice(len(CHANNELS), size=len(arm), p=share)]
    conversion = np.where(arm == 0, rng.choice(len(CHANNELS), size=len(arm), p=share),
                          rng.choice(len(CHANNELS), size=len(arm), p=treated))
    return view.tolist(), names[conversion].tolist()
