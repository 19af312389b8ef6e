"""Schedules are shown in words on the pages; the cron string stays where there is no short reading."""

import pytest
from celery.schedules import crontab

from marketing_ai import jobs
from marketing_ai.schedules import in_words


@pytest.mark.parametrize("schedule, words", [
    (crontab(minute=0, hour=2), "daily at 02:00 UTC"),
    (crontab(minute=0, hour=3, day_of_week=1), "Mondays at 03:00 UTC"),
    (crontab(minute=30, hour=7, day_of_week="sat,sun"), "Sundays and Saturdays at 07:30 UTC"),
    (crontab(minute=0, hour="0,6,12,18"), "daily at 00:00, 06:00, 12:00 and 18:00 UTC"),
    (crontab(minute=15), "hourly at :15"),
    (crontab(minute="*/5"), "*/5 * * * * (UTC)"),
    (crontab(minute=0, hour=1, day_of_month=1), "0 1 1 * * (UTC)"),
    (None, "manual only"),
])
def test_crontab_in_words(schedule, words):
    assert in_words(schedule) == words


def test_every_seed_schedule_has_words_not_cron():
    for name, schedule in jobs.SEED_SCHEDULES.items():
        assert "*" not in in_words(schedule), name


def test_overview_lists_schedules_in_words(client, marketer):
    client.force_login(marketer)
    html = client.get("/").content.decode()
    assert "Mondays at 03:00 UTC" in html and "daily at 02:00 UTC" in html
    assert "0 3 * * 1" not in html.replace('title="cron: 0 3 * * 1 (UTC)"', "")
