"""Writing rows into the events table through ``marketing_ai.db.insert_new_rows``: binary COPY on
PostgreSQL (with its exact fallback for ids stored already), one ``executemany`` of
``INSERT ... ON CONFLICT (event_id) DO NOTHING`` elsewhere."""

from __future__ import annotations

from django.db import connection

from campaigns.models import Event
from marketing_ai.db import insert_new_rows, rows_by_keys

EVENT_COLUMNS = (
    "event_id", "type", "occurred_at", "received_at", "customer_id",
    "campaign_id", "merchant_id", "offer_id", "variant", "amount", "channel",
)


EVENT_COPY_TYPES = ["varchar", "varchar", "timestamptz", "timestamptz", "int8", "int8", "int8", "int8", "varchar", "numeric", "varchar"]


def _insert_events(records: list[tuple]) -> int:
    """Insert the rows (tuples in ``EVENT_COLUMNS`` order), skipping event_ids we already have; return
    how many were stored."""
    return insert_new_rows(Event._meta.db_table, EVENT_COLUMNS, records, key="event_id", copy_types=EVENT_COPY_TYPES)


def _known_event_ids(event_ids: list[str]) -> set[str]:
    """Which of these event_ids are stored already (one indexed query)."""
    table = connection.ops.quote_name(Event._meta.db_table)
    return {event_id for (event_id,) in rows_by_keys(table, "event_id", "event_id", event_ids)}
