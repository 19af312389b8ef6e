"""Writes to the shared domain: event ingestion (API batches and file imports share it) and deletes.

Ingestion lives in ``campaigns.ingest``: ``validation`` (the wire format, one row's and a batch's
checks), ``store`` (``ingest_events``: customers and merchants on first sight, locks, the insert) and
``event_table`` (COPY / INSERT into the events table). ``import_events`` checks rows in its reading
thread (``check_rows``) and stores them with ``ingest_checked``. Its public names are importable from here too.
"""

from __future__ import annotations

from django.db.models import ProtectedError

from campaigns.ingest.event_table import EVENT_COLUMNS, EVENT_COPY_TYPES
from campaigns.ingest.store import IngestResult, chunked, ingest_checked, ingest_events
from campaigns.ingest.validation import (
    AMOUNT_REQUIRED,
    CENT,
    MAX_AMOUNT,
    MAX_API_BATCH,
    MAX_FUTURE_SKEW,
    MAX_ID_LENGTH,
    MAX_LISTED_ROW_ERRORS,
    MAX_UNKNOWN_FIELDS_LISTED,
    TYPES,
    WIRE_FIELDS,
    CheckedRows,
    EventRow,
    InvalidRows,
    RowError,
    check_csv_rows,
    check_rows,
    validate_batch,
    validate_event_row,
)
from campaigns.models import Campaign, Merchant
from marketing_ai.errors import Conflict

__all__ = [
    "AMOUNT_REQUIRED", "CENT", "EVENT_COLUMNS", "EVENT_COPY_TYPES", "MAX_AMOUNT", "MAX_API_BATCH",
    "MAX_FUTURE_SKEW", "MAX_ID_LENGTH", "MAX_LISTED_ROW_ERRORS", "MAX_UNKNOWN_FIELDS_LISTED", "TYPES",
    "WIRE_FIELDS", "CheckedRows", "EventRow", "IngestResult", "InvalidRows", "RowError", "campaign_delete",
    "check_csv_rows", "check_rows", "chunked", "ingest_checked", "ingest_events", "merchant_delete", "validate_batch",
    "validate_event_row",
]


# --- domain objects ------------------------------------------------------------------------------


def campaign_delete(campaign: Campaign) -> None:
    """Delete a campaign; one with events is history and cannot go (409)."""
    try:
        campaign.delete()
    except ProtectedError:
        raise Conflict(
            f"campaign {campaign.campaign_id} has events; set its status to 'completed' instead of deleting it"
        ) from None


def merchant_delete(merchant: Merchant) -> None:
    try:
        merchant.delete()
    except ProtectedError:
        raise Conflict(f"merchant {merchant.merchant_id} has events and cannot be deleted") from None
