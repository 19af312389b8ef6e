"""``manage.py import_events PATH``: load events from CSV (header row) or JSON Lines.

Rows are checked by the same validator as ``POST /api/v1/events/`` and written in batches
(one transaction each). Valid rows are stored even when other rows of their batch are bad;
bad rows are reported with their file line and reason, and the command then exits non-zero.
Re-running the same file (e.g. after a crash, or after fixing the bad lines) stores nothing
twice: ``event_id`` is the idempotency key.

Every line that cannot become an event (bad JSON, a CSV record the reader refuses, a date that
overflows in UTC, a NUL byte or an id outside the alphabet) is one rejected line with its reason; the
file is read as UTF-8 (a BOM is skipped) unless ``--encoding`` names another, and a file that is not
in that encoding stops with a message naming the line and the option.
"""

from __future__ import annotations

import csv
import gc
import json
import queue
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone
from tqdm import tqdm

from campaigns import import_worker
from campaigns.services import WIRE_FIELDS, CheckedRows, IngestResult, check_csv_rows, check_rows, ingest_checked

T = TypeVar("T")

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
REQUIRED_COLUMNS = ("event_id", "type", "occurred_at", "campaign_id")
SWITCH_INTERVAL = 0.0005  # seconds; see Command.handle
# Rows per transaction: a batch pays a fixed set of round trips, commits and id look-ups (a customer met
# in several rows is looked up and locked once per batch). Measured at 200,000 events with --jobs 2
# (docs/ingestion.md, "Throughput"): 20,000 took 3.4-3.8 s where 5,000 took 4.5-5.1 s.
DEFAULT_BATCH_SIZE = 20_000
GC_EVERY = 5  # batches between collections of the young generations (see Command.handle)
REPORT_LIMIT = 50  # rejected rows printed on the console; --rejects-out gets them all


class BadLine(Exception):
    """A line that cannot even be read as a row (bad JSON, too many CSV fields)."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


DEFAULT_ENCODING = "utf-8-sig"  # UTF-8, skipping a byte-order mark if there is one
_BOMS = {b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16"}


class WrongEncoding(CommandError):
    pass


def check_encoding(path: Path, encoding: str) -> None:
    """Refuse up front what would fail later: an unknown codec, or a UTF-16 file read as UTF-8."""
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CommandError(f"unknown --encoding {encoding!r} (e.g. utf-8, latin-1, utf-16)") from None
    with path.open("rb") as f:
        head = f.read(2)
    if head in _BOMS and not encoding.lower().replace("_", "-").startswith("utf-16"):
        raise WrongEncoding(f"{path} starts with a UTF-16 byte-order mark; re-run with --encoding utf-16")


def _decoded(lines: Iterator[str], path: Path, encoding: str) -> Iterator[str]:
    """The file's lines; a line that is not ``encoding`` stops the import with a message saying what to do."""
    number = 0
    try:
        for number, line in enumerate(lines, start=1):  # noqa: B007 (number is read after the loop)
            yield line
    except UnicodeDecodeError as exc:
        raise _wrong_encoding(path, encoding, number, exc) from None


def _wrong_encoding(path: Path, encoding: str, lines_read: int, exc: UnicodeDecodeError) -> WrongEncoding:
    return WrongEncoding(
        f"{path}: line {lines_read + 1} is not valid {encoding} ({exc.reason} at byte {exc.start} of a read block); "
        "the lines before it were imported. Re-run with --encoding NAME (e.g. latin-1, cp1252, utf-16): rows "
        "already stored are skipped as duplicates"
    )


def _csv_records(reader, path: Path, encoding: str) -> Iterator[list[str] | BadLine]:
    """The reader's records; one it refuses (e.g. a field over the size limit) is a BadLine and reading goes on.

    The reader reads the file itself (no per-line wrapper: a Python generator per line cost a tenth of
    the import); a line that is not ``encoding`` stops the import, named by the reader's line count.
    """
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadLine("event", f"is not a readable CSV record: {exc}")
        except UnicodeDecodeError as exc:
            raise _wrong_encoding(path, encoding, reader.line_num, exc) from None


