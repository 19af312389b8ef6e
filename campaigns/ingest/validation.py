"""Event validation: the wire format, one row's checks and a batch's checks with its id look-ups.

An event on the wire is a JSON object (see docs/ingestion.md)::

    {"event_id": "evt_1", "type": "conversion", "occurred_at": "2025-03-01T09:15:00+01:00",
     "customer_id": "user_42", "campaign_id": "camp_1", "merchant_id": "m_7",
     "offer_id": "off_25pct", "variant": "B", "amount": "19.90"}

``validate_event_row`` is the one row validator (the API and ``import_events`` both call it
through ``ingest_events``); ``validate_batch`` adds the campaign and offer look-ups (one query each).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import repeat
from typing import Any

from django.utils import timezone

from campaigns import selectors
from campaigns.models import EVENT_CHANNEL_RE, Event, event_channel_problem
from marketing_ai.errors import InvalidRows  # noqa: F401  (re-exported: callers import it from here)
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
AMOUNT_REQUIRED: dict[str, str] = {Event.Type.CONVERSION: "revenue", Event.Type.SPEND: "cost"}
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
    return _amount_value(raw.get("amount"), event_type, errors)


def _amount_value(value: Any, event_type: str | None, errors: list[tuple[str, str]]) -> Decimal | None:
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
    ids: list[str | None] = []  # event_id, campaign_id, customer_id, merchant_id, offer_id, variant; None = not given
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
    # Each of these is None only with an error named above.
    assert event_id is not None and event_type is not None and occurred_at is not None and campaign_id is not None
    return (
        EventRow(event_id, event_type, occurred_at, customer_id, campaign_id, merchant_id, offer_id, variant or "", amount,
                 channel),
        [],
    )


# --- a batch -------------------------------------------------------------------------------------


@dataclass(slots=True)
class CheckedRows:
    """A batch after the per-row checks, before its campaign and offer look-ups (``check_rows``)."""

    now: dt.datetime  # the validation clock (the batch's received_at)
    valid: list[tuple[int, EventRow]]
    errors: list[RowError]
    references: list[tuple[int, str | None, str | None]]  # (index, campaign_id, offer_id) to look up


def check_rows(raws: Sequence[Any], *, now: dt.datetime) -> CheckedRows:
    """Every row's own checks, without the database: ``import_events`` runs them in its reading thread
    while the previous batch is being written (the API in its request)."""
    # A batch of plain objects with known keys (the usual case) goes column by column first.
    if raws and set(map(type, raws)) == {dict} and _WIRE_FIELD_SET.issuperset(set().union(*raws)):
        columns = {name: list(map(dict.get, raws, repeat(name))) for name in WIRE_FIELDS}
        rows = _fast_columns(columns, len(raws), now)
        if rows is not None:
            return _all_valid(rows, now)
    return _check_each_row(raws, now)


def check_csv_rows(header: Sequence[str], records: Sequence[Sequence[str]], *, now: dt.datetime) -> CheckedRows:
    """``check_rows`` of CSV records (lists of cells under ``header``, whose names are wire fields) without
    making a dict per row first: the same rows, errors and references as ``check_rows`` of
    ``dict(zip(header, record))`` for each record (an empty cell is "not given", like a missing key)."""
    width = len(header)
    if records and _WIRE_FIELD_SET.issuperset(header) and set(map(len, records)) == {width}:
        rows = _fast_columns(dict(zip(header, zip(*records, strict=True), strict=True)), len(records), now)
        if rows is not None:
            return _all_valid(rows, now)
    return _check_each_row([dict(zip(header, values, strict=False)) for values in records], now)


def _all_valid(rows: list[EventRow], now: dt.datetime) -> CheckedRows:
    return CheckedRows(now, list(enumerate(rows)), [], [(i, row.campaign_id, row.offer_id) for i, row in enumerate(rows)])


_STR_OR_NONE = frozenset({str, type(None)})
_NOT_GIVEN = frozenset({None, ""})


def _id_column(values: Sequence[Any], match: Any = EXTERNAL_ID_RE.fullmatch) -> list[str | None] | None:
    """An id column the fast way: every value a string matching ``match`` or not given (None, "" -> None);
    None if any value is anything else."""
    if not _STR_OR_NONE.issuperset(set(map(type, values))):
        return None
    distinct = set(values)
    # Each distinct value once: a batch names a few campaigns and variants, and each customer many times.
    if not all(map(match, distinct - _NOT_GIVEN)):
        return None
    return [value or None for value in values] if "" in distinct else list(values)


def _fast_columns(columns: Mapping[str, Sequence[Any]], n: int, now: dt.datetime) -> list[EventRow] | None:
    """A whole batch the fast way, one column at a time (C-level passes instead of Python per field per
    row): the rows if every one of them is a row ``_fast_row`` accepts, with the same values; None as soon
    as one is not (the caller then checks row by row, which names every bad field).

    ``columns``: each wire field's values in row order (None where not given); a field not in it is not
    given in any row.
    """
    absent: list[Any] = [None] * n
    ids = [_id_column(columns.get(name, absent)) for name in _FAST_ID_FIELDS]
    event_ids, campaign_ids, customer_ids, merchant_ids, offer_ids, variants = ids
    if (event_ids is None or campaign_ids is None or customer_ids is None or merchant_ids is None
            or offer_ids is None or variants is None or None in event_ids or None in campaign_ids):
        return None
    types = columns.get("type", absent)
    if not _STR_OR_NONE.issuperset(set(map(type, types))) or not TYPES.issuperset(types):
        return None
    if None in customer_ids and any(c is None and t != Event.Type.SPEND for c, t in zip(customer_ids, types, strict=True)):
        return None
    occurred = columns.get("occurred_at", absent)
    if set(map(type, occurred)) != {str}:
        return None
    try:
        parsed = list(map(dt.datetime.fromisoformat, occurred))
        if None in map(dt.datetime.utcoffset, parsed):
            return None
        occurred_at = list(map(dt.datetime.astimezone, parsed, repeat(dt.UTC)))
    except (ValueError, OverflowError):
        return None
    if max(occurred_at) > now + MAX_FUTURE_SKEW:
        return None
    amount_column = columns.get("amount", absent)
    if not _STR_OR_NONE.issuperset(set(map(type, amount_column))):
        return None
    # An amount on exactly the rows whose type requires one (conversion, spend), each a valid one.
    given = [i for i, value in enumerate(amount_column) if value]
    if given != [i for i, event_type in enumerate(types) if event_type in AMOUNT_REQUIRED]:
        return None
    amounts: list[Decimal | None] = [None] * n
    errors: list[tuple[str, str]] = []
    for i in given:
        amounts[i] = _amount_value(amount_column[i], types[i], errors)
        if errors:
            return None
    channel_column = columns.get("channel")
    if channel_column is None:
        channels: Sequence[str] = [""] * n
    else:
        checked_channels = _id_column(channel_column, _is_event_channel)
        if checked_channels is None:
            return None
        channels = [channel or "" for channel in checked_channels]
    return list(map(EventRow, event_ids, types, occurred_at, customer_ids, campaign_ids, merchant_ids, offer_ids,
                    [variant or "" for variant in variants], amounts, channels))


def _check_each_row(raws: Sequence[Any], now: dt.datetime) -> CheckedRows:
    valid: list[tuple[int, EventRow]] = []
    errors: list[RowError] = []
    references: list[tuple[int, str | None, str | None]] = []
    for index, raw in enumerate(raws):
        # The common valid row in one call (what validate_event_row does first); the rest the detailed way.
        row = _fast_row(raw, now)
        if row is None:
            row, row_errors = _detailed_row(raw, now)
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
    return CheckedRows(now, valid, errors, references)


def resolve_references(checked: CheckedRows) -> tuple[list[tuple[int, EventRow]], list[RowError], dict[str, int], dict[str, int]]:
    """The campaign and offer look-ups of a checked batch (one query each): the valid rows, every error
    (unknown ids included, also on rows that are bad otherwise) ordered by index, and the
    {campaign_id: pk} and {offer_id: pk} maps found (the store reuses them)."""
    references = checked.references
    campaigns, offers = selectors.campaign_and_offer_pks((c for _, c, _ in references if c), (o for _, _, o in references if o))
    errors = list(checked.errors)
    unresolved: set[int] = set()
    for index, campaign_id, offer_id in references:
        if campaign_id and campaign_id not in campaigns:
            errors.append(RowError(index, "campaign_id", f"unknown campaign {campaign_id!r}"))
            unresolved.add(index)
        if offer_id and offer_id not in offers:
            errors.append(RowError(index, "offer_id", f"unknown offer {offer_id!r}"))
            unresolved.add(index)
    if unresolved:
        errors.sort(key=lambda e: e.index)  # stable: a row's field errors keep their order
        valid = [(i, row) for i, row in checked.valid if i not in unresolved]
    else:
        valid = checked.valid  # rows were checked in index order, and so were their errors
    return valid, errors, campaigns, offers


def validate_batch(raws: Sequence[Any], *, now: dt.datetime | None = None) -> tuple[list[tuple[int, EventRow]], list[RowError]]:
    """Validate every row and resolve campaign and offer ids (one query each).

    Returns the valid rows with their batch index and every error (every bad field of every
    row, including unknown ids on rows that are bad otherwise), ordered by index.
    """
    valid, errors, _, _ = resolve_references(check_rows(raws, now=now or timezone.now()))
    return valid, errors
