"""``manage.py run_job``: one job, a period, every job in dependency order, the list, and its errors."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from celery.schedules import crontab
from django.core.management import CommandError, call_command

from marketing_ai import jobs
from marketing_ai.models import JobRun


def run_command(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("run_job", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def dated_job(registry):
    calls = []

    @jobs.job("daily_things", schedule=crontab(minute=0, hour=2), window_days=3)
    def daily_things(*, start, end, progress):
        days = (end - start).days + 1
        calls.append((start, end))
        progress.total(days)
        for _ in range(days):
            progress.advance()
        return days * 10

    return calls


def test_date_runs_the_job_for_that_one_day_and_draws_progress(db, dated_job):
    out, err = run_command("daily_things", "--date", "2024-05-02")

    assert dated_job == [(dt.date(2024, 5, 2), dt.date(2024, 5, 2))]
    assert "daily_things 2024-05-02..2024-05-02: succeeded, 10 rows" in out
    assert "1/1" in err  # the tqdm bar reached its total
    run = JobRun.objects.get(job="daily_things")
    assert run.arguments == {"trigger": "command", "start": "2024-05-02", "end": "2024-05-02"}


def test_from_and_to_run_the_whole_period(db, dated_job):
    out, err = run_command("daily_things", "--from", "2024-05-01", "--to", "2024-05-07")
    assert dated_job == [(dt.date(2024, 5, 1), dt.date(2024, 5, 7))]
    assert "70 rows" in out and "7/7" in err


def test_without_dates_the_job_gets_its_default_window(db, dated_job):
    run_command("daily_things", "--no-progress")
    start, end = dated_job[0]
    assert (end - start).days == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (("nope",), "unknown job 'nope'; registered jobs: daily_things"),
        (("daily_things", "--date", "2024-13-01"), "--date '2024-13-01' is not a date"),
        (("daily_things", "--from", "yesterday"), "--from 'yesterday' is not a date"),
        (("daily_things", "--from", "2024-05-09", "--to", "2024-05-01"), "--from 2024-05-09 is after --to 2024-05-01"),
        (("daily_things", "--date", "2024-05-01", "--from", "2024-05-01"), "either --date or --from/--to"),
        ((), "name a job to run"),
        (("daily_things", "--all"), "either a job name or --all"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(db, dated_job, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_command(*args)
    assert dated_job == []


def test_dates_are_refused_for_a_job_without_a_period(db, registry):
    jobs.job("no_dates", schedule=None)(lambda *, progress: 0)
    with pytest.raises(CommandError, match="does not take dates"):
        run_command("no_dates", "--date", "2024-01-01")


def test_a_failing_job_exits_non_zero_with_its_error(db, registry):
    @jobs.job("fails", schedule=None)
    def fails(*, progress):
        raise RuntimeError("the warehouse is closed")

    with pytest.raises(CommandError, match="job fails failed: RuntimeError: the warehouse is closed"):
        run_command("fails")
    assert JobRun.objects.get(job="fails").status == JobRun.Status.FAILED


def test_all_runs_every_job_once_in_dependency_order(db, registry):
    order = []
    for name, after in [("recommend", ("train",)), ("train", ("aggregate",)), ("aggregate", ())]:
        jobs.job(name, schedule=None, after=after)(lambda *, progress, name=name: order.append(name) or 1)

    out, _ = run_command("--all", "--no-progress")

    assert order == ["aggregate", "train", "recommend"]
    assert list(JobRun.objects.order_by("started_at", "id").values_list("job", "status")) == [
        ("aggregate", "succeeded"),
        ("train", "succeeded"),
        ("recommend", "succeeded"),
    ]


def test_all_skips_the_jobs_after_a_failed_one_and_exits_non_zero(db, registry):
    ran = []

    def broken(*, progress):
        raise ValueError("bad input")

    jobs.job("aggregate", schedule=None)(broken)
    jobs.job("train", schedule=None, after=("aggregate",))(lambda *, progress: ran.append("train") or 1)
    jobs.job("independent", schedule=None)(lambda *, progress: ran.append("independent") or 1)

    with pytest.raises(CommandError, match="2 of 3 jobs did not succeed") as failure:
        run_command("--all", "--no-progress")

    assert ran == ["independent"]
    assert "train not run: aggregate did not succeed" in str(failure.value)
    assert not JobRun.objects.filter(job="train").exists()


def test_list_shows_schedules_dependencies_and_last_runs(db, registry, dated_job):
    jobs.job("after_daily", schedule=None, after=("daily_things",))(lambda *, progress: 0)
    jobs.run("daily_things", start=dt.date(2024, 1, 1), end=dt.date(2024, 1, 2))

    out, _ = run_command("--list")
    lines = {line.split()[0]: line for line in out.splitlines()}

    assert lines["daily_things"].split()[1:6] == ["0", "2", "*", "*", "*"]
    assert "succeeded 20 rows" in lines["daily_things"]
    assert "last 3 d" in lines["daily_things"]
    assert "manual only" in lines["after_daily"] and "daily_things" in lines["after_daily"]
    assert lines["after_daily"].endswith("never")


def test_list_of_the_real_registry_names_every_registered_job(db):
    out, _ = run_command("--list")
    listed = {line.split()[0] for line in out.splitlines()[1:]}
    assert listed == set(jobs.REGISTRY)


# --- Date ranges are bounded like the API's run endpoint (jobs_api.run_range_problems) -----------------

@pytest.mark.parametrize(
    "args, message",
    [
        (("daily_things", "--from", "0001-01-01", "--to", "9999-12-31"), "--to 9999-12-31 must not be after"),
        (("daily_things", "--from", "0001-01-01", "--to", "2025-03-02"), "--from 0001-01-01 must not be before 2025-03-01"),
        (("daily_things", "--date", "2024-01-01"), "--date 2024-01-01 must not be before 2025-03-01"),
        (("daily_things", "--from", "2025-03-01"), "a run covers at most 400 days"),  # to today: > 400 days
        (("daily_things", "--from", "2025-03-01", "--to", "2026-04-05"), "a run covers at most 400 days"),
        (("--all", "--date", "2024-01-01"), "--date 2024-01-01 must not be before 2025-03-01"),
    ],
)
def test_a_range_outside_the_data_or_over_the_maximum_is_refused(db, dated_job, args, message):
    from tests.factories import EventFactory

    EventFactory(occurred_at=dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC))
    with pytest.raises(CommandError, match=message) as refused:
        run_command(*args)
    assert "from the first event's day to tomorrow (UTC), at most 400 days" in str(refused.value)
    assert dated_job == []
    assert not JobRun.objects.exists()  # refused before any run was recorded


def test_without_events_only_the_length_and_the_calendar_bound_a_range(db, dated_job):
    run_command("daily_things", "--from", "2024-05-01", "--to", "2024-05-07")  # nothing to read: allowed
    with pytest.raises(CommandError, match="--to 0001-01-01 is too early for the job's 3-day window"):
        run_command("daily_things", "--to", "0001-01-01")
    with pytest.raises(CommandError, match="at most 400 days"):
        run_command("daily_things", "--from", "2020-01-01", "--to", "2024-05-07")
    assert dated_job == [(dt.date(2024, 5, 1), dt.date(2024, 5, 7))]


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_non_zero_with_the_reason():
    """Through a real ``manage.py`` process: exit status 1 and the reason on stderr."""
    import subprocess

    from django.db import connection

    from tests.factories import EventFactory
    from tests.platform.processes import MANAGE, ROOT, subprocess_env

    if connection.vendor != "postgresql":
        pytest.skip("a manage.py process reaches the test database on PostgreSQL only")
    EventFactory(occurred_at=dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC))
    done = subprocess.run([*MANAGE, "run_job", "daily_analytics", "--from", "0001-01-01", "--to", "9999-12-31"],
                          cwd=ROOT, env=subprocess_env(None), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "--from 0001-01-01 must not be before 2025-03-01" in done.stderr
    assert "--to 9999-12-31 must not be after" in done.stderr
    assert not JobRun.objects.exists()


# --- --history: the data's own span (what `make demo` runs) --------------------------------------------

def test_history_runs_from_the_first_event_day_to_today(db, dated_job):
    from django.utils import timezone

    from tests.factories import EventFactory

    today = timezone.now().date()
    first = today - dt.timedelta(days=20)
    EventFactory(occurred_at=dt.datetime.combine(first, dt.time(23, 30), tzinfo=dt.UTC))
    EventFactory(occurred_at=dt.datetime.combine(today, dt.time(0, 10), tzinfo=dt.UTC))
    run_command("daily_things", "--history", "--no-progress")
    assert dated_job == [(first, today)]


def test_history_without_events_or_beside_dates_is_refused(db, dated_job):
    with pytest.raises(CommandError, match="no events yet"):
        run_command("daily_things", "--history")
    with pytest.raises(CommandError, match="either --history or --date/--from/--to"):
        run_command("daily_things", "--history", "--from", "2024-05-01")
    assert dated_job == [] and not JobRun.objects.exists()


def makefile_demo_run_job_args() -> list[str]:
    """The arguments `make demo` gives ``run_job``, read from the Makefile's own recipe line."""
    import shlex

    from tests.platform.processes import ROOT

    recipe = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    line = next(part for part in recipe.splitlines() if "manage.py run_job" in part)
    words = shlex.split(line.split("#", 1)[0])
    return words[words.index("run_job") + 1:]


