"""Writes to the shared domain: event ingestion (API batches and file imports share it).

An event on the wire is a JSON object (see docs/ingestion.md)::

    {"event_id": "evt_1", "type": "conversion", "occurred_at": "2025-03-01T09:15:00+01:00",
     "customer_id": "user_42", "campaign_id": "camp_1", "merchant_id": "m_7",
     "offer_id": "off_25pct", "variant": "B", "amount": "19.90"}

``validate_event_row`` is the one row validator (the API and ``import_events`` both call it
through ``ingest_events``). ``ingest_events`` resolves ids with one query per kind, creates
customers and merchants on first sight (their own short transaction), and writes the events
set-based in one transaction. On PostgreSQL: drop the ids already stored (one query), lock the
referenced rows ``FOR KEY SHARE`` (one query per table: the events table has no per-row foreign-key
triggers), then binary ``COPY`` straight into the events table; if a concurrent batch stored one of
the ids meanwhile, fall back to COPY into a temporary table + ``INSERT ... ON CONFLICT (event_id) DO
NOTHING``. Elsewhere one ``executemany`` of that INSERT. ``event_id`` is the idempotency key: a
re-sent id (from an earlier batch or earlier in the same batch) is counted as a duplicate.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone
from psycopg.errors import UniqueViolation

from campaigns import selectors
from campaigns.models import EVENT_CHANNEL_RE, Campaign, Customer, Event, Merchant, Offer, event_channel_problem
from marketing_ai.api import BadRequest, Conflict
from marketing_ai.db import psycopg_cursor
from marketing_ai.validation import EXTERNAL_ID_RE, external_id_problem, text_problem

MAX_API_BATCH = 5000  # events per POST /api/v1/events/
MAX_ID_LENGTH = 64  # the models' CharField max_length for external ids and variant
MAX_AMOUNT = Decimal("999999999999.99")  # DecimalField(max_digits=14, decimal_places=2)
CENT = Decimal("0.01")
# A clock far ahead of ours would put events into days not yet aggregated; allow a little skew.
MAX_FUTURE_SKEW = dt.timedelta(days=1)
# A 400 lists at most this many row errors (and how many more there were): a batch of rows full of
# unknown keys once produced a 147 MB error body.
MAX_LISTED_ROW_ERRORS = 100
MAX_UNKNOWN_FIELDS_LISTED = 5  # per row

TYPES = frozenset(Event.Type.values)
AMOUNT_REQUIRED = {Event.Type.CONVERSION: "revenue", Event.Type.SPEND: "cost"}
WIRE_FIELDS = (
    "event_id", "type", "occurred_at", "customer_id", "campaign_id",
    "merchant_id", "offer_id", "variant", "amount", "channel",
)
_WIRE_FIELD_SET = frozenset(WIRE_FIELDS)


@dataclass(slots=True)
class EventRow:
    """A validated wire event; ids are still external (strings)."""

    event_id: str
    type: str
    occurred_at: dt.datetime  # aware, UTC
    customer_id: str | None
    campaign_id: str
    merchant_id: str | None
    offer_id: str | None
    variant: str
    amount: Decimal | None
    channel: str = ""  # optional on the wire; "" = not given


@dataclass(frozen=True, slots=True)
class RowError:
    index: int  # position in the batch (0-based)
    field: str
    reason: str

    def as_dict(self) -> dict:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    rejected: list[RowError] = field(default_factory=list)
    customers_created: int = 0
    merchants_created: int = 0


class InvalidRows(BadRequest):
    """A batch with bad rows: HTTP 400 whose ``fields`` are ``{"rows": [{"index", "field", "reason"}, ...]}``.

    ``typed_fields``/``typed_message`` keep the JSON types (``index`` stays an int) through the
    shared exception handler, which would otherwise turn every leaf into a string.
    """

    def __init__(self, errors: Sequence[RowError]):
        self.errors = list(errors)
        listed = self.errors[:MAX_LISTED_ROW_ERRORS]
        bad = len({e.index for e in self.errors})
        first = self.errors[0]
        more = len(self.errors) - len(listed)
        self.typed_message = (
            f"{bad} bad row(s), nothing stored; first: row {first.index} {first.field}: {first.reason}"
            + (f" ({len(self.errors)} errors; the first {len(listed)} are listed)" if more else "")
        )
        self.typed_fields = {"rows": [e.as_dict() for e in listed], "errors_total": len(self.errors),
                             "errors_not_listed": more}
        super().__init__({"rows": [f"{e.index} {e.field}: {e.reason}" for e in listed]})


# --- one row -------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A value quoted in an error reason, cut short: reasons stay small whatever was sent."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _external_id(raw: Mapping, name: str, errors: list[tuple[str, str]], *, required: bool) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            errors.append((name, "is required"))
        return None
    if not isinstance(value, str):
        errors.append((name, f"must be a string, got {type(value).__name__}"))
        return None
    if len(value) > MAX_ID_LENGTH:
        errors.append((name, f"is longer than {MAX_ID_LENGTH} characters"))
        return None
    if value != value.strip():
        errors.append((name, "must not start or end with whitespace"))
        return None
    # The variant is an A/B variant's display name (any storable text); the others are external ids.
    problem = text_problem(value) if name == "variant" else external_id_problem(value)
    if problem:
        errors.append((name, problem))
        return None
    return value


def _occurred_at(raw: Mapping, errors: list[tuple[str, str]], now: dt.datetime) -> dt.datetime | None:
    value = raw.get("occurred_at")
    if value is None or value == "":
        errors.append(("occurred_at", "is required"))
        return None
    if not isinstance(value, str):
        errors.append(("occurred_at", f"must be an ISO 8601 string, got {type(value).__name__}"))
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        errors.append(("occurred_at", f"{_shown(value)} is not an ISO 8601 date-time"))
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        errors.append(("occurred_at", f"{_shown(value)} has no UTC offset; send e.g. 2025-03-01T09:15:00+00:00"))
        return None
    try:
        parsed = parsed.astimezone(dt.UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
        errors.append(("occurred_at", f"{_shown(value)} is outside the years 1-9999 once converted to UTC"))
        return None
    if parsed > now + MAX_FUTURE_SKEW:
        errors.append(("occurred_at", f"{_shown(value)} is more than a day in the future"))
        return None
    return parsed


def _amount(raw: Mapping, event_type: str | None, errors: list[tuple[str, str]]) -> Decimal | None:
    value = raw.get("amount")
    if value is None or value == "":
        if event_type in AMOUNT_REQUIRED:
            errors.append(("amount", f"is required for {event_type} (its {AMOUNT_REQUIRED[event_type]})"))
        return None
    if event_type is not None and event_type not in AMOUNT_REQUIRED:
        errors.append(("amount", "only conversion (revenue) and spend (cost) events carry an amount"))
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        errors.append(("amount", f"must be a decimal string or a number, got {type(value).__name__}"))
        return None
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(("amount", "must be a finite number"))
        return None
    try:
        # str() first: a JSON 19.9 means 19.90, not the binary float 19.899999...
        amount = Decimal(str(value) if isinstance(value, float) else value)
    except (InvalidOperation, ValueError):
        errors.append(("amount", f"{_shown(value)} is not a decimal number"))
        return None
    if not amount.is_finite():
        errors.append(("amount", "must be a finite number"))
    elif amount < 0:
        errors.append(("amount", "must be >= 0"))
    elif amount > MAX_AMOUNT:
        errors.append(("amount", f"must be <= {MAX_AMOUNT}"))
    elif amount != amount.quantize(CENT):
        errors.append(("amount", "has more than 2 decimal places"))
    else:
        return amount.quantize(CENT)
    return None


def _fast_row(raw: Any, now: dt.datetime) -> EventRow | None:
    """The common, valid row in one pass; ``None`` means "let the detailed checks decide".

    It accepts only rows that ``validate_event_row``'s detailed checks accept, with the same result
    (tests/campaigns/test_ingest_api.py compares the two); anything unusual (a non-string id, a JSON
    number amount, an error) goes the detailed way, which names every bad field.
    """
    if type(raw) is not dict or not _WIRE_FIELD_SET.issuperset(raw):
        return None
    get = raw.get
    ids = []  # event_id, campaign_id, customer_id, merchant_id, offer_id, variant; None = not given
    for name in _FAST_ID_FIELDS:  # the id checks of _external_id, inlined: six per event
        value = get(name)
        if value is None or value == "":
            ids.append(None)
        elif type(value) is not str or not _is_external_id(value):  # (a variant outside it: the detailed way)
            return None
        else:
            ids.append(value)
    event_id, campaign_id, customer_id, merchant_id, offer_id, variant = ids
    event_type = get("type")
    if event_id is None or campaign_id is None or type(event_type) is not str or event_type not in TYPES:
        return None
    if customer_id is None and event_type != Event.Type.SPEND:
        return None
    occurred = get("occurred_at")
    if type(occurred) is not str:
        return None
    try:
        occurred_at = dt.datetime.fromisoformat(occurred)
    except ValueError:
        return None
    if occurred_at.utcoffset() is None:
        return None
    try:
        occurred_at = occurred_at.astimezone(dt.UTC)
    except OverflowError:
        return None
    if occurred_at > now + MAX_FUTURE_SKEW:
        return None
    amount = get("amount")
    if amount is not None and amount != "" or event_type in AMOUNT_REQUIRED:
        if type(amount) is not str:
            return None
        errors: list[tuple[str, str]] = []
        amount = _amount(raw, event_type, errors)
        if errors:
            return None
    else:
        amount = None
    channel = get("channel")
    if channel is None or channel == "":
        channel = ""
    elif type(channel) is not str or not _is_event_channel(channel):
        return None
    return EventRow(event_id, event_type, occurred_at, customer_id, campaign_id, merchant_id, offer_id, variant or "",
                    amount, channel)


_FAST_ID_FIELDS = ("event_id", "campaign_id", "customer_id", "merchant_id", "offer_id", "variant")
_is_external_id = EXTERNAL_ID_RE.fullmatch
_is_event_channel = EVENT_CHANNEL_RE.fullmatch


def _channel(raw: Mapping, errors: list[tuple[str, str]]) -> str:
    value = raw.get("channel")
    if value is None or value == "":
        return ""
    problem = f"must be a string, got {_shown(value)}" if not isinstance(value, str) else event_channel_problem(value)
    if problem:
        errors.append(("channel", problem))
        return ""
    return value


def validate_event_row(raw: Any, *, now: dt.datetime | None = None) -> tuple[EventRow | None, list[tuple[str, str]]]:
    """Check one wire event; return ``(row, [])`` or ``(None, [(field, reason), ...])`` listing every bad field.

    Reference checks (does the campaign exist?) need the database and happen per batch in
    ``ingest_events``.
    """
    now = now or timezone.now()
    row = _fast_row(raw, now)
    if row is not None:
        return row, []
    return _detailed_row(raw, now)


def _detailed_row(raw: Any, now: dt.datetime) -> tuple[EventRow | None, list[tuple[str, str]]]:
    """Every check, one field at a time, collecting every bad field's reason."""
    # type() first: isinstance against the Mapping ABC costs more than the rest of a row's checks.
    if type(raw) is not dict and not isinstance(raw, Mapping):
        return None, [("event", f"must be a JSON object, got {type(raw).__name__}")]
    errors: list[tuple[str, str]] = []
    if not _WIRE_FIELD_SET.issuperset(raw):
        unknown = sorted(map(str, raw.keys() - _WIRE_FIELD_SET))
        for name in unknown[:MAX_UNKNOWN_FIELDS_LISTED]:
            errors.append((name[:MAX_ID_LENGTH], f"unknown field; an event has {', '.join(WIRE_FIELDS)}"))
        if len(unknown) > MAX_UNKNOWN_FIELDS_LISTED:
            errors.append(("event", f"and {len(unknown) - MAX_UNKNOWN_FIELDS_LISTED} more unknown fields"))

    event_id = _external_id(raw, "event_id", errors, required=True)
    event_type = raw.get("type")
    if event_type is None or event_type == "":
        errors.append(("type", "is required"))
        event_type = None
    elif not isinstance(event_type, str) or event_type not in TYPES:
        errors.append(("type", f"{_shown(event_type)} is not one of {', '.join(Event.Type.values)}"))
        event_type = None
    occurred_at = _occurred_at(raw, errors, now)
    customer_id = _external_id(raw, "customer_id", errors, required=event_type != Event.Type.SPEND)
    campaign_id = _external_id(raw, "campaign_id", errors, required=True)
    merchant_id = _external_id(raw, "merchant_id", errors, required=False)
    offer_id = _external_id(raw, "offer_id", errors, required=False)
    variant = _external_id(raw, "variant", errors, required=False)
    amount = _amount(raw, event_type, errors)  # type unknown or bad: only the type-free checks
    channel = _channel(raw, errors)
    if errors:
        return None, errors
    return (
        EventRow(event_id, event_type, occurred_at, customer_id, campaign_id, merchant_id, offer_id, variant or "", amount,
                 channel),
        [],
    )


