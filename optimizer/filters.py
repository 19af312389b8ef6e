"""The query filters of the optimiser's list endpoints (see ``marketing_ai.filters``)."""

from __future__ import annotations

import django_filters

from marketing_ai.filters import OneOf, TrueOnly
from optimizer.models import CampaignOptimization, MLModel, ModelType, UserMerchantAffinity, UserSendTime


class OptimizationFilter(django_filters.FilterSet):
    campaign_id = django_filters.CharFilter(field_name="campaign__campaign_id")
    type = OneOf(field_name="recommendation_type", choices=CampaignOptimization.Type.choices)
    status = OneOf(choices=CampaignOptimization.Status.choices)
    target = django_filters.CharFilter(help_text="e.g. a segment name for offer proposals")

    class Meta:
        model = CampaignOptimization
        fields: list[str] = []


class SendTimeFilter(django_filters.FilterSet):
    method = OneOf(choices=UserSendTime.Method.choices)

    class Meta:
        model = UserSendTime
        fields: list[str] = []


class AffinityFilter(django_filters.FilterSet):
    customer_id = django_filters.CharFilter(field_name="customer__customer_id")

    class Meta:
        model = UserMerchantAffinity
        fields: list[str] = []


class ModelFilter(django_filters.FilterSet):
    model_type = OneOf(choices=ModelType.choices)
    active = TrueOnly(field_name="is_active", help_text="1, true or yes: only the active (champion) versions")

    class Meta:
        model = MLModel
        fields: list[str] = []
