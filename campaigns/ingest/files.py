"""Reading event files for ``manage.py import_events``: CSV (header row) and JSON Lines.

Two ways through a file, with the same rows, lines and rejected lines:

- ``CsvRecords`` / ``read_jsonl`` walk the file row by row and ``batches`` groups the rows and runs
  their checks (no database): the one-process import, which writes each batch as it comes;
- ``FileChunks`` cuts the file into texts of whole records (about ``rows`` records each) without
  checking anything, and ``chunk_batch`` turns one such text into the same rows and rejected lines in
  another process (``import_events --jobs N``, ``campaigns.import_worker``). A chunk starts where the
  file's own CSV reader starts a record, so a worker that reads it from there meets the same records,
  the same unreadable ones and the same line numbers as the one-process walk (a test runs many files
  through both).

Every line that cannot become a row (bad JSON, a CSV record the reader refuses, too many fields) is a
``BadLine`` with its reason. A file that is not in its encoding stops the import with a message naming
the line and the option to use.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Generic, TypeVar

from django.core.management.base import CommandError
from django.utils import timezone

from campaigns.ingest.validation import WIRE_FIELDS, CheckedRows, check_csv_rows, check_rows

T = TypeVar("T")

REQUIRED_COLUMNS = ("event_id", "type", "occurred_at", "campaign_id")
DEFAULT_ENCODING = "utf-8-sig"  # UTF-8, skipping a byte-order mark if there is one
_BOMS = {b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16"}
# Bytes read and decoded at a time by FileChunks: large enough that the per-block Python work is
# negligible, small enough that the memory of a read block does not matter.
READ_BLOCK_BYTES = 1 << 22
_REFUSED = "\udcff"  # a lone surrogate: no valid text decodes to it
_MARK_REFUSED = "marketing_ai_import_refused"


def _mark_refused(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    return _REFUSED, exc.end


codecs.register_error(_MARK_REFUSED, _mark_refused)


class BadLine(Exception):
    """A line that cannot even be read as a row (bad JSON, too many CSV fields)."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


class WrongEncoding(CommandError):
    pass


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def check_encoding(path: Path, encoding: str) -> None:
    """Refuse up front what would fail later: an unknown codec, or a UTF-16 file read as UTF-8."""
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


def _wrong_encoding(path: Path, encoding: str, lines_read: int, exc: UnicodeDecodeError, *, exact: bool = False) -> WrongEncoding:
    where = "" if exact else f" at byte {exc.start} of a read block"
    return WrongEncoding(
        f"{path}: line {lines_read + 1} is not valid {encoding} ({exc.reason}{where}); "
        "the lines before it were imported. Re-run with --encoding NAME (e.g. latin-1, cp1252, utf-16): rows "
        "already stored are skipped as duplicates"
    )


def csv_header(path: Path, cells: list[str]) -> list[str]:
    """The header row's column names, or a CommandError naming what is unknown or missing."""
    header = [h.strip() for h in cells]
    unknown = [h for h in header if h not in WIRE_FIELDS]
    missing = [h for h in REQUIRED_COLUMNS if h not in header]
    if unknown or missing:
        raise CommandError(
            f"{path}: bad header row"
            + (f"; unknown column(s): {', '.join(unknown)}" if unknown else "")
            + (f"; missing column(s): {', '.join(missing)}" if missing else "")
            + f". Columns are: {','.join(WIRE_FIELDS)}"
        )
    return header


def _empty_file(path: Path) -> CommandError:
    return CommandError(f"{path} is empty; expected a header row: {','.join(WIRE_FIELDS)}")


def _csv_records(reader, path: Path | None, encoding: str) -> Iterator[list[str] | BadLine]:
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
            raise _wrong_encoding(path or Path("?"), encoding, reader.line_num, exc) from None


def csv_rows(reader, width: int, *, line_offset: int = 0, path: Path | None = None,
             encoding: str = DEFAULT_ENCODING) -> Iterator[tuple[int, int, list[str] | BadLine]]:
    """(first line, last line, cells or BadLine) of each record ``reader`` gives after where it stands;
    file line = the reader's line + ``line_offset``."""
    last = reader.line_num
    for values in _csv_records(reader, path, encoding):
        first, last = last + 1, reader.line_num
        if isinstance(values, BadLine):
            yield first + line_offset, last + line_offset, values
            continue
        if not values:
            continue  # a blank line
        if len(values) > width:
            yield first + line_offset, last + line_offset, BadLine("event", f"has {len(values)} fields, the header has {width}")
            continue
        # An empty CSV cell means "not given", like a missing JSON key: the validator treats a "" value
        # and a missing key alike (tests/campaigns/test_import_events.py), so the cells go as they are.
        # A short record's missing cells are not given either (``check_csv_rows``).
        yield first + line_offset, last + line_offset, values


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
                cells = next(reader)
            except UnicodeDecodeError as exc:
                raise _wrong_encoding(path, encoding, 0, exc) from None
            except StopIteration:
                raise _empty_file(path) from None
            self.header = csv_header(path, cells)
            yield from csv_rows(reader, len(self.header), path=path, encoding=encoding)