def test_the_demo_recipes_job_run_succeeds_for_every_job_over_the_whole_demo(db, tmp_path):
    """`make demo`'s own run_job line, on a small demo built by seed_demo with the Makefile's --days:
    every real job succeeds and the aggregation starts at the first event's day. (The line once
    computed its start as today − 60 days, a day before the demo's first event, and every demo
    job was refused while `make demo` went on serving an empty dashboard.)"""
    import re

    from django.utils import timezone

    from analytics.models import CampaignAnalyticsDaily
    from marketing_ai import selectors
    from tests.platform.processes import ROOT

    days = re.search(r"^DEMO_DAYS\s*\?=\s*(\d+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    call_command("seed_demo", "--customers", "80", "--merchants", "6", "--campaigns", "3", "--days", days,
                 "--seed", "5", "--truth-out", str(tmp_path / "truth.json"), verbosity=0)
    args = makefile_demo_run_job_args()
    run_command(*args, "--no-progress")  # raises CommandError if any job is refused or fails

    runs = {run.job: run for run in JobRun.objects.all()}
    assert set(runs) == set(jobs.REGISTRY)
    assert {run.status for run in runs.values()} == {JobRun.Status.SUCCEEDED}
    first_day, _ = selectors.event_day_span()
    assert runs["daily_analytics"].arguments["start"] == first_day.isoformat()
    assert runs["daily_analytics"].arguments["end"] == timezone.now().date().isoformat()
    assert CampaignAnalyticsDaily.objects.filter(date=first_day).exists()
