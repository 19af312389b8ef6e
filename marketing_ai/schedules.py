"""A Celery crontab said in words for the pages ("Mondays at 03:00 UTC"), the cron string when it has no short reading."""

from __future__ import annotations

from celery.schedules import crontab

WEEKDAYS = ("Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays")  # cron: 0 = Sunday


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def in_words(schedule: crontab | None) -> str:
    if schedule is None:
        return "manual only"
    minutes, hours = sorted(schedule.minute), sorted(schedule.hour)
    days, months, weekdays = schedule.day_of_month, schedule.month_of_year, sorted(schedule.day_of_week)
    cron = (f"{schedule._orig_minute} {schedule._orig_hour} {schedule._orig_day_of_month} "
            f"{schedule._orig_month_of_year} {schedule._orig_day_of_week} (UTC)")
    if len(days) != 31 or len(months) != 12 or len(minutes) != 1:
        return cron
    minute = minutes[0]
    if len(hours) == 24:
        when = f"hourly at :{minute:02d}"
    else:
        when = "at " + _and([f"{h:02d}:{minute:02d}" for h in hours])
    if len(weekdays) == 7:
        return f"daily {when} UTC" if len(hours) < 24 else when
    return f"{_and([WEEKDAYS[d] for d in weekdays])} {when} UTC"
