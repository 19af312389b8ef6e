"""The database-specific fast paths, each beside its portable path, and raw psycopg access.

One function per kind of work, both branches side by side (PostgreSQL; elsewhere, i.e. SQLite for the
demo and the SQLite test leg): ``rows_by_keys`` (key look-ups), ``utc_date_sql`` (a timestamp's UTC day
in SQL), ``fetch_frame`` (query -> pandas),
``copy_in`` (frames -> a table), ``insert_new_rows`` (tuples -> a table, skipping stored keys),
``upsert_from_query`` (a query's rows -> tables, updating rows already there), ``leave_room_for_updates``
(page fill of tables updated in place), ``advisory_lock`` (a lock held by this database session),
``lock_keys_for_transaction`` (locks on text keys until commit).
Callers never test ``connection.vendor`` for these.

COPY and server-bound array parameters need the psycopg cursor itself, but a cursor taken from
``connection.connection`` (or ``cursor.cursor``) bypasses two things Django does for every
``connection.cursor()``: the health check once per request (a connection the server dropped, e.g.
after a PostgreSQL restart, is replaced before use) and error wrapping (a failure arrives as
``django.db.OperationalError`` and marks the connection, so Django closes it when the request ends
instead of handing the dead connection to the next request). ``psycopg_cursor`` keeps both.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import QuerySet
from psycopg.errors import UniqueViolation

log = logging.getLogger(__name__)


@contextmanager
def psycopg_cursor(*, server_binding: bool = False) -> Iterator[psycopg.Cursor]:
    """PostgreSQL: a psycopg 3 cursor on Django's connection (health-checked, errors wrapped).

    ``server_binding``: parameters are bound by the server (a 5,000-id array travels as one
    parameter instead of being quoted into the SQL text by Django's client-side cursor).
    """
    with connection.cursor() as django_cursor, connection.wrap_database_errors:
        if server_binding:
            with psycopg.Cursor(connection.connection) as cursor:
                yield cursor
        else:
            yield django_cursor.cursor


# --- look-ups ------------------------------------------------------------------------------------

KEYS_PER_QUERY = 5000  # keys per IN (...) list where there are no array parameters (SQLite's limit is 32,766)


def rows_by_keys(table: str, key: str, columns: str, keys: Sequence[Any], *, lock: bool = False) -> list[tuple]:
    """``columns`` of the rows of ``table`` whose ``key`` is one of ``keys`` (identifiers quoted by the caller).

    PostgreSQL: one query with one server-bound array parameter (``key = ANY(%s)``): Django's cursor
    would quote 5,000 ids into the SQL text and PostgreSQL would parse them all. ``lock`` takes
    ``FOR KEY SHARE`` on each row found (what a foreign-key check does), in key order.
    Elsewhere: ``IN (...)`` lists of ``KEYS_PER_QUERY`` keys; ``lock`` is moot (SQLite has one writer
    at a time).
    """
    if not keys:
        return []
    if connection.vendor == "postgresql":
        with psycopg_cursor(server_binding=True) as cursor:
            cursor.execute(_rows_by_keys_sql(table, key, columns, lock), [array_parameter(keys)])
            return cursor.fetchall()
    found: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(keys), KEYS_PER_QUERY):
            chunk = list(keys[start : start + KEYS_PER_QUERY])
            cursor.execute(f"SELECT {columns} FROM {table} WHERE {key} IN ({', '.join(['%s'] * len(chunk))})", chunk)
            found.extend(cursor.fetchall())
    return found


def rows_by_keys_all(queries: Sequence[tuple[str, str, str, Sequence[Any], bool]]) -> list[list[tuple]]:
    """``rows_by_keys`` of several ``(table, key, columns, keys, lock)`` at once, in that order.

    PostgreSQL: sent together and read together (``pipeline``): one round trip instead of one per query.
    With a writer thread waiting for the GIL after every reply and the server's CPU shared, a round trip
    cost 5-10 ms at load 4-5 on the 2-core machine, as much as the look-up itself. Elsewhere one
    ``rows_by_keys`` after the other.
    """
    if connection.vendor != "postgresql":
        return [rows_by_keys(table, key, columns, keys, lock=lock) for table, key, columns, keys, lock in queries]
    with pipeline(), ExitStack() as stack:
        cursors: list[psycopg.Cursor | None] = []
        for table, key, columns, keys, lock in queries:
            if not keys:
                cursors.append(None)
                continue
            cursor = stack.enter_context(psycopg_cursor(server_binding=True))
            cursor.execute(_rows_by_keys_sql(table, key, columns, lock), [array_parameter(keys)])
            cursors.append(cursor)
        return [cursor.fetchall() if cursor is not None else [] for cursor in cursors]


def _rows_by_keys_sql(table: str, key: str, columns: str, lock: bool) -> str:
    lock_clause = f" ORDER BY {key} FOR KEY SHARE" if lock else ""
    return f"SELECT {columns} FROM {table} WHERE {key} = ANY(%s){lock_clause}"


@contextmanager
def pipeline() -> Iterator[None]:
    """PostgreSQL: the statements run inside go to the server without waiting for each reply (psycopg's
    pipeline mode); a reply is waited for when it is read, so statements whose results are not needed in
    between (``SET LOCAL``, ``BEGIN``, independent look-ups) share one round trip. No COPY inside.
    Elsewhere nothing."""
    if connection.vendor != "postgresql":
        yield
        return
    # Django's cursor first: its once-per-request health check replaces a connection the server dropped
    # (psycopg_cursor's reason); the pipeline of a dead connection would fail the request instead.
    with connection.cursor(), connection.wrap_database_errors, connection.connection.pipeline():
        yield


def array_parameter(keys: Sequence[Any]) -> Any:
    """PostgreSQL: the keys as one array parameter, for ``= ANY(%s)``.

    Whole numbers and strings without a double quote or backslash go as the text of an array literal
    (``{1,2}``, ``{"a","b"}``; its type comes from the column it is compared with), built by one join:
    psycopg adapts a list element by element in Python, which cost 5 ms per 4,000 ids, more than the
    query's index probes (measured 6.8 ms against 2.1 ms). Anything else goes as the list.
    """
    kinds = set(map(type, keys))
    if kinds == {int}:
        return "{" + ",".join(map(str, keys)) + "}"
    if kinds == {str}:
        together = "".join(keys)
        if '"' not in together and "\\" not in together:
            return '{"' + '","'.join(keys) + '"}'
    return list(keys)


# --- reads into pandas ---------------------------------------------------------------------------


def utc_date_sql(column: str) -> str:
    """SQL for the UTC calendar day of a timestamp column, as a date (PostgreSQL) or ``YYYY-MM-DD`` text
    (SQLite stores UTC timestamps as text); ``fetch_frame`` gives both back as ``YYYY-MM-DD`` text."""
    if connection.vendor == "postgresql":
        return f"(({column}) AT TIME ZONE 'UTC')::date"
    return f"date({column})"


_NUMERIC_TYPES = {"int2", "int4", "int8", "float4", "float8", "numeric"}


def fetch_frame(sql: str, params: Sequence[Any], columns: list[str] | None = None,
                moments: Collection[str] = ()) -> pd.DataFrame:
    """Run a query and load its rows straight into pandas, without the ORM's per-row conversion.

    Columns are named by the query unless ``columns`` names them by position. Numbers come as numbers
    (NULL as NaN); every other column (text, dates, times) as text, which callers parse with
    ``pd.to_datetime`` (SQLite returns dates and times as text anyway).

    PostgreSQL: ``COPY (query) TO STDOUT`` as CSV, parsed by pandas' C reader. At a million customers it
    beats building a Python tuple per row and converting each date and decimal on the way (measured,
    1M customers and 10.9M events: ``customer_frame_pair`` 20 s -> 14 s). Column types come from a
    ``LIMIT 0`` run of the same query, so that only numeric columns are parsed as numbers: an external
    id such as ``0042`` stays text. Elsewhere: ``fetchall`` into ``DataFrame.from_records``.

    ``moments``: columns (by their final names) holding ISO timestamps as text, returned as UTC datetimes. On
    PostgreSQL they are parsed while the rows are read, a block of rows at a time, so a million rows' text
    never exists at once: for the eight timestamp columns of the training's customer frames at a million
    customers this lowered the frames' peak from 2,502 to 2,301 MB (measured; docs/BENCHMARKS.md, scaling).
    """
    if connection.vendor == "postgresql":
        return _fetch_csv(sql, params, columns, moments)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = columns or [d[0] for d in cursor.description]
        frame = pd.DataFrame.from_records(cursor.fetchall(), columns=names)
    for name in moments:
        frame[name] = parse_utc_moments(frame[name])
    return frame


def parse_utc_moments(values: pd.Series) -> pd.Series:
    """Moments as UTC datetimes: ISO timestamps (text, any offset; empty or None = missing), or numbers of
    seconds since 1970-01-01 UTC (NaN = missing), the form PostgreSQL reads send (``optimizer.features.moment_column``)."""
    if pd.api.types.is_numeric_dtype(values):
        # Not pd.to_datetime(values, unit="s"): for a missing value pandas 2.3 leaves one slot of a np.empty array
        # unset and then rounds the whole array with overflow checks on, so whatever freed memory held there (a
        # COPY's buffer, say) could raise FloatingPointError: model training failed now and then
        # (tests/platform/test_db.py reproduces it). Whole microseconds instead: a double holds today's seconds to
        # ~0.2 microseconds, so rounding gives back the stored microsecond exactly.
        seconds = values.to_numpy(dtype=np.float64)
        missing = np.isnan(seconds)
        micros = np.rint(np.where(missing, 0.0, seconds) * 1_000_000).astype(np.int64)
        micros[missing] = np.iinfo(np.int64).min  # NaT
        moments = pd.Series(micros.view("M8[us]"), index=values.index, name=values.name)
        return moments.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    return pd.to_datetime(values, utc=True, format="ISO8601")


FETCH_BLOCK_ROWS = 200_000  # rows parsed at a time when a fetch converts moments


def _fetch_csv(sql: str, params: Sequence[Any], columns: list[str] | None, moments: Collection[str]) -> pd.DataFrame:
    with psycopg_cursor() as raw:
        raw.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0", params)
        description = raw.description or []
        names = [d.name for d in description]
        numeric = {d.name for d in description
                   if (t := raw.adapters.types.get(d.type_code)) is not None and t.name in _NUMERIC_TYPES}
        buffer = copy_out(raw, f"COPY ({sql}) TO STDOUT (FORMAT csv, HEADER true)", params)
    buffer.seek(0)
    final = list(columns) if columns else names
    if not buffer.getbuffer().nbytes:
        return pd.DataFrame(columns=final)
    # Only an empty field is missing (NULL); "NA" or "null" are values like any other. A row of one NULL column is
    # an empty line, and a row all the same: it is not skipped.
    read = {"dtype": {n: str for n in names if n not in numeric}, "keep_default_na": False, "na_values": [""],
            "skip_blank_lines": False}
    if not moments:
        frame = pd.read_csv(buffer, **read)
        frame.columns = final
        return frame
    blocks = []
    for block in pd.read_csv(buffer, chunksize=FETCH_BLOCK_ROWS, **read):
        block.columns = final
        for name in moments:
            block[name] = parse_utc_moments(block[name])
        blocks.append(block)
    if not blocks:
        return pd.DataFrame(columns=final)
    return pd.concat(blocks, ignore_index=True) if len(blocks) > 1 else blocks[0]


def copy_out(cursor: psycopg.Cursor, statement: str, params: Sequence[Any] = ()) -> io.BytesIO:
    """Everything a ``COPY ... TO STDOUT`` sends, in a buffer (PostgreSQL).

    psycopg hands a COPY's output over one row at a time, each through a generator and a wait for the
    socket: for 5 M short rows that took 2.8 s where psql takes 1.5 s. Here psycopg's ``read()`` waits
    for data only when none has arrived; every row libpq has already received is then taken straight from
    it (non-blocking ``get_copy_data``): 1.3 s for the same rows (``bench/copy_read.py``). When libpq reports the end there, the
    final results are read here as psycopg would (an error the server raised mid-COPY is raised).
    """
    buffer = io.BytesIO()
    pgconn = cursor.connection.pgconn
    with cursor.copy(statement, params) as copy:
        while block := copy.read():  # waits, then gives one row; b"" at the end (psycopg read the results)
            buffer.write(block)
            size, data = pgconn.get_copy_data(1)  # 1: only rows already received, never waits
            while size > 0:
                buffer.write(data)
                size, data = pgconn.get_copy_data(1)
            if size == -2:
                raise psycopg.OperationalError(pgconn.get_error_message(cursor.connection.info.encoding))
            if size == -1:  # the end was among the rows received: the COPY's own results are ours to read
                failure = None
                while (result := pgconn.get_result()) is not None:
                    if result.status != psycopg.pq.ExecStatus.COMMAND_OK and failure is None:
                        failure = psycopg.errors.error_from_result(result, encoding=cursor.connection.info.encoding)
                if failure is not None:
                    raise failure
                break
    return buffer


# --- bulk writes ---------------------------------------------------------------------------------


def copy_in(table: str, chunks: Iterable[pd.DataFrame], *, advanced: Callable[[int], None] | None = None,
            skip_fk_triggers: bool = False) -> int:
    """Write frames (columns = the table's column names) into ``table``; returns the rows written.

    PostgreSQL: all the chunks as ONE text-format ``COPY``, each chunk formatted vectorised
    (``copy_text``). ``skip_fk_triggers``: the caller resolved every foreign key in this transaction,
    so when the role may (a superuser), the per-row foreign-key triggers are switched off for the COPY
    (``session_replication_role``, local to the transaction): at 10 million events they would
    otherwise cost more than the COPY itself. Elsewhere: one ``executemany`` INSERT per chunk, values
    adapted as Django stores them (``insert_values``). ``advanced(n)`` is called after each chunk.
    """
    quote = connection.ops.quote_name
    written = 0
    chunks = iter(chunks)
    first = next(chunks, None)
    if first is None:
        return 0
    if connection.vendor != "postgresql":
        for rows in itertools.chain([first], chunks):
            _insert_frame(table, rows)
            written += len(rows)
            if advanced:
                advanced(len(rows))
        return written
    with connection.cursor() as cursor:
        triggers_off = False
        if skip_fk_triggers:
            cursor.execute("SELECT current_setting('is_superuser') = 'on'")
            triggers_off = bool(cursor.fetchone()[0])
        if triggers_off:
            cursor.execute("SET LOCAL session_replication_role = replica")
        try:
            names = ", ".join(quote(c) for c in first.columns)
            # The psycopg 3 cursor under Django's wrapper, its errors wrapped like Django's own.
            with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN") as copy:
                for rows in itertools.chain([first], chunks):
                    copy.write(copy_text(rows))
                    written += len(rows)
                    if advanced:
                        advanced(len(rows))
        finally:
            if triggers_off:
                cursor.execute("SET LOCAL session_replication_role = DEFAULT")
    return written


def copy_text(rows: pd.DataFrame) -> str:
    """COPY text format: tab-separated, ``\\N`` for NULL; columns formatted vectorised.

    Times go as UTC ISO text; NaN and NA as NULL. A tab, newline or backslash in a text value would need
    escaping: such a value is refused (ids and names never hold one).
    """
    columns = []
    for name, column in rows.items():
        missing = column.isna().to_numpy()
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            text = np.datetime_as_string(column.dt.tz_convert("UTC").to_numpy("datetime64[us]"), unit="us") + "Z"
            values = text.astype(object)
        elif isinstance(column.dtype, pd.Int64Dtype):
            values = column.to_numpy(dtype=np.int64, na_value=0).astype(str).astype(object)
        elif column.dtype.kind in "iufb":  # numpy numbers and booleans: numpy's own C formatting
            values = column.to_numpy().astype(str).astype(object)
        else:
            strings = column.astype(object).where(~missing, "").astype(str)
            if strings.str.contains(r"[\t\n\r\\]", regex=True).any():
                raise ValueError(f"{name}: tabs, newlines and backslashes are not allowed in bulk-written values")
            values = strings.to_numpy(dtype=object)
        if missing.any():
            values[missing] = "\\N"
        columns.append(values.tolist())
    return "".join(f"{line}\n" for line in map("\t".join, zip(*columns, strict=True)))


def _insert_frame(table: str, rows: pd.DataFrame) -> None:
    """One executemany INSERT of a frame, values adapted as Django would.

    Django stores datetimes on SQLite as naive UTC text and Decimals as their text, so those are
    formatted here in one vectorised step instead of one model instance per row.
    """
    values = {}
    for name, column in rows.items():
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            column = column.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        elif column.dtype == object:
            sample = column.dropna().head(1).tolist()
            if sample and not isinstance(sample[0], str):  # times, dates, decimals: Django's own adaptation
                column = column.map(_sqlite_value, na_action="ignore")
        values[name] = column.astype(object).where(column.notna(), None)
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in rows.columns)}) "
        f"VALUES ({', '.join(['%s'] * len(rows.columns))})"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, list(zip(*(v.tolist() for v in values.values()), strict=True)))


def _sqlite_value(value: Any) -> Any:
    ops = connection.ops
    if isinstance(value, dt.datetime):
        return ops.adapt_datetimefield_value(value)
    if isinstance(value, dt.time):
        return ops.adapt_timefield_value(value)
    if isinstance(value, (dt.date, Decimal)):
        return str(value)
    return value


def insert_new_rows(table: str, columns: Sequence[str], rows: list[tuple], *, key: str,
                    copy_types: Sequence[str], key_table: str | None = None,
                    partition_key: str = "") -> int:
    """Insert tuples into ``table``, skipping those whose unique ``key`` is stored already; returns how
    many were stored (exact, even when another transaction writes the same keys right now).

    PostgreSQL: binary COPY straight into the table (``copy_types``: the columns' PostgreSQL types),
    for rows expected to be new. COPY cannot skip conflicts, and ``INSERT ... ON CONFLICT`` from a
    staging table costs about a third more (a speculative insertion per row). If one of the keys is
    stored already (or a concurrent batch stores it now), the COPY fails on the unique index: it is
    rolled back to its savepoint and the rows go the staging way: binary COPY into a temporary table,
    then ``INSERT ... SELECT ... ORDER BY key ON CONFLICT (key) DO NOTHING``.
    ``key_table`` (PostgreSQL, a partitioned ``table``, whose unique indexes must include the partition
    key): the key is unique through this table instead (``key`` its primary key, then
    ``partition_key``), which a statement trigger on ``table`` fills. The COPY is the same (the trigger's
    insert fails on a stored key as the unique index did); the staged way first claims the keys
    (``INSERT INTO key_table ... ON CONFLICT DO NOTHING RETURNING``) and writes the rows it claimed, telling
    the trigger (``campaigns.event_keys_claimed``) that its statement's keys are in already.
    Elsewhere: one ``executemany`` of ``INSERT ... ON CONFLICT (key) DO NOTHING``, datetimes and
    decimals adapted as Django stores them.
    """
    if not rows:
        return 0
    quote = connection.ops.quote_name
    names = ", ".join(quote(c) for c in columns)
    if connection.vendor != "postgresql":
        ops = connection.ops
        adapted = [
            tuple(ops.adapt_datetimefield_value(v) if isinstance(v, dt.datetime)
                  else str(v) if isinstance(v, Decimal) else v for v in row)
            for row in rows
        ]
        placeholders = ", ".join(["%s"] * len(columns))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {quote(table)} ({names}) VALUES ({placeholders}) ON CONFLICT ({quote(key)}) DO NOTHING",
                adapted,
            )
            return cursor.rowcount
    try:
        with transaction.atomic(), psycopg_cursor() as cursor:
            _copy_binary(cursor, quote(table), names, copy_types, rows)
        return len(rows)
    except IntegrityError as exc:  # Django's wrapper of psycopg's error: only a duplicate key means "go staged"
        if not isinstance(exc.__cause__, UniqueViolation):
            raise
    staging = quote(f"staging_{table}")
    with psycopg_cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS"
            f" AS SELECT {names} FROM {quote(table)} WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {staging}")
        _copy_binary(cursor, staging, names, copy_types, rows)
        if key_table is None:
            cursor.execute(
                f"INSERT INTO {quote(table)} ({names}) SELECT {names} FROM {staging} ORDER BY {quote(key)}"
                f" ON CONFLICT ({quote(key)}) DO NOTHING"
            )
            return cursor.rowcount
        # Claim in key order (concurrent batches queue on the same keys, no deadlock); a key a concurrent
        # batch holds uncommitted waits for it, then counts as stored if that batch commits.
        key_names = ", ".join(quote(c) for c in (key, partition_key))
        cursor.execute("SELECT set_config('campaigns.event_keys_claimed', 'on', true)")
        cursor.execute(
            f"WITH claimed AS (INSERT INTO {quote(key_table)} ({key_names}) SELECT {key_names} FROM {staging}"
            f" ORDER BY {quote(key)} ON CONFLICT DO NOTHING RETURNING {quote(key)})"
            f" INSERT INTO {quote(table)} ({names}) SELECT {', '.join(f's.{c}' for c in names.split(', '))}"
            f" FROM {staging} s JOIN claimed USING ({quote(key)})"
        )
        stored = cursor.rowcount
        cursor.execute("SELECT set_config('campaigns.event_keys_claimed', 'off', true)")
        return stored


def insert_missing_keys(table: str, key: str, keys: Sequence[str], values: dict[str, tuple[Any, str]], *,
                        key_copies: Sequence[str] = ()) -> list[str]:
    """Insert a row for each of ``keys`` that ``table`` does not have yet (``key``: a unique column; identifiers
    unquoted); return the keys this call inserted, exact even when a concurrent transaction inserts some of
    them first (those are not ours). The other columns: ``values`` ({column: (database value, SQL type)}, the
    same in every row) and ``key_copies`` (columns that take the key itself, e.g. a name defaulting to the id).

    PostgreSQL: one statement, ``INSERT ... SELECT`` from the keys as one array parameter, ``WHERE NOT
    EXISTS`` (no speculative insertion or sequence value spent on the rows there already, the usual case)
    ``ON CONFLICT DO NOTHING RETURNING``; the keys are taken in sorted order, so concurrent callers queue on
    the same keys instead of deadlocking. It is the look-up and the insert of the missing ones in one round
    trip, without a model instance per row. Elsewhere: the look-up (``rows_by_keys``), then one
    ``executemany`` INSERT of the missing ones (SQLite: one writer at a time, so they are all ours).
    """
    if not keys:
        return []
    quote = connection.ops.quote_name
    columns = [key, *key_copies, *values]
    names = ", ".join(quote(c) for c in columns)
    if connection.vendor == "postgresql":
        selected = ", ".join(["k"] * (1 + len(key_copies)) + [f"%s::{cast}" for _, cast in values.values()])
        with psycopg_cursor(server_binding=True) as cursor:
            cursor.execute(
                f"INSERT INTO {quote(table)} ({names}) SELECT {selected} FROM unnest(%s::text[]) AS k"
                f" WHERE NOT EXISTS (SELECT 1 FROM {quote(table)} t WHERE t.{quote(key)} = k) ORDER BY k"
                f" ON CONFLICT ({quote(key)}) DO NOTHING RETURNING {quote(key)}",
                [*(value for value, _ in values.values()), array_parameter(sorted(keys))],
            )
            return [inserted for (inserted,) in cursor.fetchall()]
    quoted_key = quote(key)
    present = {found for (found,) in rows_by_keys(quote(table), quoted_key, quoted_key, keys)}
    missing = sorted(set(keys) - present)
    constants = [value for value, _ in values.values()]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {quote(table)} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
            f" ON CONFLICT ({quoted_key}) DO NOTHING",
            [[k] * (1 + len(key_copies)) + constants for k in missing],
        )
    return missing


def key_lookup_table(table: str, key_table: str) -> str:
    """Where to look a unique key up: PostgreSQL's ``key_table`` (the keys of a partitioned ``table``: one
    index probe instead of one per partition); elsewhere ``table`` itself, which has the unique index."""
    return key_table if connection.vendor == "postgresql" else table


def _copy_binary(cursor: psycopg.Cursor, table: str, names: str, types: Sequence[str], rows: list[tuple]) -> None:
    # Binary COPY skips text formatting of timestamps and numbers: ~4x the rows/s of text COPY.
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def make_unlogged(table: str, using: Any = None) -> None:
    """Make ``table`` a staging area whose rows need not survive a crash (a fan-out run's parts).

    PostgreSQL: ``ALTER TABLE ... SET UNLOGGED``: its writes skip the write-ahead log (about half the cost
    of a COPY), it is not copied to a streaming replica and a crash empties it, which a staging area can
    afford (a run that dies is run again; nothing reads staged rows but the run's own swap).
    Elsewhere (SQLite): an ordinary table; it has no such option, and the demo does not fan out.
    ``using``: the connection (a migration's ``schema_editor.connection``), default Django's.
    """
    conn = using or connection
    if conn.vendor != "postgresql":
        return
    with conn.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {conn.ops.quote_name(table)} SET UNLOGGED")


def leave_room_for_updates(table: str, fillfactor: int, using: Any = None) -> bool:
    """Make new pages of ``table`` only ``fillfactor`` percent full; True if the database did (PostgreSQL).

    PostgreSQL: ``ALTER TABLE ... SET (fillfactor = N)``. For a table whose rows are rewritten in place
    (the aggregates: a re-run of a day updates every row of that day, and those rows sit together in the
    same pages), the free room lets each new row version go on its own page as a HOT update: no new
    entry in any of the table's indexes and no index bloat. At 100 (the default) a page has no room, so
    every update also inserted into all four indexes of the trend table (measured, 1.1M events: 1 % of
    the updates were HOT; at 50, 99.6 %, and the one-day aggregation took 0.10 s instead of 0.17-0.41 s,
    docs/BENCHMARKS.md). Pages already written keep their rows until rewritten (``TRUNCATE`` and a
    backfill, or ``VACUUM FULL``). Elsewhere (SQLite): no such setting; False.
    ``using``: the connection (a migration's ``schema_editor.connection``), default Django's.
    """
    if not 10 <= fillfactor <= 100:
        raise ValueError(f"fillfactor must be between 10 and 100, got {fillfactor}")
    conn = using or connection
    if conn.vendor != "postgresql":
        return False
    with conn.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {conn.ops.quote_name(table)} SET (fillfactor = {int(fillfactor)})")
    return True


def empty_table(table: str) -> None:
    """Delete every row of ``table`` (a staging area between runs).

    PostgreSQL: ``TRUNCATE``: no per-row work and the space is returned at once (a DELETE of a few hundred
    thousand staged rows cost about a second and left them for vacuum); it waits for a transaction still
    writing the table to end. Elsewhere: ``DELETE`` (SQLite empties a table without a WHERE at once too).
    """
    quoted = connection.ops.quote_name(table)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {quoted}" if connection.vendor == "postgresql" else f"DELETE FROM {quoted}")


# --- locks ---------------------------------------------------------------------------------------


def lock_keys_for_transaction(namespace: int, keys: Sequence[str]) -> None:
    """Hold a lock on each text key until this transaction ends, taken in one order (no deadlock between
    two transactions locking overlapping keys).

    PostgreSQL: transaction-level advisory locks on (``namespace``, ``hashtext(key)``), the two-integer
    lock space, which never meets ``advisory_lock``'s one-bigint keys; two keys with the same hash only
    wait for each other more than needed. Elsewhere nothing: SQLite lets one transaction write at a time.
    """
    if connection.vendor != "postgresql" or not keys:
        return
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_advisory_xact_lock(%s, h) FROM "
            "(SELECT DISTINCT hashtext(k) AS h FROM unnest(%s::text[]) AS k ORDER BY h) AS ordered",
            [namespace, list(keys)],
        )


@contextmanager
def advisory_lock(key: int, *, wait: float = 0, before_waiting: Callable[[], None] | None = None) -> Iterator[bool]:
    """Yield True if this session holds the lock ``key``, False if another holds it (tried for ``wait`` s).

    PostgreSQL: a session-level advisory lock, released by the server if the process dies (so a crashed
    worker never leaves it held). ``before_waiting`` runs once when the first try fails (e.g. to end an
    orphaned session that holds it). Elsewhere (SQLite: one process, demo and bare tests): a lock in
    this process (``process_lock``).
    """
    if connection.vendor != "postgresql":
        with process_lock(key) as got:
            yield got
        return

    def try_lock() -> bool:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", [key])
            return bool(cur.fetchone()[0])

    got = try_lock()
    if not got and before_waiting is not None:
        before_waiting()
    deadline = time.monotonic() + wait
    while not got and time.monotonic() < deadline:
        time.sleep(0.25)
        got = try_lock()
    try:
        yield got
    finally:
        if got:
            try:
                with connection.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:  # the session is gone, and its locks with it
                log.warning("advisory lock %s: session lost before unlock (the server freed the lock)", key)


def advisory_lock_holder(key: int) -> int | None:
    """PostgreSQL: the backend pid holding the advisory lock ``key`` in this database, or None.
    Elsewhere None: no other session can hold a process lock."""
    if connection.vendor != "postgresql":
        return None
    # A bigint advisory key shows in pg_locks as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND classid = 0 AND objid = %s::bigint::oid"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [key],
        )
        row = cur.fetchone()
    return row[0] if row else None


@contextmanager
def process_lock(key: int | str) -> Iterator[bool]:
    """A lock within this process: True for the first holder of ``key``, False while it is held."""
    got = key not in _PROCESS_LOCKS
    if got:
        _PROCESS_LOCKS.add(key)
    try:
        yield got
    finally:
        if got:
            _PROCESS_LOCKS.discard(key)


_PROCESS_LOCKS: set[int | str] = set()


# --- upserts from a query ------------------------------------------------------------------------



def _column(meta: Any, field_name: str) -> str:
    """The database column of a concrete field (a foreign key's ``campaign`` is ``campaign_id``)."""
    field = meta.get_field(field_name)
    assert isinstance(field, models.Field), f"{field_name} is not a concrete field"
    return str(field.column)


@dataclass(frozen=True)
class UpsertTarget:
    """One table filled from the rows of a source query (see ``upsert_from_query``).

    ``select``: PostgreSQL's way, the SELECT over the source (named ``g``) giving ``columns`` in order,
    with its ``params``. ``build``: the portable way, the model instances for the source's rows (dicts).
    ``unique_fields`` / ``update_fields`` are model field names: the conflict key and what a conflict
    updates.
    """

    model: type[models.Model]
    columns: Sequence[str]
    select: str
    params: Sequence[Any]
    unique_fields: Sequence[str]
    update_fields: Sequence[str]
    build: Callable[[list[dict[str, Any]]], Sequence[models.Model]]


UPSERT_BATCH = 5000


def upsert_from_query(source: QuerySet, targets: Sequence[UpsertTarget], *, native: bool | None = None) -> int:
    """Insert-or-update the rows each target derives from ``source`` into its table; returns rows written.

    PostgreSQL (``native``): no row through Python: the source's rows into a temporary table ``g``
    (``CREATE TEMP TABLE AS``, dropped at the end), then one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``
    per target from it (so two tables fill from a single scan of the events). Not one statement with
    the source as a CTE feeding the INSERTs (what this did until issue 15): a statement that writes in a
    CTE never gets parallel workers, and its row estimates (every event a group) made PostgreSQL JIT-compile
    it; at 1.1M events the one statement took 5.6 s where the temporary table's scan (two workers) and
    inserts take under 3 s (docs/BENCHMARKS.md, aggregate). Elsewhere (or ``native=False``, which tests use to compare the two on
    PostgreSQL): the source's rows fetched once, each target's ``build`` makes its instances and
    ``bulk_create(update_conflicts=True)`` writes them.
    """
    native = connection.vendor == "postgresql" if native is None else native
    if not native:
        rows = list(source.iterator(chunk_size=UPSERT_BATCH))
        written = 0
        for target in targets:
            instances = target.build(rows)
            target.model._default_manager.bulk_create(
                instances, batch_size=UPSERT_BATCH, update_conflicts=True,
                unique_fields=list(target.unique_fields), update_fields=list(target.update_fields),
            )
            written += len(instances)
        return written
    source_sql, source_params = source.query.sql_with_params()
    quote = connection.ops.quote_name
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        # Inside a transaction (a savepoint if the caller has one): the table goes with a rollback too.
        cursor.execute(f"CREATE TEMPORARY TABLE g ON COMMIT DROP AS {source_sql}", source_params)
        for target in targets:
            meta = target.model._meta
            conflict = ", ".join(quote(_column(meta, f)) for f in target.unique_fields)
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (quote(_column(meta, f)) for f in target.update_fields))
            cursor.execute(
                f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in target.columns)})"
                f" {target.select} ON CONFLICT ({conflict}) DO UPDATE SET {updates}",
                list(target.params),
            )
            written += cursor.rowcount  # rows inserted or updated
        cursor.execute("DROP TABLE g")  # the next call in this transaction makes its own
    return written
