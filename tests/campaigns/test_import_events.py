"""manage.py import_events: CSV and JSON Lines, batches, resume after a crash, rejected-row report."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError

from campaigns.models import Customer, Event
from tests.factories import CampaignFactory, OfferFactory

pytestmark = pytest.mark.django_db
COLUMNS = ["event_id", "type", "occurred_at", "customer_id", "campaign_id", "merchant_id", "offer_id", "variant", "amount"]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def campaigns():
    CampaignFactory(campaign_id="camp_1")
    CampaignFactory(campaign_id="camp_2")
    OfferFactory(offer_id="off_10pct", value=Decimal("10"))


def make_events(n: int) -> list[dict]:
    """n valid wire events of every type, spread over campaigns, customers, offsets."""
    types = ["notification_sent", "notification_opened", "view", "click", "conversion", "spend"]
    events = []
    for i in range(n):
        kind = types[i % len(types)]
        offset = ["+00:00", "+02:00", "-07:00", "Z"][i % 4]
        event = {
            "event_id": f"evt_{i}",
            "type": kind,
            "occurred_at": f"2025-04-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00{offset}",
            "customer_id": f"user_{i % 13}",
            "campaign_id": f"camp_{1 + i % 2}",
            "variant": "AB"[i % 2],
        }
        if kind in ("conversion", "spend"):
            event["amount"] = f"{i % 97}.{i % 100:02d}"
        if kind == "conversion":
            event["merchant_id"] = f"m_{i % 3}"
            event["offer_id"] = "off_10pct"
        events.append(event)
    return events


def write_csv(path: Path, events: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(events)
    return path


def write_jsonl(path: Path, events: list) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return path


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_events", *map(str, args), "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def stored_frame() -> pd.DataFrame:
    rows = Event.objects.values_list(
        "event_id", "type", "occurred_at", "customer__customer_id", "campaign__campaign_id",
        "merchant__merchant_id", "offer__offer_id", "variant", "amount",
    )
    return pd.DataFrame(list(rows), columns=COLUMNS).set_index("event_id").sort_index()


def expected_frame(events: list[dict]) -> pd.DataFrame:
    """The file's rows as we expect them stored, parsed by pandas (not by our code)."""
    frame = pd.DataFrame(events, columns=COLUMNS)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True, format="ISO8601")
    frame["amount"] = [None if pd.isna(a) else Decimal(a) for a in frame["amount"]]
    frame = frame.astype(object).where(frame.notna(), None)
    frame["variant"] = frame["variant"].fillna("")
    return frame.set_index("event_id").sort_index()


def assert_stored_equals(events: list[dict]) -> None:
    stored, expected = stored_frame(), expected_frame(events)
    assert list(stored.index) == list(expected.index)
    stored["occurred_at"] = pd.to_datetime(stored["occurred_at"], utc=True)
    for column in COLUMNS[1:]:
        assert list(stored[column]) == list(expected[column]), column


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_import_stores_every_row_with_its_values(tmp_path, fmt):
    events = make_events(60)
    path = write_csv(tmp_path / "e.csv", events) if fmt == "csv" else write_jsonl(tmp_path / "e.jsonl", events)

    out, err = run(path, "--batch-size", 7)

    assert "stored 60, duplicates 0, rejected 0" in out and err == ""
    assert_stored_equals(events)
    assert Customer.objects.filter(timezone="UTC").count() == 13


def test_format_flag_overrides_the_extension(tmp_path):
    path = write_jsonl(tmp_path / "events.txt", make_events(3))
    with pytest.raises(CommandError, match="--format"):
        run(path)
    out, _ = run(path, "--format", "jsonl")
    assert "stored 3" in out


def test_reimporting_after_a_crash_stores_nothing_twice(tmp_path):
    events = make_events(100)
    # The crash: only the first 40 rows made it in.
    run(write_csv(tmp_path / "first_part.csv", events[:40]), "--batch-size", 16)
    assert Event.objects.count() == 40

    out, _ = run(write_csv(tmp_path / "all.csv", events), "--batch-size", 16)

    assert "stored 60, duplicates 40, rejected 0" in out
    assert Event.objects.count() == 100
    assert_stored_equals(events)
    out, _ = run(tmp_path / "all.csv")
    assert "stored 0, duplicates 100" in out


def test_rejected_rows_are_reported_by_file_line_and_the_rest_is_stored(tmp_path):
    events = make_events(10)
    events[2]["occurred_at"] = "2025-04-01T10:00:00"  # naive: file line 4 (header is line 1)
    events[6]["campaign_id"] = "camp_nope"  # file line 8
    events[7]["amount"] = "-1"  # a click with an amount: not allowed; file line 9
    path = write_csv(tmp_path / "e.csv", events)

    with pytest.raises(CommandError, match="3 row"):
        run(path, "--batch-size", 4, "--rejects-out", tmp_path / "rejects.csv")

    good = [e for i, e in enumerate(events) if i not in (2, 6, 7)]
    assert_stored_equals(good)
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert list(zip(rejects["line"], rejects["field"], strict=True)) == [(4, "occurred_at"), (8, "campaign_id"), (9, "amount")]
    assert "no UTC offset" in rejects["reason"][0] and "camp_nope" in rejects["reason"][1]


