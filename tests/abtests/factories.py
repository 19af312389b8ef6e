"""Factories for A/B tests. A test builds only what it needs; these create running 2-arm tests by default."""

from __future__ import annotations

import factory
from django.utils import timezone

from abtests.models import ABTest, ABTestVariant
from tests.factories import CampaignFactory


class ABTestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ABTest

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