# --- a batch -------------------------------------------------------------------------------------


def validate_batch(raws: Sequence[Any], *, now: dt.datetime | None = None) -> tuple[list[tuple[int, EventRow]], list[RowError]]:
    """Validate every row and resolve campaign and offer ids (one query each).

    Returns the valid rows with their batch index and every error (every bad field of every
    row, including unknown ids on rows that are bad otherwise), ordered by index.
    """
    now = now or timezone.now()
    valid: list[tuple[int, EventRow]] = []
    errors: list[RowError] = []
    references: list[tuple[int, str | None, str | None]] = []  # (index, campaign_id, offer_id) to look up
    for index, raw in enumerate(raws):
        row, row_errors = validate_event_row(raw, now=now)
        if row is not None:
            valid.append((index, row))
            references.append((index, row.campaign_id, row.offer_id))
            continue
        errors.extend(RowError(index, f, r) for f, r in row_errors)
        if isinstance(raw, Mapping):
            bad_fields = {f for f, _ in row_errors}
            references.append((
                index,
                raw.get("campaign_id") if "campaign_id" not in bad_fields else None,
                raw.get("offer_id") if "offer_id" not in bad_fields and raw.get("offer_id") else None,
            ))

    campaigns = selectors.campaign_pks(c for _, c, _ in references if c)
    offers = selectors.offer_pks(o for _, _, o in references if o)
    unresolved: set[int] = set()
    for index, campaign_id, offer_id in references:
        if campaign_id and campaign_id not in campaigns:
            errors.append(RowError(index, "campaign_id", f"unknown campaign {campaign_id!r}"))
            unresolved.add(index)
        if offer_id and offer_id not in offers:
            errors.append(RowError(index, "offer_id", f"unknown offer {offer_id!r}"))
            unresolved.add(index)
    errors.sort(key=lambda e: e.index)  # stable: a row's field errors keep their order
    return [(i, row) for i, row in valid if i not in unresolved], errors


