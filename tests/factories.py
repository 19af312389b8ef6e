"""factory_boy factories for the shared domain. Apps add their own factories beside these."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from campaigns.models import Campaign, Customer, Event, Merchant, Offer, Segment


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment
        django_get_or_create = ("name",)

    name = Segment.NEW_USERS


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    merchant_id = factory.Sequence(lambda n: f"m_{n}")
    name = factory.Sequence(lambda n: f"Merchant {n}")
    category = "food"


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    customer_id = factory.Sequence(lambda n: f"user_{n}")
    signup_date = dt.date(2025, 1, 1)
    timezone = "UTC"
    segment = factory.SubFactory(SegmentFactory)


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offer
        django_get_or_create = ("offer_id",)

    offer_id = factory.LazyAttribute(lambda o: f"off_{int(o.value)}pct")
    kind = Offer.Kind.PERCENT
    value = Decimal("25")


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    campaign_id = factory.Sequence(lambda n: f"camp_{n}")
    name = factory.Sequence(lambda n: f"Campaign {n}")
    merchant = factory.SubFactory(MerchantFactory)
    status = Campaign.Status.ACTIVE
    budget = Decimal("1000.00")


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    event_id = factory.Sequence(lambda n: f"evt_{n}")
    type = Event.Type.VIEW
    occurred_at = factory.LazyFunction(timezone.now)
    customer = factory.SubFactory(CustomerFactory)
    campaign = factory.SubFactory(CampaignFactory)
