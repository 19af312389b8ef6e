"""Segment rules: which customers are new, returning, or high value.

Evaluated as of a date ``D`` (default: today, UTC), over the events stored up to the end of ``D``:

- ``high_value_users``: conversion revenue in the ``HIGH_VALUE_WINDOW_DAYS`` days ending on ``D``
  is at least ``HIGH_VALUE_MIN_REVENUE``.
- ``returning_users``: at least ``RETURNING_MIN_CONVERSIONS`` conversion(s) ever, and not high value.
- ``new_users``: not returning (no conversion yet), and signed up in the ``NEW_USER_DAYS`` days ending on ``D``
  (``signup_date``, or the day we first created the customer when the signup date is unknown).
- anyone else (not returning, signed up earlier) has no segment (``NULL``): a lapsed prospect is
  neither new nor returning.

The rules run as a handful of set-based ``UPDATE ... WHERE id IN (subquery)`` statements, never a
Python loop per customer. This is not a scheduled job: the demo generator plants its segments, and
``manage.py compute_segments`` recomputes them on demand.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from campaigns.models import Customer, Event, Segment

HIGH_VALUE_MIN_REVENUE = Decimal("500.00")
HIGH_VALUE_WINDOW_DAYS = 180
RETURNING_MIN_CONVERSIONS = 1
NEW_USER_DAYS = 30


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _converted_customer_ids(until: dt.datetime) -> QuerySet:
    """Customers with at least RETURNING_MIN_CONVERSIONS conversions before ``until``."""
    # customer IS NOT NULL matters: a NULL in a NOT IN (subquery) list would exclude every row.
    return (
        Event.objects.filter(type=Event.Type.CONVERSION, occurred_at__lt=until, customer__isnull=False)
        .values("customer_id")
        .annotate(conversions=Count("id"))
        .filter(conversions__gte=RETURNING_MIN_CONVERSIONS)
        .values("customer_id")
    )


def _high_value_customer_ids(since: dt.datetime, until: dt.datetime) -> QuerySet:
    return (
        Event.objects.filter(
            type=Event.Type.CONVERSION, occurred_at__gte=since, occurred_at__lt=until, customer__isnull=False
        )
        .values("customer_id")
        .annotate(revenue=Sum("amount"))
        .filter(revenue__gte=HIGH_VALUE_MIN_REVENUE)
        .values("customer_id")
    )


def recompute_segments(*, as_of: dt.date | None = None) -> dict[str, int]:
    """Assign every customer its segment by the rules above; return {segment name or "none": customers}."""
    as_of = as_of or timezone.now().date()
    until = _day_start(as_of + dt.timedelta(days=1))
    since = until - dt.timedelta(days=HIGH_VALUE_WINDOW_DAYS)
    new_since = as_of - dt.timedelta(days=NEW_USER_DAYS - 1)
    segments = {s.name: s for s in Segment.objects.filter(
        name__in=[Segment.NEW_USERS, Segment.RETURNING_USERS, Segment.HIGH_VALUE_USERS]
    )}
    missing = {Segment.NEW_USERS, Segment.RETURNING_USERS, Segment.HIGH_VALUE_USERS} - segments.keys()
    if missing:
        raise LookupError(f"segment(s) missing: {', '.join(sorted(missing))} (run migrate)")

    high = _high_value_customer_ids(since, until)
    converted = _converted_customer_ids(until)
    recently_signed_up = Q(signup_date__gte=new_since, signup_date__lte=as_of) | Q(
        signup_date__isnull=True, created_at__gte=_day_start(new_since), created_at__lt=until
    )
    counts: dict[str, int] = {}
    with transaction.atomic():
        counts[Segment.HIGH_VALUE_USERS] = Customer.objects.filter(id__in=high).update(
            segment=segments[Segment.HIGH_VALUE_USERS]
        )
        counts[Segment.RETURNING_USERS] = (
            Customer.objects.filter(id__in=converted).exclude(id__in=high)
            .update(segment=segments[Segment.RETURNING_USERS])
        )
        not_converted = Customer.objects.exclude(id__in=converted)
        counts[Segment.NEW_USERS] = not_converted.filter(recently_signed_up).update(segment=segments[Segment.NEW_USERS])
        counts["none"] = not_converted.exclude(recently_signed_up).update(segment=None)
    return counts
