"""``manage.py model_report``: train on demo data with a planted truth and print quality against it.

For each seed: rebuild the demo data set (only ``demo_*`` rows are replaced), train and register
the five models (the same ``train_all`` as the weekly job), then compare with the truth
(``optimizer.quality``). With ``--truth PATH`` it evaluates the data already loaded instead.
Exits non-zero when a goal is missed.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from optimizer import quality
from optimizer.services import training


def _fmt(value) -> str:
    return "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


class Command(BaseCommand):
    help = "Model quality vs the planted truth of seed_demo, over several seeds (replaces the demo data)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
        parser.add_argument("--customers", type=int, default=8000)
        parser.add_argument("--merchants", type=int, default=100)
        parser.add_argument("--campaigns", type=int, default=12)
        parser.add_argument("--days", type=int, default=60)
        parser.add_argument("--holdout-days", type=int, default=training.HOLDOUT_DAYS)
        parser.add_argument("--truth", type=Path, default=None,
                            help="evaluate the data already loaded against this truth JSON (no re-seeding)")

    def handle(self, *args, **opts) -> None:
        for name in ("customers", "merchants", "campaigns", "days", "holdout_days"):
            if opts[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        runs: list[tuple[str, dict]] = []
        if opts["truth"]:
            if not opts["truth"].exists():
                raise CommandError(f"--truth {opts['truth']} does not exist")
            runs.append(("loaded", json.loads(opts["truth"].read_text())))
        failed = 0
        for label, truth in runs or [(f"seed {s}", None) for s in opts["seeds"]]:
            if truth is None:
                from campaigns.demo_load import seed_demo

                seed = int(label.split()[1])
                self.stdout.write(f"== {label}: seeding {opts['customers']} customers, {opts['merchants']} merchants, {opts['days']} days")
                truth = seed_demo(customers=opts["customers"], merchants=opts["merchants"], campaigns=opts["campaigns"],
                                  days=opts["days"], seed=seed, replace=True)
            models = training.train_all(holdout_days=opts["holdout_days"])
            checks = quality.report(models, truth)
            self.stdout.write(f"{'check':<32}{'value':>8}  {'pass':<5} goal / details")
            for c in checks:
                failed += not c.passed
                details = ", ".join(f"{k}={_fmt(v)}" for k, v in c.details.items() if not isinstance(v, dict))
                self.stdout.write(f"{c.name:<32}{_fmt(c.value):>8}  {'yes' if c.passed else 'NO':<5} {c.goal}  ({details})")
                for segment, d in c.details.get("segments", {}).items():
                    self.stdout.write(f"{'':<42}{segment}: {d}")
        if failed:
            raise CommandError(f"{failed} quality check(s) missed their goal")
        self.stdout.write(self.style.SUCCESS("all quality goals met"))