def read_csv(path: Path, encoding: str = DEFAULT_ENCODING) -> Iterator[tuple[int, int, Any]]:
    """Yield (first line, last line, row dict or BadLine) for each CSV record."""
    records = CsvRecords(path, encoding)
    for first, last, values in records:
        yield first, last, values if isinstance(values, BadLine) else dict(zip(records.header, values, strict=False))


def jsonl_rows(lines: Iterable[str], *, first_number: int = 1) -> Iterator[tuple[int, int, Any]]:
    """(line, line, parsed object or BadLine) for each non-blank line, numbered from ``first_number``."""
    for number, line in enumerate(lines, start=first_number):
        if not line.strip():
            continue
        try:
            yield number, number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, number, BadLine("event", f"is not valid JSON: {exc.msg} at column {exc.colno}")
        except RecursionError:
            yield number, number, BadLine("event", "is not valid JSON: nested too deeply")


def read_jsonl(path: Path, encoding: str = DEFAULT_ENCODING) -> Iterator[tuple[int, int, Any]]:
    with path.open(encoding=encoding) as f:
        yield from jsonl_rows(_decoded(f, path, encoding))


@dataclass
class Batch:
    rows: list[Any]  # the wire rows of the batch (dicts; lists of cells from a CSV file)
    lines: list[int]  # each row's first file line
    bad_lines: list[tuple[int, str, str]]  # (line, field, reason) of lines that are no row, read with it
    last_line: int  # the last file line read
    checked: CheckedRows | None  # the rows' own checks (None: no rows)


def batches(records: Iterable[tuple[int, int, Any]], size: int,
            check: Callable[[list[Any]], CheckedRows]) -> Iterator[Batch]:
    """The rows in batches of ``size`` (the last one may be smaller or empty), each with its lines and its
    rows' own checks (``check``: ``check_rows``, or ``check_csv_rows`` of the header; no database; the
    batch's clock is its received_at)."""
    batch = Batch([], [], [], 0, None)
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
            batch = Batch([], [], [], last, None)
    if batch.rows or batch.bad_lines or batch.last_line:
        if batch.rows:
            batch.checked = check(batch.rows)
        yield batch


# --- chunks of whole records, for worker processes ---------------------------------------------------


@dataclass
class Chunk:
    """Whole records of the file: ``text`` holds its lines ``first_line`` to ``last_line`` (file lines,
    the header is line 1 of a CSV file), with their line ends."""

    fmt: str  # "csv" or "jsonl"
    header: list[str]  # a CSV file's column names ([] for JSON Lines)
    first_line: int
    last_line: int
    text: str


