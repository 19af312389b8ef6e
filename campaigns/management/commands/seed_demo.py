"""``manage.py seed_demo``: build the demo data set with a planted truth (see docs/demo-data.md)."""

from __future__ import annotations

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from campaigns.demo_load import DemoDataPresent, seed_demo


class _Bar:
    """The jobs' Progress protocol drawn as a tqdm bar."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def total(self, n: int) -> None:
        self.bar.reset(total=n)

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)


def _offers_with_units(best: dict[str, int]) -> str:
    """``{"new_users": 40, ...}`` as "new_users 40 % off, ..." (the truth file keeps the numbers)."""
    return ", ".join(f"{segment} {value} % off" if value else f"{segment} no discount (0 % off)" for segment, value in best.items())


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


class Command(BaseCommand):
    help = "Generate demo merchants, customers, campaigns and events with a planted truth (written to --truth-out)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=_positive, default=2000)
        parser.add_argument("--merchants", type=_positive, default=40)
        parser.add_argument("--campaigns", type=_positive, default=12)
        parser.add_argument("--days", type=_positive, default=60)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--end-date", type=_date, default=None,
                            help="last day of data, YYYY-MM-DD (default: today UTC, up to now)")
        parser.add_argument("--sends-per-day", type=float, default=None,
                            help="mean notifications per customer per day (default 1.5; ~2.1 events per send)")
        parser.add_argument("--truth-out", default=None, help="where to write the truth JSON")
        parser.add_argument("--replace", action="store_true", help="delete earlier demo data (ids demo_*) first")

    def handle(self, *args, **opts) -> None:
        if opts["sends_per_day"] is not None and opts["sends_per_day"] <= 0:
            raise CommandError("--sends-per-day must be positive")
        started = time.monotonic()
        with tqdm(desc="seed_demo rows", unit="row", disable=opts["verbosity"] < 1) as bar:
            try:
                truth = seed_demo(
                    customers=opts["customers"], merchants=opts["merchants"], campaigns=opts["campaigns"],
                    days=opts["days"], seed=opts["seed"], end_date=opts["end_date"], truth_out=opts["truth_out"],
                    replace=opts["replace"], sends_per_day=opts["sends_per_day"], progress=_Bar(bar),
                )
            except DemoDataPresent as exc:
                if exc.same_seed:
                    self.stdout.write(str(exc))
                    return
                raise CommandError(str(exc)) from exc
            events = bar.n
        self.stdout.write(
            f"demo data written: {opts['customers']} customers, {opts['merchants']} merchants, "
            f"{opts['campaigns']} campaigns, {events} rows in {time.monotonic() - started:.1f} s; "
            f"planted best offer: {_offers_with_units(truth['best_offer'])}"
            + (f"; truth in {opts['truth_out']}" if opts["truth_out"] else "")
        )
