"""Deterministic assignment of customers to variants, stored on first sight.

The variant is a pure function of (hashing seed, customer id, weights): GrowthBook's hash v2 bucket
(``stats.hash_bucket``) mapped by cumulative weights (``stats.choose_variant``). The first assignment
is written to ``ab_test_assignments`` (``INSERT ... ON CONFLICT DO NOTHING``), and asking again reads
that row back, so a later change of weights never moves a customer who was already counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from abtests import stats
from abtests.models import ABTest, ABTestAssignment, ABTestVariant
from campaigns.models import Customer
from marketing_ai.api import BadRequest, Conflict

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
        raise BadRequest({"customer_ids": ["give at least one customer id"]})
    if len(ids) > MAX_BATCH:
        raise BadRequest({"customer_ids": [f"at most {MAX_BATCH} customers per call (got {len(ids)})"]})
    if any(not c for c in ids):
        raise BadRequest({"customer_ids": ["customer ids must be non-empty strings"]})

    unique_ids = list(dict.fromkeys(ids))
    pk_by_id = dict(Customer.objects.filter(customer_id__in=unique_ids).values_list("customer_id", "pk"))
    unknown = [c for c in unique_ids if c not in pk_by_id]
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise BadRequest({"customer_ids": [f"unknown customers ({len(unknown)}): {shown}"]})

    variants = test.ordered_variants
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
        # ON CONFLICT DO NOTHING: a customer assigned earlier (or concurrently) keeps the stored variant.
        ABTestAssignment.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)
    return _stored(test=test, ids=ids, pk_by_id=pk_by_id, variants=variants, now=now)


def _stored(*, test: ABTest, ids: list[str], pk_by_id: dict[str, int], variants: list[ABTestVariant], now) -> list[Assigned]:
    name_by_pk = {v.pk: v.name for v in variants}
    stored = {
        customer_pk: (variant_pk, assigned_at)
        for customer_pk, variant_pk, assigned_at in ABTestAssignment.objects.filter(
            test=test, customer_id__in=list(pk_by_id.values())
        ).values_list("customer_id", "variant_id", "assigned_at")
    }
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
