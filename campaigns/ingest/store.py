"""Storing a validated batch of events: ``ingest_events``.

``ingest_events`` resolves the campaign and offer ids (two queries, one round trip), creates customers
and merchants on first sight (one statement each, their own short transaction, run only when the events'
transaction finds one missing), and writes the events set-based in one transaction. On PostgreSQL: drop the ids already stored (one query, after a batch that
met some), look up the customers and merchants and lock every referenced row ``FOR KEY SHARE`` (one
query per table, all in one round trip: the events table has no per-row foreign-key triggers), then binary ``COPY``
straight into the events table; if a concurrent batch stored one of the ids meanwhile, fall back to
COPY into a temporary table + ``INSERT ... ON CONFLICT (event_id) DO NOTHING``. Elsewhere one
``executemany`` of that INSERT. The database-specific steps are ``marketing_ai.db.rows_by_keys`` and
``marketing_ai.db.insert_new_rows``. ``event_id`` is the idempotency key: a re-sent id (from an earlier
batch or earlier in the same batch) is counted as a duplicate.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from django.db import connection, transaction
from django.utils import timezone

from abtests import rollup as abtest_rollup
from campaigns import selectors
from campaigns.apps import DuplicateHint
from campaigns.ingest.event_table import EVENT_COLUMNS, _insert_events, _known_event_ids
from campaigns.ingest.validation import (
    MAX_LISTED_ROW_ERRORS,
    CheckedRows,
    EventRow,
    RowError,
    check_rows,
    resolve_references,
)
from campaigns.models import Campaign, Customer, Merchant, Offer
from marketing_ai.db import insert_missing_keys, pipeline, rows_by_keys_all
from marketing_ai.errors import InvalidRows


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    rejected: list[RowError] = field(default_factory=list)
    customers_created: int = 0
    merchants_created: int = 0


def ingest_events(raws: Sequence[Any], *, skip_invalid: bool = False, received_at: dt.datetime | None = None) -> IngestResult:
    """Validate and store a batch of wire events: new customers and merchants in one short transaction,
    then all the events in another.

    With ``skip_invalid=False`` (the API) a batch with any bad row raises ``InvalidRows`` and
    writes nothing. With ``skip_invalid=True`` (file import) the valid rows are stored and the
    bad ones come back in ``result.rejected``.
    """
    with _gc_paused():
        return _ingest_events(check_rows(raws, now=received_at or timezone.now()), skip_invalid=skip_invalid)


def ingest_checked(checked: CheckedRows, *, skip_invalid: bool = False) -> IngestResult:
    """``ingest_events`` of a batch whose rows were checked already (``validation.check_rows``, its
    ``now`` is the batch's received_at): the look-ups and the writes, nothing else differs."""
    with _gc_paused():
        return _ingest_events(checked, skip_invalid=skip_invalid)


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector for one batch.

    A batch allocates tens of thousands of small acyclic objects (freed by reference counting); left on,
    the collector rescans them over and over and took a third of the batch's time in profiles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _ingest_events(checked: CheckedRows, *, skip_invalid: bool) -> IngestResult:
    received_at = checked.now
    valid, errors, campaigns, offers = resolve_references(checked)
    if errors and not skip_invalid:
        raise InvalidRows(errors, listed=MAX_LISTED_ROW_ERRORS)
    result = IngestResult(rejected=errors)

    # Within the batch the first occurrence of an event_id wins; the rest are duplicates.
    unique: dict[str, EventRow] = {}
    for _, row in valid:
        unique.setdefault(row.event_id, row)
    # Sorted ids: concurrent batches take their unique-index locks in the same order (no deadlock).
    rows = sorted(unique.values(), key=lambda r: r.event_id)
    if not rows:
        result.duplicates = len(valid)
        return result

    # The campaign and offer pks are the validation's (a row deleted since is caught by _lock_references).
    # The events' transaction looks the customers and merchants up (and locks them); if some are new, it
    # ends there (it has written nothing) and they are created first, in their own short transaction: a
    # concurrent batch that meets the same new customer would otherwise wait for this whole batch's
    # uncommitted insert to end. A batch of known customers (the usual case) skips that transaction.
    # A batch with a bad row never gets here, so it still writes nothing.
    created = False
    while True:
        try:
            return _write_events(rows, valid, campaigns, offers, received_at, result,
                                 skip_invalid=skip_invalid, create_missing=not created)
        except _NewReferences:
            with transaction.atomic(), pipeline():  # BEGIN, SET LOCAL and the first insert in one round trip
                selectors.prefer_index_lookups()
                result.customers_created = _create_missing(
                    Customer, "customer_id", {r.customer_id for r in rows if r.customer_id},
                    lambda ext: Customer(customer_id=ext, timezone="UTC"),
                )
                result.merchants_created = _create_missing(
                    Merchant, "merchant_id", {r.merchant_id for r in rows if r.merchant_id},
                    # The merchant network sends the real name later; until then the id is the name.
                    lambda ext: Merchant(merchant_id=ext, name=ext), key_copies=("name",),
                )
            created = True  # the second pass counts a customer missing again as deleted meanwhile


class _NewReferences(Exception):
    """The batch names customers or merchants not stored yet: create them first (``_ingest_events``)."""


def _write_events(rows: list[EventRow], valid: list[tuple[int, EventRow]],
                  campaigns: dict[str, int], offers: dict[str, int], received_at: dt.datetime, result: IngestResult, *,
                  skip_invalid: bool, create_missing: bool) -> IngestResult:
    """The events' transaction of ``_ingest_events``; raises ``_NewReferences`` (having written nothing)
    when ``create_missing`` and a customer or merchant of the batch is not stored yet."""
    with transaction.atomic():
        hint = duplicate_hint()
        with pipeline():  # BEGIN, SET LOCAL and the look-ups below in one or two round trips
            selectors.prefer_index_lookups()
            # Ids we already have are duplicates. After a batch that met some, look them up first (a re-sent
            # batch then locks and writes nothing); otherwise go straight to the COPY, which falls back to
            # the exact ON CONFLICT way if it meets one (a fresh stream saves a 5,000-id query per batch).
            known = _known_event_ids([r.event_id for r in rows]) if hint.expected else set()
            if known:
                rows = [r for r in rows if r.event_id not in known]
            customers, merchants, live_campaigns, live_offers = _lock_references(rows, campaigns, offers)
        if create_missing and (
            any(r.customer_id not in customers for r in rows if r.customer_id)
            or any(r.merchant_id not in merchants for r in rows if r.merchant_id)
        ):
            raise _NewReferences
        records: list[tuple] = []
        gone: list[EventRow] = []
        for r in rows:
            customer = customers.get(r.customer_id) if r.customer_id else None
            merchant = merchants.get(r.merchant_id) if r.merchant_id else None
            campaign = campaigns.get(r.campaign_id)
            offer = offers.get(r.offer_id) if r.offer_id else None
            # A row not found: deleted after validation (a concurrent delete).
            if campaign not in live_campaigns or (r.customer_id and customer is None) \
                    or (r.merchant_id and merchant is None) or (r.offer_id and offer not in live_offers):
                gone.append(r)
            else:
                records.append((r.event_id, r.type, r.occurred_at, received_at, customer, campaign, merchant, offer,
                                r.variant, r.amount, r.channel))
        gone_ids = {r.event_id for r in gone}
        if gone:
            # Only a delete racing this batch gets here (the database refuses deletes of referenced rows).
            vanished = [
                RowError(index, "event", "refers to a campaign, customer, merchant or offer deleted while the batch was written")
                for index, row in valid if row.event_id in gone_ids
            ]
            if not skip_invalid:
                raise InvalidRows(vanished, listed=MAX_LISTED_ROW_ERRORS)
            result.rejected = sorted([*result.rejected, *vanished], key=lambda e: e.index)
        abtest_rollup.count_new_events(records, columns=EVENT_COLUMNS)  # A/B analysis sums, same transaction
        result.stored = _insert_events(records) if records else 0
        hint.expected = bool(known) or result.stored < len(records)
    result.duplicates = sum(1 for _, row in valid if row.event_id not in gone_ids) - result.stored
    return result


def duplicate_hint() -> DuplicateHint:
    """The process's hint, held by the campaigns app (``CampaignsConfig.ready``)."""
    from django.apps import apps

    from campaigns.apps import CampaignsConfig

    return cast(CampaignsConfig, apps.get_app_config("campaigns")).duplicate_hint


def _lock_references(rows: list[EventRow], campaigns: dict[str, int], offers: dict[str, int]
                     ) -> tuple[dict[str, int], dict[str, int], set[int], set[int]]:
    """The rows the batch refers to, found and on PostgreSQL locked FOR KEY SHARE (what a foreign key does
    per event), one query per table, all in one round trip: the customers' and merchants' {external id: pk}
    (looked up and locked at once), and the pks of the campaigns and offers (resolved by the validation)
    that still exist.

    A concurrent delete of one of those rows then waits for this transaction, and the reference trigger
    on that table refuses it once our events are committed. Elsewhere the look-up takes no lock (SQLite
    has one writer at a time) and still finds a row deleted since the validation or since
    ``_create_missing`` missing.
    """
    quote = connection.ops.quote_name
    customer_ids = sorted({r.customer_id for r in rows if r.customer_id})
    merchant_ids = sorted({r.merchant_id for r in rows if r.merchant_id})
    campaign_pks = sorted({pk for r in rows if (pk := campaigns.get(r.campaign_id)) is not None})
    offer_pks = sorted({pk for r in rows if r.offer_id and (pk := offers.get(r.offer_id)) is not None})
    customer_rows, merchant_rows, campaign_rows, offer_rows = rows_by_keys_all([
        (quote(Customer._meta.db_table), "customer_id", "customer_id, id", customer_ids, True),
        (quote(Merchant._meta.db_table), "merchant_id", "merchant_id, id", merchant_ids, True),
        (quote(Campaign._meta.db_table), "id", "id", campaign_pks, True),
        (quote(Offer._meta.db_table), "id", "id", offer_pks, True),
    ])
    return dict(customer_rows), dict(merchant_rows), {pk for (pk,) in campaign_rows}, {pk for (pk,) in offer_rows}


def _create_missing(model, field_name: str, external_ids: set[str], build, *, key_copies: tuple[str, ...] = ()) -> int:
    """Create the rows of ``external_ids`` not there yet (one statement on PostgreSQL, safe against a
    concurrent batch); return how many this call created. ``build(ext)`` is the model instance a new row
    would be: its field values (defaults included) are every new row's, except the key and the columns
    in ``key_copies``, which take the id itself."""
    if not external_ids:
        return 0
    template = build("")
    template.created_at = timezone.now()
    key_column = model._meta.get_field(field_name).column
    values = {
        f.column: (f.get_db_prep_save(f.pre_save(template, True), connection), f.cast_db_type(connection))
        for f in model._meta.concrete_fields
        if not f.primary_key and f.column != key_column and f.column not in key_copies
    }
    return len(insert_missing_keys(model._meta.db_table, key_column, sorted(external_ids), values, key_copies=key_copies))


def chunked(items: Iterable, size: int) -> Iterable[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
