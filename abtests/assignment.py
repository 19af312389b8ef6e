"""Deterministic assignment of customers to variants, stored on first sight.

The variant is a pure function of (hashing seed, customer id, weights): GrowthBook's hash v2 bucket
(``stats.hash_bucket``) mapped by cumulative weights (``stats.choose_variant``). The first assignment
is written to ``ab_test_assignments`` (``INSERT ... ON CONFLICT DO NOTHING``), and asking again reads
that row back, so a later change of weights never moves a customer who was already counted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from abtests import rollup, stats
from abtests.models import ABTest, ABTestAssignment, ABTestVariant
from campaigns.models import Campaign, Customer
from marketing_ai.errors import Conflict, InvalidInput

MAX_BATCH = 10_000


@dataclass(frozen=True)
class Assigned:
    customer_id: str
    variant: str
    assigned_at: str
    new: bool  # True if this call stored the assignment


def variant_index_for(seed: str, customer_id: str, weights: Sequence[float]) -> int:
    """The arm a customer falls in (position in ``weights``), with no database access."""
    return stats.choose_variant(stats.hash_bucket(seed, customer_id), list(weights))


def assign(*, test: ABTest, customer_ids: Sequence[str]) -> list[Assigned]:
    """Assign each customer (external id) to a variant of a running test; returns them in input order.

    Unknown customer ids are a 400 listing them: customers come from the event stream, and inventing
    them here would hide typos. A repeated id in the batch is answered once per occurrence.
    """
    if test.status != ABTest.Status.RUNNING:
        raise Conflict(f"test {test.test_id} is {test.status}; customers can only be assigned to a running test")
    ids = [str(c).strip() for c in customer_ids]
    if not ids:
        raise InvalidInput({"customer_ids": ["give at least one customer id"]})
    if len(ids) > MAX_BATCH:
        raise InvalidInput({"customer_ids": [f"at most {MAX_BATCH} customers per call (got {len(ids)})"]})
    if any(not c for c in ids):
        raise InvalidInput({"customer_ids": ["customer ids must be non-empty strings"]})

    unique_ids = list(dict.fromkeys(ids))
    pk_by_id = dict(Customer.objects.filter(customer_id__in=unique_ids).values_list("customer_id", "pk"))
    unknown = [c for c in unique_ids if c not in pk_by_id]
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise InvalidInput({"customer_ids": [f"unknown customers ({len(unknown)}): {shown}"]})

    variants = test.ordered_variants
    # Asking again for customers already assigned (a page fetching a variant it showed before) is the
    # usual call and changes nothing: answered from the stored rows, without the campaign lock below, on
    # which every assignment in the campaign takes its turn. Stored assignments never change.
    stored = _stored_rows(test=test, pk_by_id=pk_by_id)
    if len(stored) == len(pk_by_id):
        return _answers(ids=ids, pk_by_id=pk_by_id, variants=variants, stored=stored, now=None)
    weights = [v.weight for v in variants]
    now = timezone.now()
    rows = [
        ABTestAssignment(
            test=test,
            customer_id=pk_by_id[c],
            variant=variants[variant_index_for(test.hashing_seed, c, weights)],
            assigned_at=now,
        )
        for c in unique_ids
    ]
    with transaction.atomic():
        # Assignments in one campaign take turns (the campaign row lock), so two tests of the campaign
        # cannot both pass the exclusion check for the same customer at the same moment.
        Campaign.objects.select_for_update().filter(pk=test.campaign_id).values_list("pk").first()
        _check_exclusion(test=test, unique_ids=unique_ids, pk_by_id=pk_by_id)
        # ON CONFLICT DO NOTHING: a customer assigned earlier (or concurrently) keeps the stored variant.
        ABTestAssignment.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)
        # The rows this call stored (under the campaign lock, only they carry this call's timestamp).
        rollup.customers_assigned(test=test, assignments=list(ABTestAssignment.objects.filter(
            test=test, customer_id__in=list(pk_by_id.values()), assigned_at=now)))
    return _stored(test=test, ids=ids, pk_by_id=pk_by_id, variants=variants, now=now)


def namespace_bucket(namespace: str, customer_id: str) -> float:
    """Where a customer falls in a namespace, in [0, 1): the same hash as the variant bucket, salted by the
    namespace (not by a test), so every test of the namespace sees the customer at the same place."""
    return stats.hash_bucket(f"namespace:{namespace}", customer_id)


def in_namespace_range(test: ABTest, customer_id: str) -> bool:
    if not test.namespace:
        return True
    return test.namespace_start <= namespace_bucket(test.namespace, customer_id) < test.namespace_end


def _check_exclusion(*, test: ABTest, unique_ids: list[str], pk_by_id: dict[str, int]) -> None:
    """409 (nothing stored) if any customer is outside the test's namespace range or already in another
    running test of the same campaign. Customers already assigned in this test keep their variant."""
    mine = set(ABTestAssignment.objects.filter(test=test, customer_id__in=list(pk_by_id.values()))
               .values_list("customer_id", flat=True))
    fresh = [c for c in unique_ids if pk_by_id[c] not in mine]
    outside: list[str] = []
    if test.namespace and fresh:
        buckets = stats.hash_buckets(f"namespace:{test.namespace}", fresh)
        outside = [c for c, b in zip(fresh, buckets, strict=True)
                   if not test.namespace_start <= b < test.namespace_end]
    id_by_pk = {pk_by_id[c]: c for c in fresh}
    taken = list(
        ABTestAssignment.objects.filter(test__campaign_id=test.campaign_id, test__status=ABTest.Status.RUNNING,
                                        customer_id__in=list(id_by_pk))
        .exclude(test=test).values_list("customer_id", "test__test_id")
    )
    if not outside and not taken:
        return
    fields: dict[str, list[str]] = {}
    messages = []
    if taken:
        shown = ", ".join(f"{id_by_pk[pk]} (in {other})" for pk, other in taken[:10]) + (" ..." if len(taken) > 10 else "")
        fields["customer_ids"] = [f"already in another running test of this campaign ({len(taken)}): {shown}"]
        messages.append(f"{len(taken)} customer(s) already in another running test of campaign "
                        f"{test.campaign.campaign_id}")
    if outside:
        shown = ", ".join(outside[:10]) + (" ..." if len(outside) > 10 else "")
        fields.setdefault("customer_ids", []).append(
            f"outside this test's traffic range {test.namespace_start:g}-{test.namespace_end:g} of namespace "
            f"{test.namespace!r} ({len(outside)}): {shown}")
        messages.append(f"{len(outside)} customer(s) outside the test's range of namespace {test.namespace!r}")
    raise Conflict(f"{'; '.join(messages)}: a customer is in at most one running test per campaign and "
                   "namespace; nothing was assigned", fields=fields)


def _stored_rows(*, test: ABTest, pk_by_id: dict[str, int]) -> dict[int, tuple[int, dt.datetime]]:
    """{customer pk: (variant pk, assigned_at)} of the customers' stored assignments in the test."""
    return {
        customer_pk: (variant_pk, assigned_at)
        for customer_pk, variant_pk, assigned_at in ABTestAssignment.objects.filter(
            test=test, customer_id__in=list(pk_by_id.values())
        ).values_list("customer_id", "variant_id", "assigned_at")
    }


def _stored(*, test: ABTest, ids: list[str], pk_by_id: dict[str, int], variants: list[ABTestVariant], now) -> list[Assigned]:
    return _answers(ids=ids, pk_by_id=pk_by_id, variants=variants, stored=_stored_rows(test=test, pk_by_id=pk_by_id), now=now)


def _answers(*, ids: list[str], pk_by_id: dict[str, int], variants: list[ABTestVariant],
             stored: dict[int, tuple[int, dt.datetime]], now: dt.datetime | None) -> list[Assigned]:
    """The answer for each id in input order; ``new``: stored by this call (its timestamp ``now``)."""
    name_by_pk = {v.pk: v.name for v in variants}
    out = []
    for c in ids:
        variant_pk, assigned_at = stored[pk_by_id[c]]
        out.append(Assigned(customer_id=c, variant=name_by_pk[variant_pk], assigned_at=assigned_at.isoformat(),
                            new=assigned_at == now))
    return out


def assigned_variant(*, test: ABTest, customer_id: str) -> str | None:
    """The stored variant name of a customer, or None if never assigned."""
    row = (
        ABTestAssignment.objects.filter(test=test, customer__customer_id=customer_id)
        .values_list("variant__name", flat=True)
        .first()
    )
    return row