def ingest_events(raws: Sequence[Any], *, skip_invalid: bool = False, received_at: dt.datetime | None = None) -> IngestResult:
    """Validate and store a batch of wire events: new customers and merchants in one short transaction,
    then all the events in another.

    With ``skip_invalid=False`` (the API) a batch with any bad row raises ``InvalidRows`` and
    writes nothing. With ``skip_invalid=True`` (file import) the valid rows are stored and the
    bad ones come back in ``result.rejected``.
    """
    with _gc_paused():
        return _ingest_events(raws, skip_invalid=skip_invalid, received_at=received_at or timezone.now())


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


def _ingest_events(raws: Sequence[Any], *, skip_invalid: bool, received_at: dt.datetime) -> IngestResult:
    valid, errors = validate_batch(raws, now=received_at)
    if errors and not skip_invalid:
        raise InvalidRows(errors)
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

    campaigns = selectors.campaign_pks({r.campaign_id for r in rows})
    offers = selectors.offer_pks({r.offer_id for r in rows if r.offer_id})
    # Customers and merchants first, in their own short transaction: a concurrent batch that meets
    # the same new customer would otherwise wait for this whole batch's uncommitted insert to end.
    # A batch with a bad row never gets here, so it still writes nothing.
    with transaction.atomic():
        selectors.prefer_index_lookups()
        customers, result.customers_created = _ensure(
            Customer, "customer_id", {r.customer_id for r in rows if r.customer_id}, selectors.customer_pks,
            lambda ext: Customer(customer_id=ext, timezone="UTC"),
        )
        merchants, result.merchants_created = _ensure(
            Merchant, "merchant_id", {r.merchant_id for r in rows if r.merchant_id}, selectors.merchant_pks,
            # The merchant network sends the real name later; until then the id is the name.
            lambda ext: Merchant(merchant_id=ext, name=ext),
        )
    with transaction.atomic():
        selectors.prefer_index_lookups()
        records: list[tuple] = []
        gone: list[EventRow] = []
        for r in rows:
            record = (
                r.event_id, r.type, r.occurred_at, received_at,
                customers.get(r.customer_id) if r.customer_id else None,
                campaigns.get(r.campaign_id),
                merchants.get(r.merchant_id) if r.merchant_id else None,
                offers.get(r.offer_id) if r.offer_id else None,
                r.variant, r.amount, r.channel,
            )
            # A missing pk: the row was deleted after validation (a concurrent delete).
            if record[5] is None or (r.customer_id and record[4] is None) or (r.merchant_id and record[6] is None) \
                    or (r.offer_id and record[7] is None):
                gone.append(r)
            else:
                records.append(record)
        gone_ids = {r.event_id for r in gone}
        # Ids we already have are duplicates. After a batch that met some, look them up first (a re-sent
        # batch then locks and writes nothing); otherwise go straight to the COPY, which falls back to
        # the exact ON CONFLICT way if it meets one (a fresh stream saves a 5,000-id query per batch).
        global _expect_duplicates
        known = _known_event_ids([record[0] for record in records]) if records and _expect_duplicates else set()
        if known:
            records = [record for record in records if record[0] not in known]
        if records:
            dead = _lock_references(records)  # {record position: pks deleted meanwhile}; usually empty
            if dead:
                kept = []
                for record in records:
                    if any(record[i] in pks for i, pks in dead.items()):
                        gone.append(unique[record[0]])
                        gone_ids.add(record[0])
                    else:
                        kept.append(record)
                records = kept
        if gone:
            # Only a delete racing this batch gets here (the database refuses deletes of referenced rows).
            vanished = [
                RowError(index, "event", "refers to a campaign, customer, merchant or offer deleted while the batch was written")
                for index, row in valid if row.event_id in gone_ids
            ]
            if not skip_invalid:
                raise InvalidRows(vanished)
            result.rejected = sorted([*result.rejected, *vanished], key=lambda e: e.index)
        result.stored = _insert_events(records) if records else 0
        _expect_duplicates = bool(known) or result.stored < len(records)
    result.duplicates = sum(1 for _, row in valid if row.event_id not in gone_ids) - result.stored
    return result


