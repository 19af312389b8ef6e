"""The query filters of the campaigns app's list endpoints (see ``marketing_ai.filters``)."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from campaigns.models import Campaign, CampaignChange, Customer, Merchant
from marketing_ai.filters import OneOf


class CampaignFilter(django_filters.FilterSet):
    status = OneOf(choices=Campaign.Status.choices)
    channel = OneOf(choices=Campaign.Channel.choices)
    merchant = django_filters.CharFilter(field_name="merchant__merchant_id", help_text="Merchant external id")
    segment = django_filters.CharFilter(field_name="target_segments__name", help_text="Campaigns targeting this segment")
    search = django_filters.CharFilter(method="search_filter", help_text="Substring of the name or campaign_id")

    class Meta:
        model = Campaign
        fields: list[str] = []

    def search_filter(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(campaign_id__icontains=value))


class CampaignChangeFilter(django_filters.FilterSet):
    field = OneOf(choices=CampaignChange.Field.choices)

    class Meta:
        model = CampaignChange
        fields: list[str] = []


class MerchantFilter(django_filters.FilterSet):
    category = django_filters.CharFilter()
    search = django_filters.CharFilter(method="search_filter", help_text="Substring of the name or merchant_id")

    class Meta:
        model = Merchant
        fields: list[str] = []

    def search_filter(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(merchant_id__icontains=value))


class CustomerFilter(django_filters.FilterSet):
    segment = django_filters.CharFilter(method="segment_filter", help_text="Segment name, or 'none' for customers without one")
    timezone = django_filters.CharFilter(help_text="IANA time zone, e.g. Europe/Paris")
    # A prefix search uses the unique index on customer_id; customers run into the millions.
    search = django_filters.CharFilter(field_name="customer_id", lookup_expr="startswith", help_text="Prefix of the customer id")

    class Meta:
        model = Customer
        fields: list[str] = []

    def segment_filter(self, queryset, name, value):
        return queryset.filter(segment__isnull=True) if value == "none" else queryset.filter(segment__name=value)
