"""Reads of the shared domain: external id -> primary key look-ups and the API's filtered lists.

Ingestion resolves each kind of id with one query per batch (chunked so a big ``--batch-size``
stays under SQLite's parameter limit), never one query per event.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import Q, QuerySet

from campaigns.models import Campaign, Customer, Merchant, Offer

LOOKUP_CHUNK = 5000  # ids per IN (...) list


def _pk_by_external_id(model, field: str, external_ids: Iterable[str]) -> dict[str, int]:
    ids = sorted(set(external_ids))
    if not ids:
        return {}
    if connection.vendor == "postgresql":
        # One array parameter: an ORM ``__in`` of 5,000 values builds and parses 5,000 placeholders,
        # which cost more than the query itself.
        table = connection.ops.quote_name(model._meta.db_table)
        column = model._meta.get_field(field).column
        return dict(fetch_bound(f"SELECT {column}, id FROM {table} WHERE {column} = ANY(%s)", [ids]))
    found: dict[str, int] = {}
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        found.update(model.objects.filter(**{f"{field}__in": chunk}).values_list(field, "pk"))
    return found


def fetch_bound(sql: str, params: list) -> list[tuple]:
    """PostgreSQL: run a query with server-side parameter binding and return its rows.

    Django's psycopg cursor binds on the client, quoting a 5,000-id array into the SQL text; sent as a
    parameter it costs nothing to build and PostgreSQL parses a short statement.
    """
    import psycopg

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def campaign_pks(campaign_ids: Iterable[str]) -> dict[str, int]:
    """{campaign_id: pk} for the ids that exist."""
    return _pk_by_external_id(Campaign, "campaign_id", campaign_ids)


def offer_pks(offer_ids: Iterable[str]) -> dict[str, int]:
    return _pk_by_external_id(Offer, "offer_id", offer_ids)


def customer_pks(customer_ids: Iterable[str]) -> dict[str, int]:
    return _pk_by_external_id(Customer, "customer_id", customer_ids)


def merchant_pks(merchant_ids: Iterable[str]) -> dict[str, int]:
    return _pk_by_external_id(Merchant, "merchant_id", merchant_ids)


def campaign_list(
    *, status: str | None = None, merchant_id: str | None = None, channel: str | None = None,
    segment: str | None = None, search: str | None = None,
) -> QuerySet[Campaign]:
    qs = Campaign.objects.select_related("merchant", "current_offer").prefetch_related("target_segments")
    if status:
        qs = qs.filter(status=status)
    if merchant_id:
        qs = qs.filter(merchant__merchant_id=merchant_id)
    if channel:
        qs = qs.filter(channel=channel)
    if segment:
        qs = qs.filter(target_segments__name=segment)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(campaign_id__icontains=search))
    return qs


def merchant_list(*, category: str | None = None, search: str | None = None) -> QuerySet[Merchant]:
    qs = Merchant.objects.all()
    if category:
        qs = qs.filter(category=category)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(merchant_id__icontains=search))
    return qs


def customer_list(
    *, segment: str | None = None, timezone: str | None = None, search: str | None = None
) -> QuerySet[Customer]:
    qs = Customer.objects.select_related("segment")
    if segment == "none":
        qs = qs.filter(segment__isnull=True)
    elif segment:
        qs = qs.filter(segment__name=segment)
    if timezone:
        qs = qs.filter(timezone=timezone)
    if search:
        # A prefix search uses the unique index on customer_id; customers run into the millions.
        qs = qs.filter(customer_id__startswith=search)
    return qs