# Per process: did the last batch meet event_ids stored already? (a hint for the next batch only)
_expect_duplicates = False

# The foreign-key columns of an events record (positions 4..7) and the tables they refer to.
_REFERENCE_COLUMNS = (4, 5, 6, 7)
_REFERENCED_MODELS = {4: Customer, 5: Campaign, 6: Merchant, 7: Offer}


def _lock_references(records: list[tuple]) -> dict[int, set[int]]:
    """On PostgreSQL, take FOR KEY SHARE locks on every row the batch refers to (one query per table,
    what a foreign key does per event) and return the pks that are gone, by record position.

    A concurrent delete of one of those rows then waits for this transaction, and the reference trigger
    on that table refuses it once our events are committed. Elsewhere nothing to do: SQLite has one
    writer at a time.
    """
    if connection.vendor != "postgresql":
        return {}
    dead: dict[int, set[int]] = {}
    for position in _REFERENCE_COLUMNS:
        pks = sorted({record[position] for record in records if record[position] is not None})
        if not pks:
            continue
        table = connection.ops.quote_name(_REFERENCED_MODELS[position]._meta.db_table)
        rows = selectors.fetch_by_keys(table, "id", "id", pks, lock=True)
        missing = set(pks).difference(pk for (pk,) in rows)
        if missing:
            dead[position] = missing
    return dead


