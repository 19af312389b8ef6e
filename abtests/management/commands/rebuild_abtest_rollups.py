"""``manage.py rebuild_abtest_rollups [TEST_ID ...]``: recompute the A/B analysis rollup from the raw events."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from abtests import rollup
from abtests.models import ABTest


class Command(BaseCommand):
    help = ("Recompute the per-customer outcomes and per-variant sums the A/B analysis reads (abtests/rollup.py) "
            "from the raw events and assignments: every started test, or the given test ids.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("test_ids", nargs="*", help="public test ids (test_...); default: every started test")

    def handle(self, *args, test_ids: list[str], **options) -> None:
        tests = ABTest.objects.exclude(status=ABTest.Status.DRAFT).order_by("pk")
        if test_ids:
            tests = ABTest.objects.filter(test_id__in=test_ids).order_by("pk")
            found = set(tests.values_list("test_id", flat=True))
            unknown = [t for t in test_ids if t not in found]
            if unknown:
                raise CommandError(f"no A/B test with test_id {', '.join(unknown)}")
        for test in tests:
            rollup.rebuild(test=test)
            self.stdout.write(f"{test.test_id}: rebuilt")
