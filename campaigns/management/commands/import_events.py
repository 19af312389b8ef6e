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
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from campaigns import import_worker
from campaigns.ingest.files import (  # noqa: F401 (the readers are importable from here too)
    DEFAULT_ENCODING,
    BadLine,
    CsvRecords,
    FileChunks,
    WrongEncoding,
    batches,
    check_encoding,
    checks_for,
    count_lines,
    prefetched,
    read_csv,
    read_jsonl,
)
from campaigns.services import IngestResult, ingest_checked

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
SWITCH_INTERVAL = 0.0005  # seconds; see Command._import_in_this_process
# Rows per transaction: a batch pays a fixed set of round trips, commits and id look-ups (a customer met
# in several rows is looked up and locked once per batch). Measured at 200,000 events with --jobs 2
# (docs/ingestion.md, "Throughput"): 20,000 took 3.4-3.8 s where 5,000 took 4.5-5.1 s.
DEFAULT_BATCH_SIZE = 20_000
GC_EVERY = 5  # batches between collections of the young generations (see Command._import_in_this_process)
REPORT_LIMIT = 50  # rejected rows printed on the console; --rejects-out gets them all


class _Totals:
    def __init__(self) -> None:
        self.result = IngestResult()
        self.rejects: list[tuple[int, str, str]] = []  # (line, field, reason)

    def add(self, stored: int, duplicates: int, customers: int, merchants: int, rejects) -> None:
        self.result.stored += stored
        self.result.duplicates += duplicates
        self.result.customers_created += customers
        self.result.merchants_created += merchants
        self.rejects.extend(rejects)


class Command(BaseCommand):
    help = "Import events from a CSV (with header) or JSON Lines file; safe to re-run (event_id is the idempotency key)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=["csv", "jsonl"], help="Default: from the extension (.csv, .jsonl/.ndjson)")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help=f"Rows per transaction (default {DEFAULT_BATCH_SIZE})")
        parser.add_argument("--rejects-out", type=Path, help="Write every rejected row (line, field, reason) to this CSV")
        parser.add_argument("--jobs", type=int, default=1,
                            help="Worker processes reading, checking and storing batches in parallel, each with "
                                 "its own connection (PostgreSQL; default 1: this process, one writer)")
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
        if jobs > 1 and not import_worker.fork_available():
            self.stderr.write(f"--jobs {jobs} ignored: this platform cannot fork worker processes")
            jobs = 1
        if jobs > 1 and connection.in_atomic_block:
            # Workers have their own connections: they would not see this transaction's rows, and closing
            # its connection before the fork would end it.
            self.stderr.write(f"--jobs {jobs} ignored: called inside a transaction")
            jobs = 1
        check_encoding(path, encoding)

        totals = _Totals()
        # The worker processes are forked first, before the progress bar or a reading thread starts one.
        workers = import_worker.ImportProcesses(jobs) if jobs > 1 else None
        bar = tqdm(total=count_lines(path), unit=" lines", disable=no_progress or None, desc=path.name)
        try:
            if workers is None:
                self._import_in_this_process(path, fmt, encoding, batch_size, totals, bar)
            else:
                self._import_in_workers(workers, FileChunks(path, fmt, encoding, batch_size), jobs, totals, bar)
        finally:
            bar.close()
        self._report(path, totals, rejects_out)

    def _import_in_this_process(self, path: Path, fmt: str, encoding: str, batch_size: int, totals: _Totals, bar) -> None:
        """One process: a reading thread parses and checks batch n+1 (no database) while this thread
        writes batch n (mostly waiting on PostgreSQL, which releases the GIL)."""
        records = CsvRecords(path, encoding) if fmt == "csv" else read_jsonl(path, encoding)
        # The cyclic garbage collector is off for the run (the store pauses it per batch too, see
        # ``store._gc_paused``): reading and checking allocate hundreds of thousands of acyclic objects
        # (freed by reference counting) per second, and left on it rescanned the batches in flight over
        # and over (measured: a third of the reading thread's time). The young generations are collected
        # every GC_EVERY batches, so cyclic garbage of a long import does not pile up.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        reading = prefetched(batches(records, batch_size, checks_for(records)), depth=2)
        # A writer back from PostgreSQL waits for the GIL while the reading thread holds it: up to the
        # switch interval (5 ms) per round trip, a dozen round trips a batch. A shorter interval hands
        # it over sooner (the process's setting, restored at the end).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        done_line = 0
        try:
            for number, batch in enumerate(reading, start=1):
                totals.rejects.extend(batch.bad_lines)
                if batch.rows:
                    assert batch.checked is not None
                    result = ingest_checked(batch.checked, skip_invalid=True)
                    totals.add(result.stored, result.duplicates, result.customers_created, result.merchants_created,
                               ((batch.lines[e.index], e.field, e.reason) for e in result.rejected))
                    self._show(bar, totals)
                bar.update(batch.last_line - done_line)
                done_line = batch.last_line
                if number % GC_EVERY == 0:
                    gc.collect(1)
        finally:
            sys.setswitchinterval(switch_interval)
            if gc_was_enabled:
                gc.enable()
            reading.close()
        bar.update(max(bar.total - done_line, 0))

    def _import_in_workers(self, workers: import_worker.ImportProcesses, chunks: FileChunks, jobs: int,
                           totals: _Totals, bar) -> None:
        """``jobs`` worker processes: this process cuts the file into chunks of whole records and hands them
        out, at most two per worker ahead (bounded memory); each worker reads, checks and stores its chunk."""

        def collect() -> None:
            result = workers.next_result()
            totals.add(result.stored, result.duplicates, result.customers_created, result.merchants_created, result.rejects)
            self._show(bar, totals)
            bar.update(min(result.last_line - result.first_line + 1, bar.total - bar.n))

        def drain() -> None:
            while workers.in_flight:
                collect()

        try:
            try:
                for chunk in chunks:
                    workers.submit(chunk)
                    while workers.in_flight > 2 * jobs:
                        collect()
            except WrongEncoding:
                drain()  # the lines before the refused one are stored, as the message says
                raise
            drain()
        except import_worker.WorkerFailed as exc:
            workers.terminate()
            where = f" on file lines {exc.lines[0]}-{exc.lines[1]}" if exc.lines else ""
            raise CommandError(
                f"an import worker failed{where}: {exc}. The other batches stored are kept (each is one "
                "transaction); re-run the same command: rows already stored are skipped as duplicates"
            ) from None
        except BaseException:  # a bad header, Ctrl-C: the workers stop now, a batch being written is rolled back
            workers.terminate()
            raise
        workers.close()
        bar.update(max(bar.total - bar.n, 0))

    @staticmethod
    def _show(bar, totals: _Totals) -> None:
        bar.set_postfix(stored=totals.result.stored, duplicates=totals.result.duplicates,
                        rejected=len(totals.rejects), refresh=False)

    def _report(self, path: Path, totals: _Totals, rejects_out: Path | None) -> None:
        total, rejects = totals.result, totals.rejects
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