def _ensure(model, field_name: str, external_ids: set[str], lookup, build) -> tuple[dict[str, int], int]:
    """{external id: pk}, creating the missing rows (set-based; safe against a concurrent batch)."""
    if not external_ids:
        return {}, 0
    pks = lookup(external_ids)
    missing = external_ids - pks.keys()
    if not missing:
        return pks, 0
    # A concurrent batch may create some of the same rows first (ignore_conflicts skips them, and says
    # nothing): ours carry this batch's own created_at, so the count below is of rows we created.
    stamp = timezone.now()
    rows = [build(ext) for ext in sorted(missing)]
    for row in rows:
        row.created_at = stamp
    model.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    created = lookup(missing)
    pks.update(created)
    return pks, model.objects.filter(pk__in=list(created.values()), created_at=stamp).count()


EVENT_COLUMNS = (
    "event_id", "type", "occurred_at", "received_at", "customer_id",
    "campaign_id", "merchant_id", "offer_id", "variant", "amount", "channel",
)


EVENT_COPY_TYPES = ["varchar", "varchar", "timestamptz", "timestamptz", "int8", "int8", "int8", "int8", "varchar", "numeric", "varchar"]


def _insert_events(records: list[tuple]) -> int:
    """Insert the rows, skipping event_ids we already have; return how many were stored."""
    if connection.vendor == "postgresql":
        return _copy_events(records)
    table = connection.ops.quote_name(Event._meta.db_table)
    columns = ", ".join(EVENT_COLUMNS)
    ops = connection.ops
    adapted = [
        (*r[:2], ops.adapt_datetimefield_value(r[2]), ops.adapt_datetimefield_value(r[3]), *r[4:9],
         None if r[9] is None else str(r[9]), *r[10:])
        for r in records
    ]
    placeholders = ", ".join(["%s"] * len(EVENT_COLUMNS))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT (event_id) DO NOTHING", adapted
        )
        return cursor.rowcount


