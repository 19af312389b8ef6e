"""``manage.py compute_segments [--as-of YYYY-MM-DD]``: re-assign customer segments by the rules in campaigns.segments."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from campaigns.segments import recompute_segments


class Command(BaseCommand):
    help = "Recompute every customer's segment (new_users / returning_users / high_value_users) from the events."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", help="Evaluate the rules as of this day (YYYY-MM-DD, UTC); default today")

    def handle(self, *args, as_of: str | None = None, **options) -> None:
        day = None
        if as_of:
            try:
                day = dt.date.fromisoformat(as_of)
            except ValueError:
                raise CommandError(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
        try:
            counts = recompute_segments(as_of=day)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        for name, n in counts.items():
            self.stdout.write(f"{name:>18}: {n} customers")
