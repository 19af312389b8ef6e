"""Bad input on every write path: a 4xx in the error shape (or a command's message), never a 500, nothing half-written.

The table below is the one docs/api.md ("Bad input") describes: each row is a class of bad input sent
to one endpoint, and the status and error code it gets. Runs on SQLite and on PostgreSQL (where NUL
bytes, surrogates and 32-bit columns used to reach the database and fail there).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from abtests.models import ABTest
from campaigns.models import Campaign, Customer, Event, Merchant
from tests.abtests.factories import ABTestFactory
from tests.factories import CampaignFactory, OfferFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def event(i: int = 0, **fields) -> dict:
    row = {"event_id": f"evt_{i}", "type": "view", "occurred_at": NOW.isoformat(), "customer_id": f"user_{i}",
           "campaign_id": "camp_1"}
    row.update(fields)
    return {k: v for k, v in row.items() if v is not ...}


class RawJSON(str):
    """A body sent as is (one json.dumps cannot even write)."""


def deep(levels: int):
    body: object = 1
    for _ in range(levels):
        body = [body]
    return body


@pytest.fixture
def world(db):
    campaign = CampaignFactory(campaign_id="camp_1")
    OfferFactory(offer_id="off_1")
    draft = ABTestFactory(campaign=campaign, status=ABTest.Status.DRAFT, started_at=None)
    running = ABTestFactory(campaign=campaign)
    return {"campaign": campaign, "draft": draft.test_id, "running": running.test_id}


def assert_refused(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:400])
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"} and error["message"]
    if code:
        assert error["code"] == code, error
    return error


# (case, method, path, JSON body or None, status, error code). "{draft}"/"{running}": test ids.
BAD_REQUESTS = [
    # class 1: bytes and values that used to reach the database or Python's limits
    ("NUL in a path id", "get", "/api/v1/campaigns/%00/", None, 400, "bad_request"),
    ("NUL in a path id (write)", "patch", "/api/v1/campaigns/%00/", {"name": "x"}, 400, "bad_request"),
    ("NUL in a filter", "get", "/api/v1/campaigns/?search=%00", None, 400, "bad_request"),
    ("NUL in a filter (customers)", "get", "/api/v1/customers/?search=a%00b", None, 400, "bad_request"),
    ("NUL in an A/B test id", "post", "/api/ab-tests/%00/start", None, 400, "bad_request"),
    ("NUL in a job-run filter", "get", "/api/v1/job-runs/?job=%00", None, 400, "bad_request"),
    ("NUL in a send-time user id", "get", "/api/optimize/send-time/%00", None, 400, "bad_request"),
    ("NUL in a JSON string", "post", "/api/v1/campaigns/", {"campaign_id": "c_1", "name": "a\u0000b"}, 400, None),
    ("lone surrogate in a JSON string", "post", "/api/v1/campaigns/", {"campaign_id": "c_1", "name": "a\ud800"},
     400, "parse_error"),
    ("lone surrogate in an event", "post", "/api/v1/events/", [event(variant="\udfff")], 400, "parse_error"),
    ("integer >= 2^31 in an int column", "post", "/api/ab-tests/create",
     {"campaign_id": "camp_1", "test_name": "t", "sample_size_target": 2**31}, 400, "invalid"),
    ("integer beyond 64 bits", "post", "/api/ab-tests/create",
     {"campaign_id": "camp_1", "test_name": "t", "sample_size_target": 10**40}, 400, "parse_error"),
    ("integer just below -2^63 in an event", "post", "/api/v1/events/", [event(amount=-(2**63) - 1)], 400,
     "parse_error"),
    ("unicode digits in ?days", "get", "/api/analytics/portfolio?days=%C2%B2", None, 400, "invalid"),
    ("unicode digits in ?days (campaign)", "get", "/api/analytics/campaign/camp_1/metrics?days=%D9%A3%D9%A0",
     None, 400, "invalid"),
    ("sample size for mde=1e-17", "get", "/api/v1/ab-tests/sample-size/?baseline_rate=0.05&mde=1e-17", None, 400,
     "invalid"),
    ("sample size for a vanishing traffic", "get",
     "/api/v1/ab-tests/sample-size/?baseline_rate=0.05&mde=0.1&daily_traffic=1e-300", None, 400, "invalid"),
    ("occurred_at overflowing in UTC", "post", "/api/v1/events/", [event(occurred_at="9999-12-31T23:59:59-01:00")],
     400, "invalid"),
    ("occurred_at underflowing in UTC", "post", "/api/v1/events/", [event(occurred_at="0001-01-01T00:00:00+01:00")],
     400, "invalid"),
    # class 2: unbounded work
    ("JSON nested too deep", "post", "/api/v1/campaigns/", deep(50), 400, "parse_error"),
    ("JSON nested past Python's recursion limit", "post", "/api/v1/events/", RawJSON("[" * 5000 + "]" * 5000), 400,
     "parse_error"),
    ("job range from year 1 to 9999", "post", "/api/v1/jobs/daily_analytics/run",
     {"start": "0001-01-01", "end": "9999-12-31"}, 400, "invalid"),
    # class 4: external ids outside the alphabet, on every write path that takes one
    ("campaign id with a slash", "post", "/api/v1/campaigns/", {"campaign_id": "a/b", "name": "x"}, 400, "invalid"),
    ("campaign id with a newline", "post", "/api/v1/campaigns/", {"campaign_id": "a\nb", "name": "x"}, 400,
     "invalid"),
    ("merchant id with a space", "post", "/api/v1/merchants/", {"merchant_id": "m 1", "name": "x"}, 400, "invalid"),
    ("merchant id '..'", "post", "/api/v1/merchants/", {"merchant_id": "..", "name": "x"}, 400, "invalid"),
    ("event customer id with a slash", "post", "/api/v1/events/", [event(customer_id="u/1")], 400, "invalid"),
    ("event id with a newline", "post", "/api/v1/events/", [event(event_id="e\n1")], 400, "invalid"),
    ("merchant id in an event with '%'", "post", "/api/v1/events/", [event(merchant_id="m%2F1")], 400, "invalid"),
    ("A/B assign of an id with a slash", "post", "/api/v1/ab-tests/{running}/assign", {"customer_id": "a/b"}, 400,
     "invalid"),
]


@pytest.mark.parametrize(("case", "method", "path", "body", "status", "code"), BAD_REQUESTS,
                         ids=[row[0] for row in BAD_REQUESTS])
def test_bad_input_is_a_4xx_in_the_error_shape_and_writes_nothing(api, world, case, method, path, body, status, code):
    before = (Campaign.objects.count(), Customer.objects.count(), Merchant.objects.count(), Event.objects.count(),
              ABTest.objects.count())
    path = path.format(draft=world["draft"], running=world["running"])
    if body is None:
        response = getattr(api, method)(path)
    else:
        # json.dumps keeps lone surrogates and NULs as \u escapes, as a real client would send them.
        text = body if isinstance(body, RawJSON) else json.dumps(body)
        response = getattr(api, method)(path, text, content_type="application/json")
    assert_refused(response, status, code)
    after = (Campaign.objects.count(), Customer.objects.count(), Merchant.objects.count(), Event.objects.count(),
             ABTest.objects.count())
    assert after == before, f"{case}: something was written"


def test_a_batch_with_one_bad_row_commits_no_customer_or_merchant(api, world):
    rows = [event(i, merchant_id=f"m_new_{i}") for i in range(5)] + [event(9, occurred_at="9999-12-31T23:59:59-01:00")]
    response = api.post("/api/v1/events/", rows, format="json")
    error = assert_refused(response, 400, "invalid")
    assert error["fields"]["rows"] == [{"index": 5, "field": "occurred_at", "reason": error["fields"]["rows"][0]["reason"]}]
    assert "UTC" in error["fields"]["rows"][0]["reason"]
    assert (Customer.objects.count(), Merchant.objects.filter(merchant_id__startswith="m_new").count(),
            Event.objects.count()) == (0, 0, 0)


def test_row_errors_are_capped_with_a_count(api, world):
    rows = [{**event(i), **{f"junk_{k}": k for k in range(50)}} for i in range(400)]
    response = api.post("/api/v1/events/", rows, format="json")
    error = assert_refused(response, 400, "invalid")
    fields = error["fields"]
    # 400 rows x (5 listed unknown keys + 1 "and 45 more") errors; only the first 100 are listed.
    assert fields["errors_total"] == 400 * 6
    assert len(fields["rows"]) == 100 and fields["errors_not_listed"] == 400 * 6 - 100
    assert fields["rows"][0]["index"] == 0 and fields["rows"][-1]["index"] == 16
    assert len(response.content) < 50_000
    assert Event.objects.count() == 0


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_body_over_the_limit_is_a_413_naming_the_limit(api, world):
    rows = [event(i) for i in range(200)]
    response = api.post("/api/v1/events/", rows, format="json")
    error = assert_refused(response, 413, "payload_too_large")
    assert "10,000 bytes" in error["message"]
    assert Event.objects.count() == 0


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_body_without_a_length_is_cut_at_the_limit(api, world):
    """A chunked body (no Content-Length) is read only up to the limit by the JSON parser."""
    from marketing_ai.api import PayloadTooLarge, WholeBodyJSONParser

    class Stream:
        def __init__(self):
            self.asked = []

        def read(self, n=-1):
            self.asked.append(n)
            return b"[" + b"1," * 20_000 + b"1]"

    stream = Stream()
    with pytest.raises(PayloadTooLarge, match="10,000 bytes"):
        WholeBodyJSONParser().parse(stream, "application/json", {})
    assert stream.asked == [10_001]


def test_the_dashboard_answers_404_for_an_unknown_test_and_400_for_a_nul(client, marketer):
    client.force_login(marketer)
    assert client.get("/ab-tests/test_nope/").status_code == 404
    assert client.get("/analytics/campaign/a%00b/").status_code == 400
    assert client.get("/optimize/?customer_id=%00").status_code == 400


# --- import_events: each bad line is a rejected line; the others are stored --------------------------

def _write(tmp_path, name: str, text: str, encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding, errors="surrogatepass"))
    return path


def test_import_rejects_each_bad_line_with_its_reason_and_stores_the_others(tmp_path, world):
    good = [event(i) for i in range(3)]
    lines = [json.dumps(good[0]),
             json.dumps(event(10, occurred_at="9999-12-31T23:59:59-01:00")),
             json.dumps(event(11, customer_id="u\u0000x")),
             json.dumps(event(12, variant="\ud800")),
             json.dumps(good[1]),
             "[" * 3000 + "]" * 3000,
             json.dumps(event(13, campaign_id="camp/1")),
             json.dumps(good[2])]
    path = _write(tmp_path, "events.jsonl", "\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.csv"
    with pytest.raises(CommandError, match="5 row"):
        call_command("import_events", str(path), "--no-progress", "--rejects-out", str(rejects))
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["evt_0", "evt_1", "evt_2"]
    report = rejects.read_text()
    for line, reason in [(2, "UTC"), (3, "not an external id"), (4, "surrogate"), (6, "nested"),
                         (7, "not an external id")]:
        assert any(r.startswith(f"{line},") and reason in r for r in report.splitlines()), (line, reason, report)


def test_import_csv_with_a_nul_byte_and_an_oversized_field_rejects_those_lines(tmp_path, world):
    header = "event_id,type,occurred_at,customer_id,campaign_id"
    rows = [f"evt_a,view,{NOW.isoformat()},user_1,camp_1",
            f"evt_b,view,{NOW.isoformat()},us\x00er,camp_1",
            f"evt_c,view,{NOW.isoformat()},{'x' * 200_000},camp_1",
            f"evt_d,view,{NOW.isoformat()},user_2,camp_1"]
    path = _write(tmp_path, "events.csv", "\n".join([header, *rows]) + "\n")
    with pytest.raises(CommandError, match="2 row"):
        call_command("import_events", str(path), "--no-progress")
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["evt_a", "evt_d"]


def test_import_of_a_latin1_file_says_what_to_do_and_reads_it_with_encoding(tmp_path, world):
    header = "event_id,type,occurred_at,customer_id,campaign_id,variant"
    text = "\n".join([header, f"evt_a,view,{NOW.isoformat()},user_1,camp_1,Café"]) + "\n"
    path = _write(tmp_path, "events.csv", text, "latin-1")
    with pytest.raises(CommandError, match="--encoding"):
        call_command("import_events", str(path), "--no-progress")
    call_command("import_events", str(path), "--no-progress", "--encoding", "latin-1")
    assert Event.objects.get().variant == "Café"


def test_import_of_a_utf16_file_is_refused_with_the_option_to_use(tmp_path, world):
    text = "event_id,type,occurred_at,customer_id,campaign_id\n" + f"evt_a,view,{NOW.isoformat()},user_1,camp_1\n"
    path = _write(tmp_path, "events.csv", text, "utf-16")
    with pytest.raises(CommandError, match="--encoding utf-16"):
        call_command("import_events", str(path), "--no-progress")
    assert Event.objects.count() == 0
    call_command("import_events", str(path), "--no-progress", "--encoding", "utf-16")
    assert Event.objects.count() == 1


def test_a_job_run_range_stays_within_the_data_and_the_documented_maximum(api, world):
    from marketing_ai.jobs_api import MAX_RUN_DAYS
    from tests.factories import EventFactory

    EventFactory(campaign=world["campaign"], occurred_at=dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC))
    url = "/api/v1/jobs/daily_analytics/run"
    before = assert_refused(api.post(url, {"start": "2025-02-28", "end": "2025-03-02"}, format="json"), 400)
    assert "2025-03-01" in before["fields"]["start"][0]
    future = (NOW.date() + dt.timedelta(days=2)).isoformat()
    assert "end" in assert_refused(api.post(url, {"start": "2025-03-01", "end": future}, format="json"), 400)["fields"]
    too_long = (dt.date(2025, 3, 1) + dt.timedelta(days=MAX_RUN_DAYS)).isoformat()
    error = assert_refused(api.post(url, {"start": "2025-03-01", "end": too_long}, format="json"), 400)
    assert f"at most {MAX_RUN_DAYS} days" in error["fields"]["start"][0]
    # Only a start: the end is today, so the length is bounded too (2025-03-01 to today is > 400 days).
    error = assert_refused(api.post(url, {"start": "2025-03-01"}, format="json"), 400)
    assert f"at most {MAX_RUN_DAYS} days" in error["fields"]["start"][0]
    # Only an end, before the calendar can hold the job's window: a 400, not a failed run.
    assert "end" in assert_refused(api.post(url, {"end": "0001-01-01"}, format="json"), 400)["fields"]
    from marketing_ai.models import JobRun

    assert not JobRun.objects.filter(job="daily_analytics").exists()  # nothing queued or run


@pytest.mark.parametrize("path", ["/api/v1/jobs/", "/api/v1/jobs/daily_analytics/", "/api/v1/job-runs/",
                                  "/api/v1/campaigns/", "/api/v1/ab-tests/"])
def test_the_browsable_api_renders(client, marketer, path):
    client.force_login(marketer)
    response = client.get(path, HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")


def test_the_schema_states_hh_mm_times_nullable_fields_and_empty_choices(api):
    document = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    schema = document["components"]["schemas"]
    channel = next(p for p in document["paths"]["/api/v1/campaigns/"]["get"]["parameters"] if p["name"] == "channel")
    assert channel["schema"]["enum"][-1] == ""  # ?channel= means "not given"
    assert api.get("/api/v1/campaigns/?channel=").status_code == 200
    pattern = r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"
    assert schema["Campaign"]["properties"]["send_time"]["pattern"] == pattern
    assert schema["SendTimeRow"]["properties"]["optimal_send_time"]["pattern"] == pattern
    assert "format" not in schema["Campaign"]["properties"]["send_time"]
    assert {"AssignOutput", "StatusOutput", "EndOutput"} <= set(schema)
    assert schema["Campaign"]["properties"]["merchant_name"]["nullable"] is True


def test_a_server_error_under_the_api_is_json_in_the_error_shape(marketer, monkeypatch):
    """Any unhandled failure (here one injected into a selector) answers 500 in the error shape, no HTML."""
    from django.test import Client

    from marketing_ai import selectors

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(selectors, "last_run_per_job", broken)
    client = Client(raise_request_exception=False)
    client.force_login(marketer)
    error = assert_refused(client.get("/api/v1/jobs/"), 500, "server_error")
    assert "injected" not in error["message"]  # no internals in the answer
    page = client.get("/")  # a page keeps Django's own 500 page
    assert page.status_code == 500 and not page["Content-Type"].startswith("application/json")