class CsvRecords:
    """The CSV file's records: (first line, last line, list of cells or BadLine) for each; ``header`` (the
    column names) is set once iteration has read it. Cells stay lists: ``check_csv_rows`` checks a batch
    column by column, and only a batch with a row it does not pass makes a dict per row."""

    def __init__(self, path: Path, encoding: str = DEFAULT_ENCODING):
        self.path = path
        self.encoding = encoding
        self.header: list[str] = []

    def __iter__(self) -> Iterator[tuple[int, int, list[str] | BadLine]]:
        path, encoding = self.path, self.encoding
        with path.open(newline="", encoding=encoding) as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except UnicodeDecodeError as exc:
                raise _wrong_encoding(path, encoding, 0, exc) from None
            except StopIteration:
                raise CommandError(f"{path} is empty; expected a header row: {','.join(WIRE_FIELDS)}") from None
            header = [h.strip() for h in header]
            unknown = [h for h in header if h not in WIRE_FIELDS]
            missing = [h for h in REQUIRED_COLUMNS if h not in header]
            if unknown or missing:
                raise CommandError(
                    f"{path}: bad header row"
                    + (f"; unknown column(s): {', '.join(unknown)}" if unknown else "")
                    + (f"; missing column(s): {', '.join(missing)}" if missing else "")
                    + f". Columns are: {','.join(WIRE_FIELDS)}"
                )
            self.header = header
            width = len(header)
            last = reader.line_num
            for values in _csv_records(reader, path, encoding):
                first, last = last + 1, reader.line_num
                if isinstance(values, BadLine):
                    yield first, last, values
                    continue
                if not values:
                    continue  # a blank line
                if len(values) > width:
                    yield first, last, BadLine("event", f"has {len(values)} fields, the header has {width}")
                    continue
                # An empty CSV cell means "not given", like a missing JSON key: the validator treats a "" value
                # and a missing key alike (tests/campaigns/test_import_events.py), so the cells go as they are.
                # A short record's missing cells are not given either (``check_csv_rows``).
                yield first, last, values


def read_csv(path: Path, encoding: str = DEFAULT_ENCODING) -> Iterator[tuple[int, int, Any]]:
    """Yield (first line, last line, row dict or BadLine) for each CSV record."""
    records = CsvRecords(path, encoding)
    for first, last, values in records:
        yield first, last, values if isinstance(values, BadLine) else dict(zip(records.header, values, strict=False))


def read_jsonl(path: Path, encoding: str = DEFAULT_ENCODING) -> Iterator[tuple[int, int, Any]]:
    with path.open(encoding=encoding) as f:
        for number, line in enumerate(_decoded(f, path, encoding), start=1):
            if not line.strip():
                continue
            try:
                yield number, number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, number, BadLine("event", f"is not valid JSON: {exc.msg} at column {exc.colno}")
            except RecursionError:
                yield number, number, BadLine("event", "is not valid JSON: nested too deeply")


@dataclass
class _Batch:
    rows: list[Any]  # the wire rows of the batch (dicts; lists of cells from a CSV file)
    lines: list[int]  # each row's first file line
    bad_lines: list[tuple[int, str, str]]  # (line, field, reason) of lines that are no row, read with it
    last_line: int  # the last file line read
    checked: CheckedRows | None  # the rows' own checks (None: no rows)


def _batches(records: Iterable[tuple[int, int, Any]], size: int) -> Iterator[_Batch]:
    """The file's rows in batches of ``size`` (the last one may be smaller or empty), each with its lines
    and its rows' own checks (``check_rows``, or ``check_csv_rows`` for ``CsvRecords``; no database; the
    batch's clock is its received_at)."""

    def check(rows: list[Any]) -> CheckedRows:
        if isinstance(records, CsvRecords):
            return check_csv_rows(records.header, rows, now=timezone.now())
        return check_rows(rows, now=timezone.now())

    batch = _Batch([], [], [], 0, None)
    for first, last, row in records:
        batch.last_line = last
        if isinstance(row, BadLine):
            batch.bad_lines.append((first, row.field, row.reason))
            continue
        batch.rows.append(row)
        batch.lines.append(first)
        if len(batch.rows) >= size:
            batch.checked = check(batch.rows)
            yield batch
            batch = _Batch([], [], [], last, None)
    if batch.rows or batch.bad_lines or batch.last_line:
        if batch.rows:
            batch.checked = check(batch.rows)
        yield batch


_DONE = object()