@pytest.mark.django_db(transaction=True)  # the command line closes the connection when it exits
def test_report_is_printed_and_the_exit_code_is_not_zero(tmp_path, capsys):
    events = make_events(4)
    events[1]["type"] = "purchase"
    path = write_csv(tmp_path / "e.csv", events)

    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "import_events", str(path), "--no-progress"]).execute()

    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "line 3: type: 'purchase' is not one of" in err
    assert Event.objects.count() == 3


def test_line_numbers_count_multiline_csv_fields_and_blank_lines(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text(
        ",".join(COLUMNS) + "\n"
        'evt_1,view,2025-04-01T10:00:00Z,user_1,camp_1,,,"multi\nline",\n'  # lines 2-3
        "\n"  # line 4
        "evt_2,view,2025-04-01T10:00:00,user_1,camp_1,,,,\n"  # line 5: naive time
        "evt_3,view,2025-04-01T10:00:00Z,user_1,camp_1,,,,,extra\n"  # line 6: too many fields
    )
    with pytest.raises(CommandError):
        run(path, "--rejects-out", tmp_path / "r.csv")
    rejects = pd.read_csv(tmp_path / "r.csv")
    assert list(rejects["line"]) == [5, 6]
    assert Event.objects.get().variant == "multi\nline"


def test_bad_json_lines_are_reported_and_the_rest_is_stored(tmp_path):
    events = make_events(3)
    path = write_jsonl(tmp_path / "e.jsonl", [events[0], "{not json", events[1], "[1, 2]", events[2]])
    with pytest.raises(CommandError, match="2 row"):
        run(path, "--rejects-out", tmp_path / "r.csv")
    rejects = pd.read_csv(tmp_path / "r.csv")
    assert list(rejects["line"]) == [2, 4]
    assert "not valid JSON" in rejects["reason"][0] and "JSON object" in rejects["reason"][1]
    assert Event.objects.count() == 3


def test_a_csv_with_an_unknown_or_missing_column_is_refused_before_importing(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("event_id,type,when,campaign_id\nevt_1,view,2025-04-01T10:00:00Z,camp_1\n")
    with pytest.raises(CommandError, match="unknown column.*when.*missing column.*occurred_at"):
        run(path)
    assert Event.objects.count() == 0


@pytest.mark.parametrize(("args", "message"), [(["--batch-size", "0"], "at least 1"), ([], "not a file")])
def test_bad_arguments_are_command_errors(tmp_path, args, message):
    path = write_csv(tmp_path / "e.csv", make_events(1)) if args else tmp_path / "missing.csv"
    with pytest.raises(CommandError, match=message):
        run(path, *args)


def test_import_and_api_apply_the_same_rules(tmp_path, api):
    """One validator: a row the API rejects is rejected by the import with the same reason."""
    bad = make_events(1)[0] | {"occurred_at": "2025-04-01T10:00:00", "campaign_id": "camp_x"}
    response = api.post("/api/v1/events/", [bad], format="json")
    api_reasons = [(r["field"], r["reason"]) for r in response.json()["error"]["fields"]["rows"]]

    with pytest.raises(CommandError):
        run(write_jsonl(tmp_path / "e.jsonl", [bad]), "--rejects-out", tmp_path / "r.csv")
    rejects = pd.read_csv(tmp_path / "r.csv")
    assert list(zip(rejects["field"], rejects["reason"], strict=True)) == api_reasons


@pytest.mark.django_db(transaction=True)  # worker threads use their own connections: data must be committed
def test_parallel_jobs_store_the_same_rows_and_report_the_same_lines(tmp_path):
    events = make_events(90)
    events[40]["amount"] = "abc"  # row 40 is a conversion: file line 42
    path = write_csv(tmp_path / "e.csv", events)

    with pytest.raises(CommandError, match="1 row"):
        run(path, "--batch-size", 8, "--jobs", 3, "--rejects-out", tmp_path / "r.csv")

    assert_stored_equals([e for i, e in enumerate(events) if i != 40])
    assert list(pd.read_csv(tmp_path / "r.csv")["line"]) == [42]
    with pytest.raises(CommandError, match="1 row"):
        run(path, "--batch-size", 8, "--jobs", 3)
    assert Event.objects.count() == 89


def test_csv_may_carry_an_optional_channel_column_checked_like_the_api(tmp_path):
    events = make_events(6)
    channels = ["email", "", "push", "in_app", "E-Mail", "sms"]  # "" = not given; "E-Mail" is refused
    for event, channel in zip(events, channels, strict=True):
        event["channel"] = channel
    path = tmp_path / "with_channel.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "channel"])
        writer.writeheader()
        writer.writerows(events)

    with pytest.raises(CommandError):
        run(path, "--rejects-out", tmp_path / "rejects.csv")

    rejects = list(csv.DictReader((tmp_path / "rejects.csv").open()))
    assert [(r["line"], r["field"]) for r in rejects] == [("6", "channel")]
    assert dict(Event.objects.values_list("event_id", "channel")) == {
        "evt_0": "email", "evt_1": "", "evt_2": "push", "evt_3": "in_app", "evt_5": "sms"}
