"""A covering index for the attribution query on PostgreSQL.

``selectors.arm_totals`` looks up each converting customer's assignment by (test, customer) and needs
its variant and assigned_at; with those columns INCLUDEd the lookup is index-only (about 2x faster on a
1-million-assignment test, see docs/BENCHMARKS.md). SQLite has no INCLUDE, so this is PostgreSQL only
(and deliberately not in the model's Meta, which would warn on SQLite).
"""

from django.db import migrations

INDEX = "ab_assignment_test_customer_cover"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON ab_test_assignments (test_id, customer_id) "
            "INCLUDE (variant_id, assigned_at)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("abtests", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
