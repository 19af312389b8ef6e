"""``import_events --jobs N``: the file cut into chunks of whole records gives the same rows, lines and
rejected lines as the one-process walk, on many generated files full of what breaks cutting (quoted
fields over several lines, every line end, blank lines, NUL bytes, over-long fields, stray quotes,
characters of several bytes across read blocks); worker processes store what one process stores; a
worker that fails or dies stops the import with a message instead of a hang."""

from __future__ import annotations

import csv
import io
import os
import random
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from campaigns.ingest import files
from campaigns.ingest.files import Batch, CsvRecords, FileChunks, WrongEncoding, batches, chunk_batch, read_jsonl
from campaigns.models import Customer, Event
from tests.factories import CampaignFactory

HEADER = ["event_id", "type", "occurred_at", "customer_id", "campaign_id", "variant"]
WHEN = "2025-04-01T10:00:00Z"


def _csv_file(rng: random.Random, n: int, *, huge_fields: bool) -> str:
    """A CSV text of ``n`` records mixing good rows with everything that makes cutting hard."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    text = [out.getvalue()]
    for i in range(n):
        kind = rng.choice(["good"] * 6 + ["multiline", "comma", "blank", "wide", "nul", "stray", "accent", "dup"]
                          + (["huge"] if huge_fields else [])) if i else "good"
        cells = [f"evt_{i}", "view", WHEN, f"user_{rng.randrange(5)}" if i else "user_0", "camp_1", "A"]
        if kind == "multiline":
            cells[3] = "us\ner" + "\n" * rng.randrange(3)  # quoted, over several lines; refused as an id
        elif kind == "comma":
            cells[5] = "A,B"
        elif kind == "accent":
            cells[5] = rng.choice(["Café", "😀", "ß" * 3])
        elif kind == "dup":  # evt_0 sent again: with --jobs N batches race, so a re-sent event is a true copy
            cells = ["evt_0", "view", WHEN, "user_0", "camp_1", "A"]
        elif kind == "huge":
            cells[5] = "x" * 140_000  # over the CSV reader's field limit: an unreadable record
        if kind == "blank":
            line = ""
        elif kind == "wide":
            line = ",".join([*cells, "extra"])
        elif kind == "nul":
            line = ",".join(cells).replace("user", "us\x00er")
        elif kind == "stray":
            line = ",".join(cells).replace("view", 'vi"ew')  # a quote inside an unquoted field is literal
        else:
            row = io.StringIO()
            csv.writer(row, lineterminator="").writerow(cells)
            line = row.getvalue()
        text.append(line + rng.choice(["\n", "\n", "\r\n", "\r"]))
    if rng.random() < 0.3:
        text[-1] = text[-1].rstrip("\r\n")  # no line end after the last record
    if rng.random() < 0.15:
        text.append('evt_last,view,"never closed\n')  # an unterminated quote at the end of the file
    return "".join(text)


def _jsonl_file(rng: random.Random, n: int) -> str:
    lines = []
    for i in range(n):
        line = rng.choice([
            f'{{"event_id": "evt_{i}", "type": "view", "occurred_at": "{WHEN}", "campaign_id": "camp_1", "customer_id": "u_1"}}',
            '{"event_id": "caf\u00e9", "type": "view"}', "", "   ", "{not json", "[" * 50, '"a string"',
        ])
        lines.append(line + rng.choice(["\n", "\r\n", "\r"]))
    return "".join(lines)


def _one_process(path: Path, fmt: str) -> Batch:
    records = CsvRecords(path) if fmt == "csv" else read_jsonl(path)
    return next(iter(batches(records, 1 << 30, files.checks_for(records))))


def _chunked(path: Path, fmt: str, rows: int) -> tuple[Batch, list[files.Chunk]]:
    whole = Batch([], [], [], 0, None)
    errors: list[tuple[int, str, str]] = []
    chunks = list(FileChunks(path, fmt, files.DEFAULT_ENCODING, rows))
    for chunk in chunks:
        batch = chunk_batch(chunk)
        whole.rows += batch.rows
        whole.lines += batch.lines
        whole.bad_lines += batch.bad_lines
        if batch.checked is not None:
            errors += [(batch.lines[e.index], e.field, e.reason) for e in batch.checked.errors]
    whole.checked = errors  # type: ignore[assignment]
    return whole, chunks


def _errors_by_line(batch: Batch) -> list[tuple[int, str, str]]:
    assert batch.checked is not None
    return [(batch.lines[e.index], e.field, e.reason) for e in batch.checked.errors]


@pytest.mark.parametrize("seed", range(40))
def test_csv_chunks_give_the_one_process_rows_lines_and_rejects(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    monkeypatch.setattr(files, "READ_BLOCK_BYTES", rng.choice([7, 64, 1000, 1 << 22]))  # blocks end anywhere
    path = tmp_path / "events.csv"
    path.write_bytes(_csv_file(rng, rng.randrange(1, 120), huge_fields=seed % 8 == 0).encode())
    one = _one_process(path, "csv")

    chunked, chunks = _chunked(path, "csv", rows=rng.choice([1, 2, 3, 7, 50]))

    assert (chunked.rows, chunked.lines, chunked.bad_lines) == (one.rows, one.lines, one.bad_lines)
    assert chunked.checked == _errors_by_line(one)
    assert one.bad_lines or seed % 8 != 0  # the generator does produce unreadable records
    # The chunks tile the file's lines after the header, in order.
    assert chunks[0].first_line == 2
    assert all(b.first_line == a.last_line + 1 for a, b in zip(chunks, chunks[1:], strict=False))
    assert "".join(c.text for c in chunks) == "".join(io.StringIO(path.read_bytes().decode(), newline="").readlines()[1:])


@pytest.mark.parametrize("seed", range(15))
def test_jsonl_chunks_give_the_one_process_rows_lines_and_rejects(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    monkeypatch.setattr(files, "READ_BLOCK_BYTES", rng.choice([5, 100, 1 << 22]))
    path = tmp_path / "events.jsonl"
    path.write_bytes(_jsonl_file(rng, rng.randrange(1, 80)).encode())
    one = _one_process(path, "jsonl")

    chunked, _ = _chunked(path, "jsonl", rows=rng.choice([1, 4, 30]))

    assert (chunked.rows, chunked.lines, chunked.bad_lines) == (one.rows, one.lines, one.bad_lines)
    assert chunked.checked == _errors_by_line(one)
    assert one.bad_lines and one.rows


@pytest.mark.parametrize(("fmt", "bad_line"), [("csv", 2), ("csv", 37), ("jsonl", 1), ("jsonl", 20)])
def test_a_byte_not_in_the_encoding_is_named_by_its_exact_line_after_the_lines_before_it(tmp_path, monkeypatch, fmt, bad_line):
    monkeypatch.setattr(files, "READ_BLOCK_BYTES", 50)
    lines = [",".join(HEADER)] if fmt == "csv" else []
    while len(lines) < 60:
        n = len(lines)
        lines.append(f"evt_{n},view,{WHEN},user_1,camp_1,A" if fmt == "csv" else f'{{"event_id": "evt_{n}"}}')
    data = "\n".join(lines).encode() + b"\n"
    start = sum(len(line) + 1 for line in lines[: bad_line - 1])
    path = tmp_path / f"events.{fmt}"
    path.write_bytes(data[: start + 4] + b"\xe9" + data[start + 4 :])  # latin-1 e-acute in line ``bad_line``

    chunks = FileChunks(path, fmt, files.DEFAULT_ENCODING, rows=7)
    seen: list[files.Chunk] = []
    with pytest.raises(WrongEncoding, match=rf"line {bad_line} is not valid utf-8-sig.*--encoding"):
        for chunk in chunks:
            seen.append(chunk)
    first_row_line = 2 if fmt == "csv" else 1
    assert [n for c in seen for n in range(c.first_line, c.last_line + 1)] == list(range(first_row_line, bad_line))


# --- worker processes against the database ------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)  # workers use their own connections: data must be committed


def _stored() -> dict[str, tuple]:
    return {e.event_id: (e.type, e.occurred_at, e.customer_id and e.customer.customer_id, e.variant)
            for e in Event.objects.select_related("customer")}


def _import(path: Path, *args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_events", str(path), "--no-progress", *map(str, args), stdout=out, stderr=err)
    except CommandError as exc:
        err.write(f"\nCommandError: {exc}")
    return out.getvalue(), err.getvalue()


@pytestmark_db
@pytest.mark.parametrize("seed", [1, 2])
def test_worker_processes_store_and_report_what_one_process_does(tmp_path, postgres, seed):
    CampaignFactory(campaign_id="camp_1")
    rng = random.Random(seed)
    path = tmp_path / "events.csv"
    path.write_bytes(_csv_file(rng, 300, huge_fields=True).encode())

    one_out, one_err = _import(path, "--jobs", 1, "--batch-size", 7, "--rejects-out", tmp_path / "one.csv")
    one = _stored()
    Event.objects.all().delete()
    Customer.objects.all().delete()  # so the second run creates them too
    many_out, many_err = _import(path, "--jobs", 3, "--batch-size", 5, "--rejects-out", tmp_path / "many.csv")

    assert _stored() == one and len(one) > 100
    assert (tmp_path / "many.csv").read_text() == (tmp_path / "one.csv").read_text()
    assert many_out == one_out and "stored" in one_out and "CommandError" in one_err
    assert many_err.replace("many.csv", "one.csv") == one_err


def _good_file(tmp_path: Path, n: int) -> Path:
    """Campaign camp_1 and a CSV of ``n`` good rows, evt_0 to evt_<n-1> on file lines 2 to n+1."""
    CampaignFactory(campaign_id="camp_1")
    path = tmp_path / "events.csv"
    path.write_text(",".join(HEADER) + "\n" + "".join(f"evt_{i},view,{WHEN},user_1,camp_1,A\n" for i in range(n)))
    return path


@pytestmark_db
def test_a_worker_that_raises_stops_the_import_naming_its_lines_and_the_other_chunks_are_kept(tmp_path, postgres, monkeypatch):
    path = _good_file(tmp_path, 40)
    real = files.chunk_batch

    def failing(chunk):
        if chunk.first_line == 22:
            raise RuntimeError("disk on fire")
        return real(chunk)

    monkeypatch.setattr(files, "chunk_batch", failing)  # inherited by the forked workers
    with pytest.raises(CommandError, match=r"file lines 22-31: RuntimeError: disk on fire.*re-run"):
        call_command("import_events", str(path), "--no-progress", "--jobs", 2, "--batch-size", 10)
    # Each chunk is one transaction: stored whole or not at all (one in flight when the import stopped is
    # rolled back), and the failed one not at all.
    stored = set(Event.objects.values_list("event_id", flat=True))
    chunks = [{f"evt_{i}" for i in range(start, start + 10)} for start in (0, 10, 20, 30)]
    assert all(chunk <= stored or not chunk & stored for chunk in chunks) and not chunks[2] & stored

    monkeypatch.setattr(files, "chunk_batch", real)
    call_command("import_events", str(path), "--no-progress", "--jobs", 2, "--batch-size", 10)
    assert Event.objects.count() == 40


@pytestmark_db
def test_a_worker_that_dies_stops_the_import_instead_of_waiting_for_it(tmp_path, postgres, monkeypatch):
    path = _good_file(tmp_path, 40)
    real = files.chunk_batch

    def dying(chunk):
        if chunk.first_line == 12:
            os._exit(7)
        return real(chunk)

    monkeypatch.setattr(files, "chunk_batch", dying)
    with pytest.raises(CommandError, match="import worker import-worker-[01] exited with code 7"):
        call_command("import_events", str(path), "--no-progress", "--jobs", 2, "--batch-size", 10)


def test_jobs_inside_a_transaction_fall_back_to_one_process_with_a_note(tmp_path, postgres):
    """A caller's transaction (here the test's) stays intact: worker processes could not see its rows."""
    path = _good_file(tmp_path, 5)
    out, err = _import(path, "--jobs", 2)
    assert "--jobs 2 ignored: called inside a transaction" in err and "stored 5" in out
    assert Event.objects.count() == 5


@pytest.mark.parametrize(("encoding", "bom"), [("utf-8-sig", b"\xef\xbb\xbf"), ("utf-8-sig", b""), ("utf-16", b"")])
def test_the_refused_line_is_exact_with_a_byte_order_mark_and_in_utf16(tmp_path, monkeypatch, encoding, bom):
    monkeypatch.setattr(files, "READ_BLOCK_BYTES", 1 << 22)  # the whole file in one block
    body = "".join(f"evt_{n},view,{WHEN},user_1,camp_1,A\r\n" for n in range(2, 9))
    text = ",".join(HEADER) + "\n" + body
    if encoding == "utf-16":
        data = text.encode("utf-16")  # a byte-order mark, then little-endian pairs
        bad = b"\x00\xd8"  # a high surrogate with no low one after it
        cut = data.index("evt_6".encode("utf-16-le"))
    else:
        data = bom + text.encode("utf-8")
        bad = b"\xff"  # never valid in UTF-8
        cut = data.index(b"evt_6")
    path = tmp_path / "events.csv"
    path.write_bytes(data[:cut] + bad + data[cut:])

    seen: list[files.Chunk] = []
    with pytest.raises(WrongEncoding, match=rf"line 6 is not valid {encoding}"):
        for chunk in FileChunks(path, "csv", encoding, rows=2):
            seen.append(chunk)
    assert [n for c in seen for n in range(c.first_line, c.last_line + 1)] == [2, 3, 4, 5]
