"""The A/B read API's answers (status, results, over-time, history), kept in the process cache under a
version of everything they read, so a repeat costs one cheap query instead of the analysis and its
serialization.

A test's version is read in one query on every request (no time bound: an answer changes at once after
any committed write, in every process):

- ``ABTest.data_version``: incremented by every save of the test row (status changes, edits, apply
  winner), by every write of its variants or stored results (a post_save/post_delete receiver, so the
  admin, analyze and the hourly ``abtest_results`` job alike), by ``rollup.rebuild`` and by the id repair;
- the sum of the test's ``ABTestArmSums.version``: each sums row's counter, incremented in the same UPDATE
  as the rollup's deltas, so every counted event (ingestion's ``count_new_events``) and every new
  assignment (``customers_assigned``) moves it without touching the test's row (no new lock, no new
  lock order for ingestion). A rebuild recreates the rows (counters back to 0) and bumps ``data_version``
  in the same transaction, so (data_version, Σ version) never repeats.

Only answers whose inputs these cover are cached: a draft (its answers read the test row and variants),
or a started test whose rollup is kept (it has sums rows). A test without sums rows (bulk-loaded past
the services) is analysed from the raw events, which no counter follows: its answers are computed each
time. The breakdowns are never cached: they read the customers' current segments and time zones, which
change without any A/B write.

The history (every completed test) is versioned by (count, Σ data_version, latest ended_at, max pk) over
the completed tests: one aggregate query.

Known gaps (documented in docs/abtests.md): deleting events or customers (erasure, a partition dropped by
retention) changes the raw events under a kept rollup without moving a counter; the rollup's sums are
stale then too until ``manage.py rebuild_abtest_rollups``, which bumps the version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max, OuterRef, Subquery, Sum
from django.utils import timezone

from abtests.models import ABTest, ABTestArmSums

# How long an unused answer holds memory. The key carries the version, so an entry is never stale.
CACHE_SECONDS = 300


def test_version(*, test_id: str, rollup: bool = True) -> tuple | None:
    """The version of a test's answers (one query), or None: no such test, or its answers are not cacheable.

    ``rollup=False`` for an answer that reads only the test's row, variants and stored results (the results
    list): new events and assignments then leave its version alone, and it is cacheable for any test."""
    if not rollup:
        own = ABTest.objects.filter(test_id=test_id).values_list("pk", "created_at", "data_version").first()
        return None if own is None else (test_id, own[0], own[1].isoformat(), own[2])
    sums = (ABTestArmSums.objects.filter(test=OuterRef("pk")).order_by().values("test")
            .annotate(v=Sum("version")).values("v"))
    row = (ABTest.objects.filter(test_id=test_id).annotate(sums_version=Subquery(sums))
           .values_list("pk", "created_at", "status", "data_version", "sums_version").first())
    if row is None:
        return None
    pk, created_at, status, data_version, sums_version = row
    if sums_version is None and status != ABTest.Status.DRAFT:
        return None  # analysed from the raw events: nothing versions them
    # pk and created_at too: on SQLite a rolled-back test's pk (and version 0) can come back.
    return (test_id, pk, created_at.isoformat(), status, data_version, sums_version)


def history_version() -> tuple:
    """The version of the completed tests' history (one aggregate query)."""
    agg = ABTest.objects.filter(status=ABTest.Status.COMPLETED).aggregate(
        n=Count("pk"), versions=Sum("data_version"), last=Max("ended_at"), top=Max("pk"))
    return (agg["n"], agg["versions"], agg["last"].isoformat() if agg["last"] else None, agg["top"])


def today() -> dt.date:
    """The UTC day the over-time answer runs to (part of its key: a new day adds a row)."""
    return timezone.now().astimezone(dt.UTC).date()


def cached(kind: str, version: tuple | None, params: tuple, build: Callable[[], Any]) -> Any:
    """``build()`` (a serialized answer), from the process cache under (kind, version, params) when there
    is a version; ``build()`` each time when there is none."""
    if version is None:
        return build()
    key = "abtests:answer:" + hashlib.sha256(repr((kind, version, params)).encode()).hexdigest()
    value = cache.get(key)
    if value is None:
        value = build()
        cache.set(key, value, CACHE_SECONDS)
    return value
