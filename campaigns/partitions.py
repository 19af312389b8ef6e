"""Monthly partitions of the events table (PostgreSQL only): creation ahead, the DEFAULT partition, retention.

On PostgreSQL ``campaigns_event`` is partitioned by range of ``occurred_at``, one partition per UTC month
(``campaigns_event_y2026m12``) plus ``campaigns_event_default`` for rows of months without one (migration
0011). Elsewhere (SQLite: the demo, the SQLite test leg) the table stays plain and this module does nothing.

``event_id`` stays unique across partitions through the key table ``campaigns_event_key`` (event_id primary
key, occurred_at), filled by a statement trigger on the events table (docs/ingestion.md, "Idempotency across
partitions"). Dropping a month keeps its keys, so a re-sent old event is still a duplicate.

The ``event_partitions`` job (``maintain``; docs/operations.md, "Event partitions"): creates the months from
last month to ``EVENT_PARTITIONS_AHEAD_MONTHS`` ahead (moving rows of those months out of the DEFAULT partition
first, or the CREATE would fail), and with ``EVENT_RETENTION_MONTHS`` set drops the months older than that,
but only once their aggregates exist and never the current or previous month.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

log = logging.getLogger(__name__)

EVENT_TABLE = "campaigns_event"
KEY_TABLE = "campaigns_event_key"
DEFAULT_PARTITION = "campaigns_event_default"
_NAME = re.compile(r"^campaigns_event_y(\d{4})m(\d{2})$")


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(month: dt.date, n: int) -> dt.date:
    year, index = divmod(month.year * 12 + month.month - 1 + n, 12)
    return dt.date(year, index + 1, 1)


def partition_name(month: dt.date) -> str:
    return f"campaigns_event_y{month.year:04d}m{month.month:02d}"


def _bound(month: dt.date) -> str:
    # A UTC instant, whatever the session's TimeZone: months are UTC months, like the aggregation's days.
    return f"'{month.isoformat()} 00:00:00+00'"


def is_partitioned(conn: Any = None) -> bool:
    """Is the events table partitioned here (PostgreSQL after migration 0011)?"""
    conn = conn or connection
    if conn.vendor != "postgresql":
        return False
    with conn.cursor() as cursor:
        cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [EVENT_TABLE])
        row = cursor.fetchone()
    return bool(row and row[0])


def month_partitions(conn: Any = None) -> dict[dt.date, str]:
    """{first day of month: partition name} of the monthly partitions that exist (not the DEFAULT one)."""
    conn = conn or connection
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)", [EVENT_TABLE],
        )
        names = [name for (name,) in cursor.fetchall()]
    months = {}
    for name in names:
        if match := _NAME.match(name):
            months[dt.date(int(match[1]), int(match[2]), 1)] = name
    return dict(sorted(months.items()))


def create_month(month: dt.date, conn: Any = None) -> int | None:
    """Create the partition of ``month`` if missing; returns the rows moved into it out of the DEFAULT
    partition (0 if none), or None if it existed already.

    PostgreSQL refuses to create a partition while the DEFAULT partition holds rows of its range. Those rows
    are moved in one transaction: detach the DEFAULT partition, create the month, move its rows (written
    into the partitions directly, so the key table's trigger on the parent does not fire: the keys stay as
    they are), attach the DEFAULT partition again. The detach locks the events table, so writers wait for
    the move instead of failing on a month without a partition.
    """
    conn = conn or connection
    month = month_of(month)
    name, low, high = partition_name(month), _bound(month), _bound(add_months(month, 1))
    if month in month_partitions(conn):  # the usual case: no lock taken, ingestion never waits
        return None
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        # One creator at a time (the job and a migration or a second run); a no-op if it exists meanwhile.
        cursor.execute("LOCK TABLE campaigns_event IN SHARE ROW EXCLUSIVE MODE")
        if month in month_partitions(conn):
            return None
        cursor.execute(
            f"SELECT count(*) FROM {DEFAULT_PARTITION} WHERE occurred_at >= {low} AND occurred_at < {high}"
        )
        waiting = int(cursor.fetchone()[0])
        if not waiting:
            cursor.execute(f"CREATE TABLE {name} PARTITION OF {EVENT_TABLE} FOR VALUES FROM ({low}) TO ({high})")
            return 0
        cursor.execute(f"ALTER TABLE {EVENT_TABLE} DETACH PARTITION {DEFAULT_PARTITION}")
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {EVENT_TABLE} FOR VALUES FROM ({low}) TO ({high})")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE occurred_at >= {low} AND occurred_at < {high}"
            f" RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        )
        moved = cursor.rowcount
        cursor.execute(f"ALTER TABLE {EVENT_TABLE} ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT")
    log.info("event partitions: created %s, moved %s rows into it from %s", name, moved, DEFAULT_PARTITION)
    return moved


def drop_month(month: dt.date, conn: Any = None) -> None:
    """Drop the partition of ``month`` with its events (the key table keeps their event_ids)."""
    conn = conn or connection
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {EVENT_TABLE} DETACH PARTITION {partition_name(month)}")
        cursor.execute(f"DROP TABLE {partition_name(month)}")


@dataclass
class MaintenanceReport:
    created: dict[dt.date, int] = field(default_factory=dict)  # month -> rows moved from DEFAULT
    dropped: list[dt.date] = field(default_factory=list)
    kept: dict[dt.date, str] = field(default_factory=dict)  # months past retention that stay, and why
    note: str = ""

    def lines(self) -> list[str]:
        if self.note:
            return [self.note]
        out = [f"created {partition_name(m)} ({moved} rows moved from the DEFAULT partition)"
               for m, moved in self.created.items()]
        out += [f"dropped {partition_name(m)}" for m in self.dropped]
        out += [f"kept {partition_name(m)}: {why}" for m, why in self.kept.items()]
        return out or ["nothing to do: every month up to the horizon exists, nothing past retention"]


def aggregated_month(month: dt.date) -> str | None:
    """None if ``month``'s aggregates exist; else why not.

    The rule: every day of the month is inside some successful ``daily_analytics`` run (an
    ``analytics_refresh`` row) computed after the month ended, so the aggregates hold all its events,
    including those that arrived late within the job's window.
    """
    from analytics import selectors as analytics_selectors

    last = add_months(month, 1) - dt.timedelta(days=1)
    after = dt.datetime.combine(add_months(month, 1), dt.time(), tzinfo=dt.UTC)
    covered = analytics_selectors.days_aggregated_after(month, last, computed_after=after)
    missing = (last - month).days + 1 - len(covered)
    if missing:
        return f"{missing} of its days have no daily_analytics run computed after the month ended"
    return None


def maintain(*, today: dt.date | None = None, ahead: int | None = None, retention: int | None = None,
             conn: Any = None) -> MaintenanceReport:
    """Create the months from last month to ``ahead`` months after this one; with ``retention`` (months
    kept before the current one) drop the older months whose aggregates exist. Idempotent."""
    conn = conn or connection
    report = MaintenanceReport()
    if not is_partitioned(conn):
        report.note = "event partitions are PostgreSQL-only: the events table here is a plain table; nothing to do"
        return report
    today = today or timezone.now().date()
    ahead = settings.EVENT_PARTITIONS_AHEAD_MONTHS if ahead is None else ahead
    retention = settings.EVENT_RETENTION_MONTHS if retention is None else retention
    current = month_of(today)
    for n in range(-1, ahead + 1):
        moved = create_month(add_months(current, n), conn)
        if moved is not None:
            report.created[add_months(current, n)] = moved
    if retention:
        # The current and previous month are never dropped, whatever the setting (late events land there).
        oldest_kept = add_months(current, -max(retention, 1))
        for month in month_partitions(conn):
            if month >= oldest_kept:
                break
            why = aggregated_month(month)
            if why:
                report.kept[month] = why
            else:
                drop_month(month, conn)
                report.dropped.append(month)
    return report


def event_partitions(*, progress: Any = None) -> int:
    """Create event partitions ahead and drop months past EVENT_RETENTION_MONTHS once aggregated (PostgreSQL)."""
    report = maintain()
    for line in report.lines():
        log.info("event partitions: %s", line)
    if progress is not None:
        progress.total(1)
        progress.advance(1)
    # The job's figure: partitions created plus partitions dropped.
    return len(report.created) + len(report.dropped)