class FileChunks:
    """The file as ``Chunk``s of about ``rows`` records each, read ``READ_BLOCK_BYTES`` at a time.

    Only the cutting happens here (no row is checked): a CSV file's records are found by Python's CSV
    reader, the same reader a worker then runs over the chunk, so a quoted field spanning lines is never
    cut; a JSON Lines file is cut between lines. Lines are split as the one-process walk splits them
    (``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line). The file is decoded here: a byte sequence that is
    not ``encoding`` stops the iteration with ``WrongEncoding`` naming its exact line, after the chunk of
    the whole records before it.
    """

    def __init__(self, path: Path, fmt: str, encoding: str, rows: int):
        self.path, self.fmt, self.encoding, self.rows = path, fmt, encoding, rows

    def _line_blocks(self) -> Iterator[list[str]]:
        """The file's lines, a read block's worth at a time, each with its line end (the last line of the
        file may lack one)."""
        decoder = codecs.getincrementaldecoder(self.encoding)()
        # The text of a line not ended yet (one ending in "\r" too: its "\n" may open the next block), in
        # parts: a line longer than a block is joined once, not once per block.
        carry: list[str] = []
        lines_before = 0
        with self.path.open("rb") as f:
            while True:
                data = f.read(READ_BLOCK_BYTES)
                state = decoder.getstate()
                try:
                    text = decoder.decode(data, final=not data)
                except UnicodeDecodeError as exc:
                    # The lines before the refused bytes are read; the line they are in is named. Decoded
                    # again with refused bytes marked by a lone surrogate (which no decoded valid text
                    # holds), the text before the first mark is what the file says before them.
                    again = codecs.getincrementaldecoder(self.encoding)(errors=_MARK_REFUSED)
                    again.setstate(state)
                    text = again.decode(data, final=not data)
                    refused = text.index(_REFUSED)
                    lines = _split_lines("".join(carry) + text[:refused])
                    if lines and not lines[-1].endswith(("\n", "\r")):
                        lines.pop()  # the start of the line the refused byte is in
                    yield lines
                    raise _wrong_encoding(self.path, self.encoding, lines_before + len(lines), exc, exact=True) from None
                if not data:
                    if carry or text:
                        yield ["".join(carry) + text]
                    return
                if carry and "\n" not in text and "\r" not in text:
                    carry.append(text)  # the same line goes on
                    continue
                lines = _split_lines("".join(carry) + text)
                carry = [lines.pop()] if lines and not lines[-1].endswith("\n") else []
                lines_before += len(lines)
                yield lines

    def __iter__(self) -> Iterator[Chunk]:
        if self.fmt == "csv":
            yield from self._csv_chunks()
        else:
            yield from self._jsonl_chunks()

    def _jsonl_chunks(self) -> Iterator[Chunk]:
        pending: list[str] = []  # lines read and not in a chunk yet
        first = 1  # the file line pending[0] is
        try:
            for block in self._line_blocks():
                pending.extend(block)
                while len(pending) >= self.rows:
                    yield Chunk("jsonl", [], first, first + self.rows - 1, "".join(pending[: self.rows]))
                    del pending[: self.rows]
                    first += self.rows
        except WrongEncoding:
            if pending:  # the lines read before the refused one are imported first
                yield Chunk("jsonl", [], first, first + len(pending) - 1, "".join(pending))
            raise
        if pending:
            yield Chunk("jsonl", [], first, first + len(pending) - 1, "".join(pending))

    def _csv_chunks(self) -> Iterator[Chunk]:
        pending: list[str] = []  # lines read and not in a chunk yet

        def lines() -> Iterator[list[str]]:
            for block in self._line_blocks():
                pending.extend(block)
                yield block

        reader = csv.reader(chain.from_iterable(lines()))
        try:
            cells = next(reader)
        except StopIteration:
            raise _empty_file(self.path) from None
        header = csv_header(self.path, cells)
        taken = done = reader.line_num  # file lines in chunks; lines of whole records read (the header's)
        del pending[:taken]
        records = 0

        def whole_records() -> Chunk:
            nonlocal taken, records
            n = done - taken
            chunk = Chunk("csv", header, taken + 1, done, "".join(pending[:n]))
            del pending[:n]
            taken, records = done, 0
            return chunk

        try:
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    break
                except csv.Error:
                    values = None  # the worker's reader refuses the same lines
                done = reader.line_num
                if values != []:  # a blank line is no row
                    records += 1
                if records >= self.rows:
                    yield whole_records()
        except WrongEncoding:
            if done > taken:  # the whole records read before the refused line are imported first
                yield whole_records()
            raise
        if done > taken:
            yield whole_records()

def _split_lines(text: str) -> list[str]:
    """Lines as a file opened with ``newline=""`` gives them: split at ``\\n``, ``\\r\\n`` and ``\\r``, kept."""
    return io.StringIO(text, newline="").readlines()


def chunk_batch(chunk: Chunk) -> Batch:
    """The chunk's rows (checked, with the clock of now as their received_at), their lines and its
    rejected lines: what the one-process walk gives for the same lines, as one batch."""
    records: Iterable[tuple[int, int, Any]]
    check: Callable[[list[Any]], CheckedRows]
    if chunk.fmt == "csv":
        reader = csv.reader(io.StringIO(chunk.text, newline=""))
        records = csv_rows(reader, len(chunk.header), line_offset=chunk.first_line - 1)
        check = functools.partial(_check_csv_now, chunk.header)
    else:
        records = jsonl_rows(io.StringIO(chunk.text, newline=None), first_number=chunk.first_line)
        check = _check_json_now
    batch = next(iter(batches(records, size=sys.maxsize, check=check)), None) or Batch([], [], [], 0, None)
    batch.last_line = chunk.last_line
    return batch


def _check_csv_now(header: list[str], rows: list[Any]) -> CheckedRows:
    return check_csv_rows(header, rows, now=timezone.now())


def checks_for(records: Iterable[tuple[int, int, Any]]) -> Callable[[list[Any]], CheckedRows]:
    """The batch checks of ``records`` (``batches``' ``check``), each batch with the clock of now: a CSV
    file's cells under its header (read by the time a batch is full), JSON Lines' objects."""
    if isinstance(records, CsvRecords):
        return lambda rows: _check_csv_now(records.header, rows)
    return _check_json_now


def _check_json_now(rows: list[Any]) -> CheckedRows:
    return check_rows(rows, now=timezone.now())


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
