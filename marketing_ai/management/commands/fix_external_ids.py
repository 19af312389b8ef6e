"""Find external ids stored before the id alphabet existed and replace them: ``fix_external_ids [--apply]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from marketing_ai import id_repair
from marketing_ai.validation import EXTERNAL_ID_RULE


class Command(BaseCommand):
    help = (f"List stored external ids outside the alphabet ({EXTERNAL_ID_RULE}) and their deterministic "
            "replacements; with --apply, replace them and the text that references them in one transaction.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--apply", action="store_true", help="write the replacements (default: only report them)")

    def handle(self, *args, apply: bool, **opts) -> None:
        try:
            report = id_repair.fix() if apply else id_repair.find()
        except DatabaseError as exc:  # e.g. a row written meanwhile took a replacement's id
            raise CommandError(f"nothing was changed: {exc}. Run the command again.") from None
        if not report.replacements:
            self.stdout.write(self.style.SUCCESS("Every stored external id is in the alphabet; nothing to do."))
            return
        for r in report.replacements:
            self.stdout.write(f"{r.table}.{r.field} #{r.pk}: {r.old!r} -> {r.new}")
        for where, rows in sorted(report.references.items()):
            self.stdout.write(f"  references rewritten: {where}: {rows} row(s)")
        tables = sorted({r.table for r in report.replacements})
        summary = f"{len(report.replacements)} id(s) outside the alphabet in {', '.join(tables)}"
        if report.applied:
            self.stdout.write(self.style.SUCCESS(f"Replaced {summary} (one transaction)."))
        else:
            self.stdout.write(self.style.WARNING(f"Found {summary}; nothing changed. Run with --apply to replace them."))
