"""Writing rows into the events table through ``marketing_ai.db.insert_new_rows``: binary COPY on
PostgreSQL (with its exact fallback for ids stored already), one ``executemany`` of
``INSERT ... ON CONFLICT (event_id) DO NOTHING`` elsewhere.

On PostgreSQL the events table is partitioned by month and ``event_id`` is unique across partitions through
the key table ``campaigns_event_key`` (``campaigns.partitions``; docs/ingestion.md, "Idempotency across
partitions"): look-ups of stored ids go there, and the fallback claims ids there."""

from __future__ import annotations

from django.db import connection

from campaigns.models import Event
from campaigns.partitions import KEY_TABLE
from marketing_ai.db import insert_new_rows, key_lookup_table, rows_by_keys

EVENT_COLUMNS = (
    "event_id", "type", "occurred_at", "received_at", "customer_id",
    "campaign_id", "merchant_id", "offer_id", "variant", "amount", "channel",
)


EVENT_COPY_TYPES = ["varchar", "varchar", "timestamptz", "timestamptz", "int8", "int8", "int8", "int8", "varchar", "numeric", "varchar"]


def _insert_events(records: list[tuple]) -> int:
    """Insert the rows (tuples in ``EVENT_COLUMNS`` order), skipping event_ids we already have; return
    how many were stored."""
    return insert_new_rows(Event._meta.db_table, EVENT_COLUMNS, records, key="event_id", copy_types=EVENT_COPY_TYPES,
                           key_table=KEY_TABLE, partition_key="occurred_at")


def known_event_ids(event_ids: list[str]) -> set[str]:
    """Which of these event_ids are stored already (one indexed query). On PostgreSQL: in the key table,
    which also keeps the ids of events in months dropped past retention."""
    table = connection.ops.quote_name(key_lookup_table(Event._meta.db_table, KEY_TABLE))
    return {event_id for (event_id,) in rows_by_keys(table, "event_id", "event_id", event_ids)}


_known_event_ids = known_event_ids  # the name store.py imports
