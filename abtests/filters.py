"""The query filters of the A/B tests list (see ``marketing_ai.filters``)."""

from __future__ import annotations

import django_filters

from abtests.models import ABTest
from marketing_ai.filters import OneOf


class ABTestFilter(django_filters.FilterSet):
    status = OneOf(choices=ABTest.Status.choices)
    campaign_id = django_filters.CharFilter(field_name="campaign__campaign_id")
    search = django_filters.CharFilter(field_name="test_name", lookup_expr="icontains", help_text="Substring of the test name")

    class Meta:
        model = ABTest
        fields: list[str] = []
