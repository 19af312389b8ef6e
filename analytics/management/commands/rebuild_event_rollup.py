"""``manage.py rebuild_event_rollup``: recompute analytics_campaign_customer_day from the events.

The events' triggers keep that table current by themselves; this is the repair for when they could
not (a restore or bulk load with triggers disabled). Then re-run ``run_job daily_analytics --from --to``.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from analytics.services import rebuild_rollup


class Command(BaseCommand):
    help = "Recompute the per campaign, customer and day event counts (the daily_analytics job's source) from the events."

    def handle(self, *args, **options) -> None:
        started = time.perf_counter()
        rows = rebuild_rollup()
        self.stdout.write(f"analytics_campaign_customer_day: {rows} rows from the events in {time.perf_counter() - started:.1f} s")
