"""Run registered jobs now: ``run_job NAME [--date D | --from D --to D | --history]``, ``run_job --all``, ``run_job --list``."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from marketing_ai import jobs, selectors
from marketing_ai.jobs_api import MAX_RUN_DAYS, run_range_problems
from marketing_ai.models import JobRun


class TqdmProgress:
    """Draws a job's ``progress`` reports as a tqdm bar on the command's stderr."""

    def __init__(self, label: str, stream) -> None:
        self.bar = tqdm(desc=label, unit="step", file=stream, leave=True, dynamic_ncols=True)

    def total(self, n: int) -> None:
        self.bar.total = n
        self.bar.refresh()

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def parse_date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = "Run a registered job now (recorded in job_runs), every job in dependency order, or list them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="the job to run (see --list)")
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--list", action="store_true", help="list jobs, schedules, dependencies and last runs")
        what.add_argument("--all", action="store_true", help="run every registered job once, in dependency order")
        parser.add_argument("--date", help="run for this one day (YYYY-MM-DD)")
        parser.add_argument("--from", dest="start", help="first day of the period (YYYY-MM-DD)")
        parser.add_argument("--to", dest="end", help="last day of the period (YYYY-MM-DD)")
        parser.add_argument("--history", action="store_true",
                            help="every day with data: from the first event's day to today (UTC); what `make demo` runs")
        parser.add_argument("--no-progress", action="store_true", help="do not draw progress bars")

    def handle(self, *args, **opts) -> None:
        if opts["list"]:
            if opts["name"]:
                raise CommandError("--list takes no job name")
            self.list_jobs()
            return
        start, end = self.period(opts)
        if opts["all"]:
            if opts["name"]:
                raise CommandError("give either a job name or --all, not both")
            widest = max((j.window_days or 1 for j in jobs.in_dependency_order() if j.takes_dates), default=None)
            self.check_range(start, end, opts, window_days=widest)
            self.run_all(start, end, progress=not opts["no_progress"])
            return
        if not opts["name"]:
            raise CommandError("name a job to run, or use --all or --list")
        try:
            job = jobs.get(opts["name"])
        except KeyError as exc:
            raise CommandError(exc.args[0]) from None
        if (start or end) and not job.takes_dates:
            raise CommandError(f"job {job.name!r} does not take dates; run it without --date/--from/--to")
        self.check_range(start, end, opts, window_days=job.window_days)
        record = self.run_one(job, start, end, progress=not opts["no_progress"])
        if record.status == JobRun.Status.FAILED:
            raise CommandError(f"job {job.name} failed: {last_line(record.error)}")
        if record.status == JobRun.Status.SKIPPED:
            raise CommandError(f"job {job.name} skipped: {record.error}")

    def period(self, opts) -> tuple[dt.date | None, dt.date | None]:
        if opts["history"]:
            if opts["date"] or opts["start"] or opts["end"]:
                raise CommandError("use either --history or --date/--from/--to, not both")
            span = selectors.event_day_span()
            if span is None:
                raise CommandError("--history: there are no events yet, so there is no history to run over")
            # The data's own span, not a computed guess: a run refuses days before the first event.
            return span[0], max(span[0], timezone.now().date())
        if opts["date"] and (opts["start"] or opts["end"]):
            raise CommandError("use either --date or --from/--to, not both")
        if opts["date"]:
            day = parse_date(opts["date"], "--date")
            return day, day
        start = parse_date(opts["start"], "--from") if opts["start"] else None
        end = parse_date(opts["end"], "--to") if opts["end"] else None
        if start and end and start > end:
            raise CommandError(f"--from {start} is after --to {end}")
        if start and not end:
            end = max(start, dt.date.today())
        return start, end

    @staticmethod
    def check_range(start, end, opts, *, window_days: int | None) -> None:
        """The API's bound on a run's dates (``jobs_api.run_range_problems``): within the data's span,
        at most ``MAX_RUN_DAYS`` days; refused with every reason and a non-zero exit."""
        problems = run_range_problems(start, end, window_days=window_days)
        if not problems:
            return
        options = {"start": "--date" if opts["date"] else "--from", "end": "--date" if opts["date"] else "--to"}
        given = {"start": start, "end": end}
        reasons = "; ".join(f"{options[field]} {given[field] or '(default)'} {reason}"
                            for field, field_reasons in problems.items() for reason in field_reasons)
        raise CommandError(f"refused: {reasons}. A run covers days from the first event's day to tomorrow (UTC), "
                           f"at most {MAX_RUN_DAYS} days (docs/operations.md).")

    def run_one(self, job: jobs.Job, start, end, *, progress: bool) -> JobRun:
        bar = TqdmProgress(job.name, self.stderr._out) if progress else None
        try:
            with logging_redirect_tqdm():  # log lines print above the bar instead of through it
                record = jobs.run(
                    job.name,
                    start=start if job.takes_dates else None,
                    end=end if job.takes_dates else None,
                    progress=bar,
                    trigger="command",
                    raise_errors=False,
                )
        finally:
            if bar:
                bar.close()
        period = f" {record.arguments['start']}..{record.arguments['end']}" if "start" in record.arguments else ""
        line = f"{job.name}{period}: {record.status}, {record.rows_written} rows in {record.duration_seconds or 0:.1f}s"
        style = {JobRun.Status.SUCCEEDED: self.style.SUCCESS, JobRun.Status.FAILED: self.style.ERROR}
        self.stdout.write(style.get(record.status, self.style.WARNING)(line))
        return record

    def run_all(self, start, end, *, progress: bool) -> None:
        ordered = jobs.in_dependency_order()
        if not ordered:
            self.stdout.write("No jobs are registered.")
            return
        broken: dict[str, str] = {}  # job -> why it did not succeed
        for job in ordered:
            blocked_by = [dep for dep in job.after if dep in broken]
            if blocked_by:
                broken[job.name] = f"not run: {', '.join(blocked_by)} did not succeed"
                self.stdout.write(self.style.WARNING(f"{job.name}: {broken[job.name]}"))
                continue
            record = self.run_one(job, start, end, progress=progress)
            if record.status != JobRun.Status.SUCCEEDED:
                broken[job.name] = f"{record.status}: {last_line(record.error)}"
        if broken:
            details = "; ".join(f"{name} {why}" for name, why in broken.items())
            raise CommandError(f"{len(broken)} of {len(ordered)} jobs did not succeed: {details}")

    def list_jobs(self) -> None:
        registered = jobs.in_dependency_order()
        if not registered:
            self.stdout.write("No jobs are registered.")
            return
        last = selectors.last_run_per_job(j.name for j in registered)
        rows = [("JOB", "SCHEDULE (UTC)", "AFTER", "DATES", "LAST RUN")]
        for job in registered:
            run = last.get(job.name)
            rows.append(
                (
                    job.name,
                    job.schedule_text().removesuffix(" (UTC)"),
                    ",".join(job.after) or "-",
                    f"last {job.window_days} d" if job.takes_dates else "-",
                    f"{run.started_at:%Y-%m-%d %H:%M} {run.status} {run.rows_written} rows" if run else "never",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
