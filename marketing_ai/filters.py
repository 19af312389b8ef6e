"""The list endpoints' query filters: one django-filter ``FilterSet`` per list, one wording for a bad value.

A list view sets ``filter_backends = [ListFilterBackend]`` (django-filter's backend, for ``list`` actions)
and its ``filterset_class``; the backend validates the query string with the FilterSet and answers a bad
value as a 400 in the one error shape, e.g.
``{"error": {"code": "invalid", "message": "status: must be one of draft, running, completed (got 'x')",
"fields": {"status": ["must be one of draft, running, completed (got 'x')"]}}}``.
An empty value is no filter; parameters a FilterSet does not declare (``page``, ``page_size``) are ignored.
drf-spectacular reads the FilterSets, so the OpenAPI schema lists each list's parameters and their enums.
"""

from __future__ import annotations

import django_filters
from django_filters.rest_framework import DjangoFilterBackend

from marketing_ai.models import JobRun

TRUE_WORDS = ("1", "true", "yes")


def one_of_message(values) -> str:
    # %-formatted by Django's ChoiceField with the refused value; the choices hold no "%".
    return f"must be one of {', '.join(map(str, values))} (got %(value)r)"


class OneOf(django_filters.ChoiceFilter):
    """An exact match on one of ``choices``; anything else is refused with the allowed values."""

    def __init__(self, *args, choices, **kwargs):
        values = [value for value, _label in choices]
        kwargs.setdefault("error_messages", {"invalid_choice": one_of_message(values)})
        super().__init__(*args, choices=choices, **kwargs)


class TrueOnly(django_filters.CharFilter):
    """``?active=1`` (or ``true``/``yes``) keeps the rows where the field is true; any other value, none."""

    def filter(self, qs, value):
        return qs.filter(**{self.field_name: True}) if value and value.lower() in TRUE_WORDS else qs


class ListFilterBackend(DjangoFilterBackend):
    """django-filter's backend for a viewset's ``list`` only: a detail or an action ignores the list's query."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", "list") not in ("list", None):
            return queryset
        return super().filter_queryset(request, queryset, view)


class JobRunFilter(django_filters.FilterSet):
    job = django_filters.CharFilter(help_text="A job's name, e.g. daily_analytics")
    status = OneOf(choices=JobRun.Status.choices)

    class Meta:
        model = JobRun
        fields: list[str] = []