def _known_event_ids(event_ids: list[str]) -> set[str]:
    """PostgreSQL: which of these event_ids are stored already (one indexed query). Elsewhere the
    INSERT's ``ON CONFLICT`` sorts them out: an empty set."""
    if connection.vendor != "postgresql":
        return set()
    table = connection.ops.quote_name(Event._meta.db_table)
    return {event_id for (event_id,) in selectors.fetch_by_keys(table, "event_id", "event_id", event_ids)}


def _copy_events(records: list[tuple]) -> int:
    """PostgreSQL: binary COPY straight into the events table, for rows expected to be new.

    COPY cannot skip conflicts, and ``INSERT ... ON CONFLICT`` from a staging table costs about a third
    more (a speculative insertion per row). If one of the ids is stored already (or a concurrent batch
    stores it now), the COPY fails on the unique index: it is rolled back to its savepoint and the batch
    goes the staging way, whose row count is exact under any race.
    """
    table = connection.ops.quote_name(Event._meta.db_table)
    try:
        with transaction.atomic(), psycopg_cursor() as cursor:
            _copy_binary(cursor, table, records)
        return len(records)
    except IntegrityError as exc:  # Django's wrapper of psycopg's error: only a duplicate id means "go staged"
        if not isinstance(exc.__cause__, UniqueViolation):
            raise
        return _insert_staged(records)


def _copy_binary(cursor, table: str, records: list[tuple]) -> None:
    # Binary COPY skips text formatting of timestamps and numbers: ~4x the rows/s of text COPY.
    with cursor.copy(f"COPY {table} ({', '.join(EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(EVENT_COPY_TYPES)
        for record in records:
            copy.write_row(record)


def _insert_staged(records: list[tuple]) -> int:
    """COPY into a temporary table, then ``INSERT ... ON CONFLICT (event_id) DO NOTHING``: exact counts
    even when another batch is writing the same ids right now."""
    table = connection.ops.quote_name(Event._meta.db_table)
    columns = ", ".join(EVENT_COLUMNS)
    with psycopg_cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS ingest_event_batch ("
            " event_id varchar(64), type varchar(24), occurred_at timestamptz, received_at timestamptz,"
            " customer_id bigint, campaign_id bigint, merchant_id bigint, offer_id bigint,"
            " variant varchar(64), amount numeric(14, 2), channel varchar(32)) ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE ingest_event_batch")
        _copy_binary(cursor, "ingest_event_batch", records)
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM ingest_event_batch ORDER BY event_id"
            " ON CONFLICT (event_id) DO NOTHING"
        )
        return cursor.rowcount


def chunked(items: Iterable, size: int) -> Iterable[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


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
