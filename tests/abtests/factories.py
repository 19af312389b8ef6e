"""Factories for A/B tests. A test builds only what it needs; these create running 2-arm tests by default."""

from __future__ import annotations

import factory
from django.utils import timezone

from abtests.models import ABTest, ABTestVariant
from tests.factories import CampaignFactory


class ABTestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ABTest
        skip_postgeneration_save = True  # the variants hook writes child rows, not the test

    campaign = factory.SubFactory(CampaignFactory)
    test_name = factory.Sequence(lambda n: f"Test {n}")
    status = ABTest.Status.RUNNING
    sample_size_target = 1000
    confidence_level = 0.95
    started_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def variants(self, create, extracted, **kwargs):
        """``variants=[("A", 0.5), ("B", 0.5)]`` (the default)."""
        if not create:
            return
        for i, (name, weight) in enumerate(extracted or [("A", 0.5), ("B", 0.5)]):
            ABTestVariant.objects.create(test=self, position=i, name=name, weight=weight)


def populate(test: ABTest, users: list[int], conversions: list[int], revenue: list[list[float]] | None = None,
             assigned_at=None, prefix: str | None = None) -> None:
    """Give each variant ``users[i]`` assigned customers, the first ``conversions[i]`` of whom convert
    once in the test's campaign after assignment (amount ``revenue[i][j]`` if given, else 10.00)."""
    import datetime as dt
    from decimal import Decimal

    from abtests.models import ABTestAssignment
    from campaigns.models import Customer, Event

    assigned_at = assigned_at or timezone.now() - dt.timedelta(days=1)
    prefix = prefix or f"{test.test_id}_"
    variants = test.ordered_variants
    ids = [f"{prefix}{i}_{j}" for i, n in enumerate(users) for j in range(n)]
    Customer.objects.bulk_create([Customer(customer_id=c) for c in ids], batch_size=5000)
    pk = dict(Customer.objects.filter(customer_id__startswith=prefix).values_list("customer_id", "pk"))
    ABTestAssignment.objects.bulk_create(
        [ABTestAssignment(test=test, customer_id=pk[f"{prefix}{i}_{j}"], variant=variants[i], assigned_at=assigned_at)
         for i, n in enumerate(users) for j in range(n)], batch_size=5000)
    events = []
    for i, c in enumerate(conversions):
        for j in range(c):
            amount = Decimal(str(round(revenue[i][j], 2))) if revenue else Decimal("10.00")
            events.append(Event(event_id=f"{prefix}conv_{i}_{j}", type=Event.Type.CONVERSION,
                                occurred_at=assigned_at + dt.timedelta(hours=1), customer_id=pk[f"{prefix}{i}_{j}"],
                                campaign_id=test.campaign_id, amount=amount))
    Event.objects.bulk_create(events, batch_size=5000)
    rebuild_if_kept(test)


def rebuild_if_kept(test: ABTest) -> None:
    """A test started through the service keeps its analysis rollup; rows bulk-written past the services'
    hooks (as here) need a rebuild, as after the demo loader."""
    from abtests import rollup

    if rollup.is_kept(test):
        rollup.rebuild(test=ABTest.objects.get(pk=test.pk))