class prefetched(Generic[T]):  # noqa: N801 (used like a function)
    """Iterate ``items`` in a background thread, ``depth`` items ahead of the consumer.

    An exception in the thread is raised in the consumer at the point it happened; ``close()`` (or
    leaving early) stops the thread. The thread must not touch the database: under a test's
    transaction another connection would not see its rows, and a connection per thread is not needed
    for parsing.
    """

    def __init__(self, items: Iterator[T], *, depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._items = items
        self._thread = threading.Thread(target=self._run, name="import-reader", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
            self._put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((_DONE, exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # the file is closed by the thread that read it

    def __iter__(self) -> Iterator[T]:
        while True:
            item, exc = self._queue.get()
            if item is _DONE:
                if exc is not None:
                    raise exc
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Command(BaseCommand):
    help = "Import events from a CSV (with header) or JSON Lines file; safe to re-run (event_id is the idempotency key)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=["csv", "jsonl"], help="Default: from the extension (.csv, .jsonl/.ndjson)")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help=f"Rows per transaction (default {DEFAULT_BATCH_SIZE})")
        parser.add_argument("--rejects-out", type=Path, help="Write every rejected row (line, field, reason) to this CSV")
        parser.add_argument("--jobs", type=int, default=1,
                            help="Writer threads storing batches in parallel, each with its own connection "
                                 "(PostgreSQL; default 1: this thread writes)")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")
        parser.add_argument("--encoding", default=DEFAULT_ENCODING,
                            help="The file's text encoding (default UTF-8, with or without a BOM), e.g. latin-1, utf-16")

    def handle(self, *args, path: Path, format: str | None, batch_size: int, rejects_out: Path | None,
               no_progress: bool, jobs: int = 1, encoding: str = DEFAULT_ENCODING, **options) -> None:
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        fmt = format or FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise CommandError(f"cannot tell the format of {path.name}; pass --format csv or --format jsonl")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if jobs < 1:
            raise CommandError("--jobs must be at least 1")
        if jobs > 1 and connection.vendor != "postgresql":
            self.stderr.write(f"--jobs {jobs} ignored: {connection.vendor} takes one writer at a time")
            jobs = 1
        check_encoding(path, encoding)
        records = CsvRecords(path, encoding) if fmt == "csv" else read_jsonl(path, encoding)

        total = IngestResult()
        rejects: list[tuple[int, str, str]] = []  # (line, field, reason)
        bar = tqdm(total=count_lines(path), unit=" lines", disable=no_progress or None, desc=path.name)
        done_line = 0
        # With --jobs > 1, checked batches go to writer threads (one database connection each) that
        # write in parallel, mostly waiting on PostgreSQL; with one, this thread writes.
        pool = import_worker.WriterThreads(jobs) if jobs > 1 else None
        in_flight: deque[tuple[list[int], Future]] = deque()

        def collect(lines_of_batch: list[int], result: IngestResult) -> None:
            total.stored += result.stored
            total.duplicates += result.duplicates
            total.customers_created += result.customers_created
            total.merchants_created += result.merchants_created
            rejects.extend((lines_of_batch[e.index], e.field, e.reason) for e in result.rejected)
            bar.set_postfix(stored=total.stored, duplicates=total.duplicates, rejected=len(rejects), refresh=False)

        # One process: a reading thread parses and checks batch n+1 (no database) while this thread
        # writes batch n (mostly waiting on PostgreSQL, which releases the GIL).
        # The cyclic garbage collector is off for the run (the store pauses it per batch too, see
        # ``store._gc_paused``): reading and checking allocate hundreds of thousands of acyclic objects
        # (freed by reference counting) per second, and left on it rescanned the batches in flight over
        # and over (measured: a third of the reading thread's time). The young generations are collected
        # every GC_EVERY batches, so cyclic garbage of a long import does not pile up.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        batches = prefetched(_batches(records, batch_size), depth=2)
        # A writer back from PostgreSQL waits for the GIL while the reading thread holds it: up to the
        # switch interval (5 ms) per round trip, a dozen round trips a batch. A shorter interval hands
        # it over sooner (the process's setting, restored at the end).
        switch_interval = sys.getswitchinterval()
        batches_read = 0
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            for batch in batches:
                rejects.extend(batch.bad_lines)
                if batch.rows:
                    assert batch.checked is not None
                    if pool is None:
                        collect(batch.lines, ingest_checked(batch.checked, skip_invalid=True))
                    else:
                        in_flight.append((batch.lines, pool.submit(import_worker.ingest_checked_batch, batch.checked)))
                        while len(in_flight) > 2 * jobs:  # keep every worker busy, bound the memory
                            lines_of_batch, future = in_flight.popleft()
                            collect(lines_of_batch, future.result())
                bar.update(batch.last_line - done_line)
                done_line = batch.last_line
                batches_read += 1
                if batches_read % GC_EVERY == 0:
                    gc.collect(1)
            while in_flight:
                lines_of_batch, future = in_flight.popleft()
                collect(lines_of_batch, future.result())
        finally:
            sys.setswitchinterval(switch_interval)
            if gc_was_enabled:
                gc.enable()
            batches.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        bar.update(max(bar.total - done_line, 0))
        bar.close()

        rejects.sort(key=lambda r: r[0])  # by line; a row keeps its fields in the validator's order
        rejected_lines = len({line for line, _, _ in rejects})
        self.stdout.write(
            f"{path.name}: stored {total.stored}, duplicates {total.duplicates}, rejected {rejected_lines} "
            f"(new customers {total.customers_created}, new merchants {total.merchants_created})"
        )
        if not rejects:
            return
        if rejects_out:
            with rejects_out.open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["line", "field", "reason"])
                writer.writerows(rejects)
        for line, field_name, reason in rejects[:REPORT_LIMIT]:
            self.stderr.write(f"line {line}: {field_name}: {reason}")
        if len(rejects) > REPORT_LIMIT:
            more = f"see {rejects_out}" if rejects_out else "pass --rejects-out PATH for the full list"
            self.stderr.write(f"... and {len(rejects) - REPORT_LIMIT} more ({more})")
        raise CommandError(
            f"{rejected_lines} row(s) rejected; the other rows were stored. Fix the lines above and re-run: "
            "rows already stored are skipped as duplicates."
        )
